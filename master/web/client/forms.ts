import { el } from './api.ts';

/** Forms marked data-confirm ask before they submit (deletes, cancels). */
export function confirmForms(): void {
  document.addEventListener('submit', (ev) => {
    const form = ev.target as HTMLFormElement;
    const question = form.dataset.confirm;
    if (question && !window.confirm(question)) ev.preventDefault();
  });
}

/** Key/value rows (spider arguments, settings): NAME_key / NAME_value pairs with add and remove. */
export function keyValueRows(): void {
  for (const box of document.querySelectorAll<HTMLElement>('[data-kv]')) {
    const name = box.dataset.kv!;
    const disabled = !!box.closest('fieldset[disabled]');
    const addRow = (k = '', v = '') => {
      const row = el('div', { class: 'kv-row' });
      const key = el('input', { type: 'text', name: `${name}_key`, placeholder: name === 'settings' ? 'SETTING_NAME' : 'name', 'aria-label': `${name} name` });
      const val = el('input', { type: 'text', name: `${name}_value`, placeholder: 'value', 'aria-label': `${name} value` });
      key.value = k;
      val.value = v;
      const remove = el('button', { type: 'button', class: 'secondary small', 'aria-label': 'remove row' }, '✕');
      remove.addEventListener('click', () => row.remove());
      row.append(key, val, remove);
      box.insertBefore(row, add);
    };
    const add = el('button', { type: 'button', class: 'secondary small' }, `+ Add ${name === 'args' ? 'argument' : 'setting'}`);
    add.addEventListener('click', () => addRow());
    box.append(add);
    let values: Record<string, string> = {};
    try { values = JSON.parse(box.dataset.values ?? '{}') as Record<string, string>; } catch { /* none */ }
    for (const [k, v] of Object.entries(values)) addRow(k, v);
    if (disabled) add.remove();
  }
}

/** Target pickers: show the node select or the count field that the chosen mode needs. */
export function targetPickers(): void {
  for (const select of document.querySelectorAll<HTMLSelectElement>('[data-target-mode]')) {
    const form = select.form!;
    const sync = () => {
      form.querySelector('[data-target-node]')?.classList.toggle('hidden', select.value !== 'node');
      form.querySelector('[data-target-count]')?.classList.toggle('hidden', select.value !== 'nodes');
    };
    select.addEventListener('change', sync);
    sync();
  }
}

/** The schedule editor's spider and version lists follow the chosen project. */
export function projectPickers(): void {
  const project = document.querySelector<HTMLSelectElement>('[data-project-select]');
  if (!project) return;
  const filter = () => {
    for (const sel of document.querySelectorAll<HTMLSelectElement>('[data-spider-select], [data-version-select]')) {
      let firstVisible: HTMLOptionElement | null = null;
      for (const opt of sel.options) {
        const show = !opt.dataset.project || opt.dataset.project === project.value;
        opt.hidden = !show;
        opt.disabled = !show;
        if (show && !firstVisible && opt.value) firstVisible = opt;
      }
      if (sel.selectedOptions[0]?.disabled) sel.value = sel.hasAttribute('data-version-select') ? '' : firstVisible?.value ?? '';
    }
  };
  project.addEventListener('change', filter);
  filter();
}

/** The alert rule form shows the threshold, duration and scope fields the chosen kind takes. */
export function ruleForms(): void {
  for (const form of document.querySelectorAll<HTMLFormElement>('[data-rule-form]')) {
    const kind = form.querySelector<HTMLSelectElement>('[data-rule-kind]')!;
    const scope = form.querySelector<HTMLSelectElement>('[data-rule-scope]')!;
    const sync = () => {
      const opt = kind.selectedOptions[0];
      const threshold = opt?.dataset.threshold ?? '';
      form.querySelector('[data-rule-threshold]')?.classList.toggle('hidden', !threshold);
      const hint = form.querySelector('[data-threshold-hint]');
      if (hint) hint.textContent = threshold;
      form.querySelector('[data-rule-duration]')?.classList.toggle('hidden', !opt?.dataset.duration);
      const scopes = (opt?.dataset.scopes ?? 'all').split(',');
      for (const o of scope.options) { o.hidden = !scopes.includes(o.value); o.disabled = o.hidden; }
      if (scope.selectedOptions[0]?.disabled) scope.value = 'all';
      const s = scope.value;
      for (const f of form.querySelectorAll<HTMLElement>('[data-scope-field]')) {
        const which = f.dataset.scopeField;
        f.classList.toggle('hidden', !(which === s || (which === 'project' && s === 'spider')));
      }
    };
    kind.addEventListener('change', sync);
    scope.addEventListener('change', sync);
    sync();
  }
}
