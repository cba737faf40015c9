import { apiJson, basePath, el } from './api.ts';
import { localTimes } from './time.ts';

/** Sections marked data-refresh="N" reload their content from the server every N seconds. */
export function autoRefresh(): void {
  for (const section of document.querySelectorAll<HTMLElement>('[data-refresh]')) {
    const every = Number(section.dataset.refresh) * 1000;
    const index = [...document.querySelectorAll('[data-refresh]')].indexOf(section);
    window.setInterval(async () => {
      if (document.hidden) return;
      try {
        const res = await fetch(location.href, { credentials: 'same-origin' });
        if (!res.ok || res.redirected) return;
        const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
        const fresh = doc.querySelectorAll<HTMLElement>('[data-refresh]')[index];
        if (fresh) {
          section.replaceChildren(...[...fresh.childNodes].map((n) => document.importNode(n, true)));
          localTimes(section);
        }
      } catch { /* try again next time */ }
    }, every);
  }
}

interface Deployment { finished_at: number | null; targets: Array<{ node: string; state: string; message: string | null; spiders: number | null }> }

/** A deployment page follows each node's result as it arrives. */
export function deploymentProgress(): void {
  const box = document.querySelector<HTMLElement>('[data-deployment]');
  if (!box) return;
  const id = box.dataset.deployment!;
  const tick = async () => {
    try {
      const { deployment } = await apiJson<{ deployment: Deployment }>('GET', `/api/deployments/${id}`);
      for (const t of deployment.targets) {
        const row = box.querySelector<HTMLElement>(`tr[data-node="${CSS.escape(t.node)}"]`);
        if (!row) continue;
        const badge = el('span', { class: `badge ${t.state}` }, t.state);
        row.querySelector('[data-field="state"]')?.replaceChildren(badge);
        const spiders = row.querySelector('[data-field="spiders"]');
        if (spiders) spiders.textContent = t.spiders === null ? '—' : String(t.spiders);
        const message = row.querySelector('[data-field="message"]');
        if (message) message.textContent = t.message ?? '';
      }
      if (deployment.finished_at) {
        document.querySelector('[data-deploy-state]')?.replaceChildren(el('span', { class: 'badge finished' }, 'finished'));
        return;
      }
    } catch { /* keep polling */ }
    window.setTimeout(() => void tick(), 1000);
  };
  void tick();
}

/** Job page: the Scrapy stats (LogParser's figures) and the error records from the node. */
export function jobDetails(): void {
  const stats = document.querySelector<HTMLElement>('[data-job-stats]');
  if (stats) {
    void (async () => {
      const empty = stats.querySelector<HTMLElement>('[data-stats-empty]')!;
      const res = await fetch(stats.dataset.jobStats!, { credentials: 'same-origin' }).catch(() => null);
      const data = res && res.ok ? ((await res.json()) as Record<string, unknown>) : null;
      if (!data) { empty.textContent = 'No Scrapy stats for this job (not a Scrapy spider, or its node is away).'; return; }
      const facts = stats.querySelector<HTMLElement>('[data-stats-facts]')!;
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
      for (const [k, v] of shown) facts.append(el('dt', {}, k), el('dd', {}, v === null || v === undefined ? '—' : String(v)));
      empty.classList.add('hidden');
      facts.classList.remove('hidden');
    })();
  }
  const errors = document.querySelector<HTMLElement>('[data-job-errors]');
  if (errors) {
    void (async () => {
      const empty = errors.querySelector<HTMLElement>('[data-errors-empty]')!;
      const res = await fetch(errors.dataset.jobErrors!, { credentials: 'same-origin' }).catch(() => null);
      const data = res && res.ok ? ((await res.json()) as { errors?: Array<{ time: string; level: string; message: string; traceback: string | null }> }) : null;
      if (!data?.errors?.length) { empty.textContent = data ? 'No errors recorded.' : 'The node did not answer.'; return; }
      empty.classList.add('hidden');
      const list = errors.querySelector<HTMLElement>('[data-errors-list]')!;
      for (const e of data.errors.slice(0, 20)) {
        const item = el('div', { class: 'error-item' });
        item.append(el('div', { class: 'small' }, `${e.time} · ${e.level}`), el('div', { class: 'mono small' }, e.message));
        if (e.traceback) item.append(el('pre', { class: 'log short' }, e.traceback));
        list.append(item);
      }
    })();
  }
}

/** The upload form guesses project and version from the file: the egg's settings module or a NAME-VERSION file name. */
export function uploadPrefill(): void {
  const form = document.querySelector<HTMLFormElement>('[data-upload-form]');
  if (!form) return;
  const file = form.querySelector<HTMLInputElement>('input[type=file]')!;
  const project = form.querySelector<HTMLInputElement>('input[name=project]')!;
  const version = form.querySelector<HTMLInputElement>('input[name=version]')!;
  const hint = form.querySelector<HTMLElement>('[data-upload-hint]');
  file.addEventListener('change', async () => {
    const f = file.files?.[0];
    if (!f) return;
    const base = f.name.replace(/\.(egg|zip)$/i, '');
    const m = /^(.+?)-(\d[\w.+-]*?)(?:-py\d.*)?$/.exec(base);
    let guessedProject = m?.[1] ?? base;
    let guessedVersion = m?.[2] ?? '';
    const settings = await readZipText(f, 'EGG-INFO/entry_points.txt').catch(() => null);
    const module = settings ? /\[scrapy\][^[]*?settings\s*=\s*([\w.]+)/.exec(settings)?.[1] : undefined;
    if (module) guessedProject = module.split('.')[0]!;
    if (!guessedVersion || guessedVersion === '1.0') guessedVersion = new Date().toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
    if (!project.value) project.value = guessedProject;
    if (!version.value) version.value = guessedVersion;
    if (hint) hint.textContent = module ? `Scrapy egg, settings module ${module}.` : (await readZipText(f, 'spiderplane.json').catch(() => null)) ? 'Generic package with spiderplane.json.' : '';
  });
}

/** Reads one entry of a zip in the browser (central directory + DecompressionStream), or null. */
async function readZipText(file: File, name: string): Promise<string | null> {
  const tail = new DataView(await file.slice(Math.max(0, file.size - 65_557)).arrayBuffer());
  let eocd = -1;
  for (let i = tail.byteLength - 22; i >= 0; i--) if (tail.getUint32(i, true) === 0x06054b50) { eocd = i; break; }
  if (eocd < 0) return null;
  const cdSize = tail.getUint32(eocd + 12, true);
  const cdOffset = tail.getUint32(eocd + 16, true);
  const cd = new DataView(await file.slice(cdOffset, cdOffset + cdSize).arrayBuffer());
  const decoder = new TextDecoder();
  for (let p = 0; p + 46 <= cd.byteLength && cd.getUint32(p, true) === 0x02014b50;) {
    const method = cd.getUint16(p + 10, true);
    const compSize = cd.getUint32(p + 20, true);
    const nameLen = cd.getUint16(p + 28, true);
    const extraLen = cd.getUint16(p + 30, true);
    const commentLen = cd.getUint16(p + 32, true);
    const local = cd.getUint32(p + 42, true);
    const entry = decoder.decode(new Uint8Array(cd.buffer, p + 46, nameLen));
    if (entry === name && compSize < 1_000_000) {
      const head = new DataView(await file.slice(local, local + 30).arrayBuffer());
      const start = local + 30 + head.getUint16(26, true) + head.getUint16(28, true);
      const data = file.slice(start, start + compSize);
      if (method === 0) return data.text();
      if (method === 8) return new Response(data.stream().pipeThrough(new DecompressionStream('deflate-raw'))).text();
      return null;
    }
    p += 46 + nameLen + extraLen + commentLen;
  }
  return null;
}

export { basePath };
