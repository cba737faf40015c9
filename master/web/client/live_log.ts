import { el } from './api.ts';
import { LogHighlighter } from './log_highlight.ts';
import { formatDuration, formatLocal } from './time.ts';

const MAX_LINES = 5000;

interface RunState {
  state: string; outcome: string | null; node: string | null; active: boolean; items_count: number | null; error_count: number | null;
  exit_code: number | null; started_at: number | null; ended_at: number | null; note: string | null;
}
interface ErrorRecord { time: string; level: string; message: string; traceback: string | null }

const parse = <T>(ev: Event): T => JSON.parse((ev as MessageEvent<string>).data) as T;

/**
 * A job's page, live, from ONE server-sent-events stream: the log as the spider writes it, and the
 * run's state, Scrapy stats, errors and first items as they change. The page fetches nothing else,
 * so a run without a node or a stats file yet never shows the browser a 404.
 */
export function liveLog(): void {
  const box = document.querySelector<HTMLElement>('[data-log-stream]');
  if (!box) return;
  const status = document.querySelector<HTMLElement>('[data-log-status]');
  const dot = document.querySelector<HTMLElement>('[data-log-dot]');
  const highlighter = new LogHighlighter();
  let partial = '';
  let lines = 0;

  const append = (text: string) => {
    const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 30;
    const all = (partial + text).split('\n');
    partial = all.pop() ?? '';
    const frag = document.createDocumentFragment();
    for (const line of all) {
      const cls = highlighter.classify(line);
      frag.append(el('span', cls ? { class: cls } : {}, line + '\n'));
      lines++;
    }
    box.append(frag);
    while (lines > MAX_LINES && box.firstChild) { box.firstChild.remove(); lines--; }
    if (stick) box.scrollTop = box.scrollHeight;
  };

  // Duration ticks while the run is active and freezes at its end.
  const duration = document.querySelector<HTMLElement>('[data-duration]');
  let started: number | null = duration?.dataset.started ? Number(duration.dataset.started) : null;
  let ended: number | null = duration?.dataset.ended ? Number(duration.dataset.ended) : null;
  const showDuration = () => {
    if (duration) duration.textContent = started ? formatDuration((ended ?? Date.now()) - started) : '—';
  };
  const ticker = window.setInterval(showDuration, 1000);

  const source = new EventSource(box.dataset.logStream!, { withCredentials: true });
  source.addEventListener('open', () => {
    dot?.classList.add('live');
    if (status) status.textContent = 'Live';
  });
  source.addEventListener('log', (ev) => append(parse<string>(ev)));
  source.addEventListener('state', (ev) => showState(parse<RunState>(ev)));
  source.addEventListener('stats', (ev) => showStats(parse<{ stats: Record<string, unknown> | null }>(ev).stats));
  source.addEventListener('errors', (ev) => showErrors(parse<{ errors: ErrorRecord[] | null }>(ev).errors));
  source.addEventListener('items', (ev) => showItems(parse<{ items: unknown[] | null; more: boolean }>(ev)));
  source.addEventListener('end', (ev) => {
    if (partial) append('\n');
    source.close();
    window.clearInterval(ticker);
    showDuration();
    dot?.classList.remove('live');
    const reason = parse<{ reason?: string }>(ev).reason;
    if (status) status.textContent = `The run is over (${reason ?? 'ended'}): the whole log is shown.`;
    if (box.childElementCount === 0) box.append(el('span', { class: 'muted' }, '(the log is empty)'));
    for (const p of document.querySelectorAll<HTMLElement>('[data-stats-empty], [data-errors-empty], [data-items-empty]')) {
      if (p.textContent === 'Loading…') p.textContent = 'The node did not answer.';
    }
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) return;
    dot?.classList.remove('live');
    if (status) status.textContent = 'Reconnecting…';
  });

  function showState(s: RunState): void {
    for (const k of ['started_at', 'ended_at'] as const) {
      const field = document.querySelector(`[data-time-field="${k}"]`);
      if (field) field.textContent = s[k] === null ? '—' : formatLocal(new Date(s[k]));
    }
    for (const [k, v] of Object.entries(s)) {
      const field = document.querySelector(`[data-job-result] [data-field="${k}"]`);
      if (field) field.textContent = v === null ? '—' : String(v);
    }
    const badge = document.querySelector('[data-job-state] .badge');
    const shown = s.state === 'finished' ? String(s.outcome ?? 'finished') : String(s.state);
    if (badge) { badge.className = `badge ${shown}`; badge.textContent = shown.replace(/_/g, ' '); }
    started = s.started_at;
    ended = s.ended_at;
    showDuration();
    // A run that is over cannot be cancelled: its button goes away without a reload.
    if (!s.active) for (const f of document.querySelectorAll('[data-cancel-form]')) f.remove();
    const note = document.querySelector<HTMLElement>('[data-note]');
    if (note && s.note) {
      note.textContent = s.note;
      note.classList.remove('hidden');
      document.querySelector('[data-note-label]')?.classList.remove('hidden');
    }
    const node = document.querySelector<HTMLElement>('[data-node-field]');
    if (node && s.node && node.textContent?.trim() !== s.node) {
      const base = document.querySelector<HTMLMetaElement>('meta[name="base-path"]')?.content ?? '';
      node.replaceChildren(el('a', { href: `${base}/nodes/${encodeURIComponent(s.node)}` }, s.node));
    }
  }
}

function showStats(data: Record<string, unknown> | null): void {
  const panel = document.querySelector<HTMLElement>('[data-job-stats]');
  if (!panel) return;
  const empty = panel.querySelector<HTMLElement>('[data-stats-empty]')!;
  const facts = panel.querySelector<HTMLElement>('[data-stats-facts]')!;
  if (!data) {
    empty.textContent = 'No Scrapy stats yet: the node has not parsed this log (or it is away).';
    return;
  }
  const cats = (data.log_categories ?? {}) as Record<string, { count: number }>;
  const shown: Array<[string, unknown]> = [
    ['Pages', data.pages], ['Items', data.items], ['Runtime', data.runtime], ['Finish reason', data.finish_reason],
    ['Errors logged', cats.error_logs?.count], ['Warnings logged', cats.warning_logs?.count], ['Retries', cats.retry_logs?.count],
    ['Redirects', cats.redirect_logs?.count], ['First log', data.first_log_time], ['Latest log', data.latest_log_time],
  ];
  const crawler = (data.crawler_stats ?? {}) as Record<string, unknown>;
  for (const key of ['downloader/request_count', 'downloader/response_bytes', 'item_scraped_count', 'response_received_count']) {
    if (crawler[key] !== undefined) shown.push([key, crawler[key]]);
  }
  facts.replaceChildren();
  for (const [k, v] of shown) facts.append(el('dt', {}, k), el('dd', { 'data-stat': k }, v === null || v === undefined || v === '' ? '—' : String(v)));
  empty.classList.add('hidden');
  facts.classList.remove('hidden');
}

function showErrors(errors: ErrorRecord[] | null): void {
  const panel = document.querySelector<HTMLElement>('[data-job-errors]');
  if (!panel) return;
  const empty = panel.querySelector<HTMLElement>('[data-errors-empty]')!;
  const list = panel.querySelector<HTMLElement>('[data-errors-list]')!;
  list.replaceChildren();
  if (!errors?.length) {
    empty.classList.remove('hidden');
    empty.textContent = errors ? 'No errors recorded.' : 'The node did not answer.';
    return;
  }
  empty.classList.add('hidden');
  for (const e of errors.slice(0, 20)) {
    const item = el('div', { class: 'error-item' });
    item.append(el('div', { class: 'small' }, `${e.time} · ${e.level}`), el('div', { class: 'mono small' }, e.message));
    if (e.traceback) item.append(el('pre', { class: 'log short' }, e.traceback));
    list.append(item);
  }
}

/** A cell's text: strings as they are, nested values as "key: value" pairs (readable, not raw JSON). */
function cellText(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return v.map(cellText).join(', ');
  return Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}: ${cellText(x)}`).join('; ');
}

/** The first items as a table: one column per key (in first-seen order), nested values as JSON. */
function showItems(data: { items: unknown[] | null; more: boolean }): void {
  const panel = document.querySelector<HTMLElement>('[data-job-items]');
  if (!panel) return;
  const empty = panel.querySelector<HTMLElement>('[data-items-empty]')!;
  const box = panel.querySelector<HTMLElement>('[data-items-table]')!;
  const items = data.items ?? [];
  if (!items.length) {
    empty.classList.remove('hidden');
    empty.textContent = data.items ? 'No items yet.' : 'No items file for this job (yet).';
    box.replaceChildren();
    return;
  }
  const rows = items.map((it) => (it !== null && typeof it === 'object' && !Array.isArray(it) ? (it as Record<string, unknown>) : { value: it }));
  const columns: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!columns.includes(k) && columns.length < 30) columns.push(k);
  const table = el('table', { class: 'list items' });
  const head = el('tr');
  head.append(el('th', { class: 'num' }, '#'), ...columns.map((c) => el('th', {}, c)));
  table.append(el('thead'));
  table.tHead!.append(head);
  const body = el('tbody');
  rows.forEach((r, i) => {
    const tr = el('tr');
    tr.append(el('td', { class: 'num muted' }, String(i + 1)));
    for (const c of columns) {
      const v = r[c];
      const text = cellText(v);
      tr.append(el('td', { class: 'cell' }, text.length > 300 ? `${text.slice(0, 300)}…` : text));
    }
    body.append(tr);
  });
  table.append(body);
  box.replaceChildren(table);
  empty.classList.remove('hidden');
  empty.textContent = data.more ? `The first ${rows.length} items; download the file for all of them.` : `${rows.length} item${rows.length === 1 ? '' : 's'}.`;
}
