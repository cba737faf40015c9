// <time data-localtime> elements carry an instant; show it in the viewer's own timezone, with the
// zone's name (a bare "02:00:00" is ambiguous when a schedule runs in another zone).

const full = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short' });
const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function relative(ms: number): string {
  const diff = (ms - Date.now()) / 1000;
  const abs = Math.abs(diff);
  if (abs < 60) return rtf.format(Math.round(diff), 'second');
  if (abs < 3600) return rtf.format(Math.round(diff / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(diff / 3600), 'hour');
  return rtf.format(Math.round(diff / 86400), 'day');
}

export function localTimes(root: ParentNode = document): void {
  for (const t of root.querySelectorAll<HTMLTimeElement>('time[data-localtime]')) {
    const d = new Date(t.dateTime);
    if (Number.isNaN(d.getTime())) continue;
    t.title = full.format(d);
    t.textContent = t.dataset.localtime === 'relative' ? relative(d.getTime()) : full.format(d);
  }
}

export function formatLocal(d: Date): string {
  return full.format(d);
}

/** The same wording as the server's duration filter: 45s, 3m 12s, 2h 5m, 1d 4h. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
