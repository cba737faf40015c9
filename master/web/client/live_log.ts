import { el } from './api.ts';
import { formatLocal } from './time.ts';

const MAX_LINES = 5000;
const LEVEL = /\b(CRITICAL|ERROR|WARNING)\b:?/;
const TRACE_START = /^(Traceback \(most recent call last\):|\w*(Error|Exception)\b.*:|\s+at\s|\s+File ")/;

/**
 * A job's log, live: server-sent events from the master append text as the spider writes it.
 * ERROR and CRITICAL lines and tracebacks (Python) or stacks (JavaScript) are highlighted.
 */
export function liveLog(): void {
  const box = document.querySelector<HTMLElement>('[data-log-stream]');
  if (!box) return;
  const status = document.querySelector<HTMLElement>('[data-log-status]');
  const dot = document.querySelector<HTMLElement>('[data-log-dot]');
  let partial = '';
  let inTrace = false;
  let lines = 0;

  const classify = (line: string): string | null => {
    const level = LEVEL.exec(line)?.[1];
    if (level === 'CRITICAL') { inTrace = true; return 'l-critical'; }
    if (level === 'ERROR') { inTrace = true; return 'l-error'; }
    if (level === 'WARNING') { inTrace = false; return 'l-warning'; }
    if (/^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d/.test(line)) { inTrace = false; return null; }
    if (line.startsWith('Traceback (most recent call last):')) { inTrace = true; return 'l-trace'; }
    if (inTrace || TRACE_START.test(line)) return 'l-trace';
    return null;
  };

  const append = (text: string) => {
    const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 30;
    const all = (partial + text).split('\n');
    partial = all.pop() ?? '';
    const frag = document.createDocumentFragment();
    for (const line of all) {
      const cls = classify(line);
      const span = el('span', cls ? { class: cls } : {}, line + '\n');
      frag.append(span);
      lines++;
    }
    box.append(frag);
    while (lines > MAX_LINES && box.firstChild) { box.firstChild.remove(); lines--; }
    if (stick) box.scrollTop = box.scrollHeight;
  };

  const source = new EventSource(box.dataset.logStream!, { withCredentials: true });
  source.addEventListener('open', () => {
    dot?.classList.add('live');
    if (status) status.textContent = 'Live';
  });
  source.addEventListener('log', (ev) => append(JSON.parse((ev as MessageEvent<string>).data) as string));
  source.addEventListener('state', (ev) => {
    const s = JSON.parse((ev as MessageEvent<string>).data) as Record<string, string | number | null>;
    for (const k of ['started_at', 'ended_at'] as const) {
      const field = document.querySelector(`[data-time-field="${k}"]`);
      if (field && typeof s[k] === 'number') field.textContent = formatLocal(new Date(s[k] as number));
    }
    for (const [k, v] of Object.entries(s)) {
      const field = document.querySelector(`[data-job-result] [data-field="${k}"]`);
      if (field) field.textContent = v === null ? '—' : String(v);
    }
    const badge = document.querySelector('[data-job-state] .badge');
    const shown = s.state === 'finished' ? String(s.outcome ?? 'finished') : String(s.state);
    if (badge) { badge.className = `badge ${shown}`; badge.textContent = shown; }
  });
  source.addEventListener('end', (ev) => {
    if (partial) { append('\n'); }
    source.close();
    dot?.classList.remove('live');
    const reason = (JSON.parse((ev as MessageEvent<string>).data) as { reason?: string }).reason;
    if (status) status.textContent = `The run is ${reason ?? 'over'}: the whole log is shown.`;
    if (box.childElementCount === 0) box.append(el('span', { class: 'muted' }, '(the log is empty)'));
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) return;
    dot?.classList.remove('live');
    if (status) status.textContent = 'Reconnecting…';
  });
}
