import { apiJson, el } from './api.ts';
import { formatLocal } from './time.ts';

interface Preview { valid: boolean; error?: string; description?: string | null; next?: string[] }

/** The cron field validates as you type: croner's reason on error, the meaning in words, the next five runs. */
export function cronEditor(): void {
  const input = document.querySelector<HTMLInputElement>('[data-cron-input]');
  const box = document.querySelector<HTMLElement>('[data-cron-preview]');
  if (!input || !box) return;
  const tz = document.querySelector<HTMLInputElement>('[data-cron-tz]');
  let seq = 0;
  let timer: number | undefined;
  const show = async () => {
    const mine = ++seq;
    const cron = input.value.trim();
    if (!cron) {
      box.replaceChildren(el('div', { class: 'error' }, 'Enter a cron expression.'));
      input.classList.add('invalid');
      return;
    }
    try {
      const p = await apiJson<Preview>('POST', '/api/cron/preview', { cron, timezone: tz?.value.trim() || null });
      if (mine !== seq) return;
      input.classList.toggle('invalid', !p.valid);
      input.setCustomValidity(p.valid ? '' : p.error ?? 'invalid');
      if (!p.valid) {
        box.replaceChildren(el('div', { class: 'error', 'data-cron-error': '' }, p.error ?? 'Invalid expression'));
        return;
      }
      const list = el('ol', { 'data-cron-next': '' });
      for (const iso of p.next ?? []) list.append(el('li', {}, formatLocal(new Date(iso))));
      const zone = tz?.value.trim() || "the master's local time";
      box.replaceChildren(el('div', { class: 'words' }, p.description ? `${p.description} (${zone})` : ''), el('div', { class: 'small muted' }, 'Next runs, in your local time:'), list);
    } catch (e) {
      if (mine === seq) box.replaceChildren(el('div', { class: 'error' }, (e as Error).message));
    }
  };
  const later = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void show(), 250);
  };
  input.addEventListener('input', () => {
    document.querySelector('[data-form-error]')?.remove(); // the server's verdict was about the old text
    later();
  });
  tz?.addEventListener('change', later);
  for (const b of document.querySelectorAll<HTMLButtonElement>('[data-preset]')) {
    b.addEventListener('click', () => {
      input.value = b.dataset.preset!;
      void show();
    });
  }
  void show();
}
