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

interface Deployment { finished_at: number | null; targets: Array<{ node: string; state: string; message: string | null; spiders: number | null; phase?: string | null; build_log?: string | null }> }

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
        // While the node builds the version's dependencies: "building environment" and pip's/npm's log as it grows.
        if (message && t.phase) {
          const parts: Node[] = [el('span', { 'data-field': 'phase' }, `${t.phase}…`)];
          if (t.build_log) parts.push(el('pre', { class: 'log build-log', 'data-field': 'build-log' }, t.build_log));
          message.replaceChildren(...parts);
        } else if (message) message.textContent = t.message ?? '';
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
    // A zip named NAME-VERSION.zip says its version. An egg's "1.0" is setup.py's default, which says
    // nothing, so an egg gets a timestamp (what scrapyd-deploy uses) instead.
    const fromName = !!guessedVersion && !(module && guessedVersion === '1.0');
    if (!fromName) guessedVersion = new Date().toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
    if (!project.value) project.value = guessedProject;
    if (!version.value) version.value = guessedVersion;
    const what = module ? `Scrapy egg, settings module ${module}.` : (await readZipText(f, 'spiderplane.json').catch(() => null)) ? 'Generic package with spiderplane.json.' : '';
    if (hint) hint.textContent = `${what}${what ? ' ' : ''}${fromName ? `Version ${guessedVersion} from the file name.` : 'Version: a timestamp (change it if you like).'}`;
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
