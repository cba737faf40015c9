// Python `re` emulation, so ScrapydWeb's patterns can be pasted into tests verbatim.

/** Strip whitespace and comments the way Python's re.X (VERBOSE) does. */
export function stripVerbose(src: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src.charAt(i);
    if (c === '\\') {
      out += c + src.charAt(i + 1);
      i++;
    } else if (inClass) {
      if (c === ']') inClass = false;
      out += c;
    } else if (c === '[') {
      inClass = true;
      out += c;
    } else if (/\s/.test(c)) {
      // ignored in verbose mode
    } else if (c === '#') {
      while (i < src.length && src.charAt(i) !== '\n') i++;
    } else {
      out += c;
    }
  }
  return out;
}

export function pyRe(src: string, flags: { X?: boolean; S?: boolean } = {}): RegExp {
  const body = (flags.X === true ? stripVerbose(src) : src).replace(/\(\?P</g, '(?<');
  return new RegExp(body, flags.S === true ? 'gs' : 'g');
}

/** re.findall with groups: a list of tuples, '' for groups that did not participate. */
export function findall(re: RegExp, text: string): string[][] {
  return [...text.matchAll(re)].map((m) => m.slice(1).map((g) => g ?? ''));
}
