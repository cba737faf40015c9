// Just enough YAML for daemon/'s compose file and Kubernetes manifests (no YAML package is a
// dependency): block mappings and lists, flow lists/maps ([a, "b"], {k: v}), quoted and plain
// scalars (all kept as strings), comments, `---` documents, anchors (&x, dropped) and aliases (*x,
// kept as the string '*x'). Not a general YAML parser: block scalars (| >) and multi-line flow
// collections are refused rather than misread.

export type Yaml = string | null | Yaml[] | { [k: string]: Yaml };

interface Line { indent: number; text: string; no: number }

function stripComment(s: string): string {
  let q: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (q) { if (c === q) q = null; continue; }
    if (c === '"' || c === "'") q = c;
    else if (c === '#' && (i === 0 || /\s/.test(s[i - 1]!))) return s.slice(0, i);
  }
  return s;
}

function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let q: string | null = null;
  let cur = '';
  for (const c of s) {
    if (q) { cur += c; if (c === q) q = null; continue; }
    if (c === '"' || c === "'") q = c;
    if (c === '[' || c === '{') depth++;
    if (c === ']' || c === '}') depth--;
    if (c === ',' && depth === 0) { out.push(cur); cur = ''; continue; }
    cur += c;
  }
  if (cur.trim() !== '') out.push(cur);
  return out.map((x) => x.trim());
}

function keyValue(s: string): [string, string] | null {
  const m = /^("[^"]*"|'[^']*'|[^\s"'{[][^:]*?)\s*:(?:\s+(.*))?$/.exec(s);
  return m ? [unquote(m[1]!), (m[2] ?? '').trim()] : null;
}

function unquote(s: string): string {
  const t = s.trim();
  if (t.startsWith('"') && t.endsWith('"') && t.length >= 2) return JSON.parse(t) as string;
  if (t.startsWith("'") && t.endsWith("'") && t.length >= 2) return t.slice(1, -1).replace(/''/g, "'");
  return t;
}

function scalar(raw: string, no: number): Yaml {
  const s = raw.replace(/^&\S+\s*/, '').trim();
  if (s === '' || s === '~' || s === 'null') return null;
  if (s === '|' || s === '>' || /^[|>][-+]?$/.test(s)) throw new Error(`line ${no}: block scalars are not supported`);
  if (s.startsWith('[')) {
    if (!s.endsWith(']')) throw new Error(`line ${no}: multi-line flow list`);
    return splitTop(s.slice(1, -1)).map((x) => scalar(x, no));
  }
  if (s.startsWith('{')) {
    if (!s.endsWith('}')) throw new Error(`line ${no}: multi-line flow map`);
    const out: Record<string, Yaml> = {};
    for (const part of splitTop(s.slice(1, -1))) {
      const kv = keyValue(part);
      if (!kv) throw new Error(`line ${no}: bad flow map entry '${part}'`);
      out[kv[0]] = scalar(kv[1], no);
    }
    return out;
  }
  return unquote(s);
}

function block(lines: Line[], start: number): [Yaml, number] {
  const first = lines[start]!;
  const ind = first.indent;
  if (first.text === '-' || first.text.startsWith('- ')) {
    const list: Yaml[] = [];
    let i = start;
    while (i < lines.length && lines[i]!.indent === ind && (lines[i]!.text === '-' || lines[i]!.text.startsWith('- '))) {
      const rest = lines[i]!.text.slice(1).trim();
      if (rest === '') {
        if (i + 1 < lines.length && lines[i + 1]!.indent > ind) { const [v, n] = block(lines, i + 1); list.push(v); i = n; }
        else { list.push(null); i++; }
      } else if (keyValue(rest) && !rest.startsWith('"') && !rest.startsWith("'")) {
        // "- key: value" starts a mapping whose lines sit two columns right of the dash
        const copy = lines.slice();
        copy[i] = { indent: ind + 2, text: rest, no: lines[i]!.no };
        const [v, n] = block(copy, i);
        list.push(v);
        i = n;
      } else {
        list.push(scalar(rest, lines[i]!.no));
        i++;
      }
    }
    return [list, i];
  }
  const map: Record<string, Yaml> = {};
  let i = start;
  while (i < lines.length && lines[i]!.indent === ind && !lines[i]!.text.startsWith('- ')) {
    const kv = keyValue(lines[i]!.text);
    if (!kv) throw new Error(`line ${lines[i]!.no}: expected 'key: value', got '${lines[i]!.text}'`);
    const [key, rest] = kv;
    const value = rest.replace(/^&\S+\s*/, '');
    const next = lines[i + 1];
    if (value === '' && next && (next.indent > ind || (next.indent === ind && next.text.startsWith('- ')))) {
      const [v, n] = block(lines, i + 1);
      map[key] = v;
      i = n;
    } else {
      map[key] = scalar(value, lines[i]!.no);
      i++;
    }
  }
  if (i < lines.length && lines[i]!.indent > ind) throw new Error(`line ${lines[i]!.no}: unexpected indentation`);
  return [map, i];
}

/** Parses every document of a YAML text. */
export function parseYamlDocuments(text: string): Yaml[] {
  const docs: Line[][] = [[]];
  text.split('\n').forEach((raw, idx) => {
    if (/^---\s*$/.test(raw)) { docs.push([]); return; }
    const body = stripComment(raw).replace(/\s+$/, '');
    if (body.trim() === '') return;
    if (body.includes('\t')) throw new Error(`line ${idx + 1}: tab in indentation`);
    docs.at(-1)!.push({ indent: body.length - body.trimStart().length, text: body.trim(), no: idx + 1 });
  });
  return docs.filter((d) => d.length > 0).map((d) => {
    const [v, n] = block(d, 0);
    if (n !== d.length) throw new Error(`line ${d[n]!.no}: could not read from here`);
    return v;
  });
}
