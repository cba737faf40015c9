// Serialises like Python's json.dumps with default arguments: separators ", " and ": ",
// non-ASCII escaped as \uXXXX. Scrapyd clients compare bodies byte for byte in places, and the
// reference captures (shared/reference) were made this way.

const NON_ASCII = /[\u007f-\uffff]/g;

function quote(s: string): string {
  return JSON.stringify(s).replace(NON_ASCII, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

function write(v: unknown, out: string[]): void {
  if (v === null || v === undefined) { out.push('null'); return; }
  switch (typeof v) {
    case 'string': out.push(quote(v)); return;
    case 'number': out.push(Number.isFinite(v) ? String(v) : (Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity')); return;
    case 'boolean': out.push(v ? 'true' : 'false'); return;
    case 'object': break;
    default: out.push('null'); return;
  }
  if (Array.isArray(v)) {
    out.push('[');
    for (let i = 0; i < v.length; i++) { if (i) out.push(', '); write(v[i], out); }
    out.push(']');
    return;
  }
  if (v instanceof PreSerialized) { out.push(v.text); return; }
  out.push('{');
  let first = true;
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (val === undefined) continue;
    if (!first) out.push(', ');
    first = false;
    out.push(quote(k), ': ');
    write(val, out);
  }
  out.push('}');
}

/** A fragment that is already Python-style JSON (lets hot paths cache serialised rows). */
export class PreSerialized {
  constructor(readonly text: string) {}
}

export function pyJson(v: unknown): string {
  const out: string[] = [];
  write(v, out);
  return out.join('');
}
