// How a job that exited 0 really went. Its exit status is kept as it is; a run that logged errors,
// that Scrapy closed for another reason than 'finished', or that scraped nothing where the
// spider's previous run scraped something, is 'finished_with_errors' rather than 'succeeded'.
// Pure: the evidence is gathered by the launcher.
import type { JobOutcome } from '../../common/types.ts';

export interface RunEvidence {
  /** ERROR/CRITICAL records the log parser counted (tracebacks, ERROR lines). */
  errorCount: number;
  /** Scrapy's own log_count/ERROR from its stats dump, when there is one. */
  scrapyErrorCount: number | null;
  /** Scrapy's finish_reason; null (or 'N/A') when the process is not a Scrapy crawl or never said. */
  finishReason: string | null;
  /** Items in the items file (null: no file). */
  items: number | null;
  /** Items of the spider's previous run that completed (succeeded or finished with errors), if any. */
  previousItems: number | null;
}

/** Why a run is 'finished_with_errors' (empty: it is not). */
export function errorsOfRun(e: RunEvidence): string[] {
  const why: string[] = [];
  const errors = Math.max(e.errorCount, e.scrapyErrorCount ?? 0);
  if (errors > 0) why.push(`${errors} ${errors === 1 ? 'error' : 'errors'} logged`);
  if (e.finishReason && e.finishReason !== 'N/A' && e.finishReason !== 'finished') why.push(`Scrapy's finish reason is '${e.finishReason}'`);
  if ((e.items ?? 0) === 0 && (e.previousItems ?? 0) > 0) why.push(`no items, where the previous run scraped ${e.previousItems}`);
  return why;
}

/** The outcome and a note saying why, for a job whose process has ended and been fully read. */
export function judgeOutcome(exitOutcome: JobOutcome, e: RunEvidence): { outcome: JobOutcome; why: string | null } {
  if (exitOutcome !== 'succeeded') return { outcome: exitOutcome, why: null };
  const why = errorsOfRun(e);
  return why.length ? { outcome: 'finished_with_errors', why: `finished with errors: ${why.join('; ')}` } : { outcome: 'succeeded', why: null };
}
