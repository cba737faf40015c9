// A parser for the Python literal Scrapy pprints after "Dumping Scrapy stats:". LogParser
// regex-rewrites it into JSON; a real parser also copes with wrapped strings, tz-aware datetimes,
// nested dicts and True/False/None. IncompleteLiteral means: wait for more lines.

import type { CrawlerStatsValue } from './logparser_json.ts';


export class IncompleteLiteral extends Error {}

const PY_ESCAPES: Record<string, string> = {
  n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0', a: '\x07', b: '\b', f: '\f', v: '\v',
};

export class PyLiteralParser {
  private pos = 0;
  constructor(private readonly s: string) {}

  /** Parses one value starting at the first '{'; returns it and the index just after it. */
  static parseDict(text: string): { value: CrawlerStatsValue; end: number } {
    const p = new PyLiteralParser(text);
    p.pos = text.indexOf('{');
    if (p.pos < 0) throw new IncompleteLiteral('no dict yet');
    const value = p.value();
    return { value, end: p.pos };
  }

  private peek(): string {
    if (this.pos >= this.s.length) throw new IncompleteLiteral('unexpected end');
    return this.s[this.pos]!;
  }
  private ws(): void {
    while (this.pos < this.s.length && /\s/.test(this.s[this.pos]!)) this.pos++;
  }
  private expect(c: string): void {
    this.ws();
    if (this.peek() !== c) throw new SyntaxError(`expected '${c}' at ${this.pos}`);
    this.pos++;
  }

  private value(): CrawlerStatsValue {
    this.ws();
    const c = this.peek();
    if (c === '{') return this.dict();
    if (c === '[' || c === '(') return this.list(c === '[' ? ']' : ')');
    if (c === "'" || c === '"' || (/[bBuUrR]/.test(c) && /['"]/.test(this.s[this.pos + 1] ?? ''))) return this.strings();
    if (c === '<') return this.balanced('<', '>');
    const num = /^-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)/.exec(this.s.slice(this.pos, this.pos + 64));
    if (num) {
      this.pos += num[0].length;
      return Number(num[0]);
    }
    const ident = /^[A-Za-z_][\w.]*/.exec(this.s.slice(this.pos, this.pos + 256));
    if (!ident) throw new SyntaxError(`unexpected '${c}' at ${this.pos}`);
    this.pos += ident[0].length;
    if (this.pos < this.s.length && this.s[this.pos] === '(') {
      // datetime.datetime(2026, 1, 2, 3, 4, 5, 6) and other reprs stay strings, as in LogParser.
      return ident[0] + this.balanced('(', ')');
    }
    if (ident[0] === 'True') return true;
    if (ident[0] === 'False') return false;
    if (ident[0] === 'None') return null;
    return ident[0];
  }

  private dict(): { [key: string]: CrawlerStatsValue } {
    const out: { [key: string]: CrawlerStatsValue } = {};
    this.pos++; // '{'
    for (;;) {
      this.ws();
      if (this.peek() === '}') {
        this.pos++;
        return out;
      }
      const key = this.value();
      this.expect(':');
      out[typeof key === 'string' ? key : JSON.stringify(key)] = this.value();
      this.ws();
      const sep = this.peek();
      this.pos++;
      if (sep === '}') return out;
      if (sep !== ',') throw new SyntaxError(`expected ',' or '}' at ${this.pos - 1}`);
    }
  }

  private list(close: string): CrawlerStatsValue[] {
    const out: CrawlerStatsValue[] = [];
    this.pos++;
    for (;;) {
      this.ws();
      if (this.peek() === close) {
        this.pos++;
        return out;
      }
      out.push(this.value());
      this.ws();
      const sep = this.peek();
      this.pos++;
      if (sep === close) return out;
      if (sep !== ',') throw new SyntaxError(`expected ',' at ${this.pos - 1}`);
    }
  }

  private balanced(open: string, close: string): string {
    const from = this.pos;
    let depth = 0;
    let quote = '';
    for (; this.pos < this.s.length; this.pos++) {
      const c = this.s[this.pos]!;
      if (quote) {
        if (c === '\\') this.pos++;
        else if (c === quote) quote = '';
      } else if (c === "'" || c === '"') quote = c;
      else if (c === open) depth++;
      else if (c === close && --depth === 0) return this.s.slice(from, ++this.pos);
    }
    throw new IncompleteLiteral('unbalanced');
  }

  /** One or more adjacent string literals (pprint wraps long strings that way). */
  private strings(): string {
    let out = this.string();
    for (;;) {
      const save = this.pos;
      this.ws();
      if (this.pos >= this.s.length) {
        this.pos = save;
        return out;
      }
      const c = this.s[this.pos]!;
      if (c === "'" || c === '"' || (/[bBuUrR]/.test(c) && /['"]/.test(this.s[this.pos + 1] ?? ''))) out += this.string();
      else {
        this.pos = save;
        return out;
      }
    }
  }

  private string(): string {
    let raw = false;
    while (/[bBuUrRfF]/.test(this.peek())) {
      if (/[rR]/.test(this.s[this.pos]!)) raw = true;
      this.pos++;
    }
    const q = this.peek();
    this.pos++;
    let out = '';
    for (;;) {
      const c = this.peek();
      this.pos++;
      if (c === q) return out;
      if (c !== '\\' || raw) {
        out += c;
        continue;
      }
      const e = this.peek();
      this.pos++;
      const hexLen = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
      if (hexLen) {
        const hex = this.s.slice(this.pos, this.pos + hexLen);
        if (hex.length < hexLen) throw new IncompleteLiteral('escape');
        this.pos += hexLen;
        out += String.fromCodePoint(parseInt(hex, 16));
      } else if (e in PY_ESCAPES) out += PY_ESCAPES[e];
      else if (e === '\n') {
        // line continuation
      } else out += '\\' + e;
    }
  }
}
