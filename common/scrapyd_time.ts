// Scrapyd prints times as naive local time "YYYY-MM-DD HH:MM:SS.ffffff" (Python's str(datetime)).

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Epoch seconds (with fractional microseconds) -> Scrapyd's local time string. */
export function formatScrapydTime(epochSeconds: number): string {
  const ms = Math.floor(epochSeconds * 1000);
  const d = new Date(ms);
  const micros = Math.floor((epochSeconds - Math.floor(epochSeconds)) * 1e6);
  const base = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  // Python omits the fraction when it is exactly zero.
  return micros === 0 ? base : `${base}.${pad(micros, 6)}`;
}

/** Current time as epoch seconds with microsecond resolution. */
export function nowSeconds(): number {
  return (performance.timeOrigin + performance.now()) / 1000;
}
