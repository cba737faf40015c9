import { Cron } from 'croner';

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
