import { Cron } from 'croner';
import cronstrue from 'cronstrue';

export class CronInvalid extends Error {}

/** Parses a 5- or 6-field expression in a timezone; croner's own reason on error. */
export function parseCron(expression: string, timezone: string | null): Cron {
  if (timezone !== null) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    } catch {
      throw new CronInvalid(`timezone '${timezone}' is not a valid IANA timezone (e.g. Europe/Berlin, UTC)`);
    }
  }
  try {
    return new Cron(expression, { timezone: timezone ?? undefined, mode: '5-or-6-parts', paused: true });
  } catch (e) {
    throw new CronInvalid((e as Error).message);
  }
}

/** The next n occurrences strictly after `from`. */
export function nextRuns(cron: Cron, n: number, from = new Date()): Date[] {
  return cron.nextRuns(n, from);
}

/** The expression in words ("At 03:00 AM, Monday through Friday"), or null when cronstrue cannot say. */
export function describeCron(expression: string): string | null {
  try {
    return cronstrue.toString(expression, { use24HourTimeFormat: true, verbose: false });
  } catch {
    return null;
  }
}
