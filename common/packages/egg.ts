// What makes a zip a Scrapy egg: EGG-INFO/entry_points.txt with a [scrapy] section naming the
// settings module — what scrapyd-deploy's generated setup.py declares.

export function scrapySettingsModule(entryPointsTxt: string): string | null {
  let section = '';
  for (const raw of entryPointsTxt.split(/\r?\n/)) {
    const line = raw.trim();
    const header = /^\[(.+)\]$/.exec(line);
    if (header) { section = header[1]!.trim(); continue; }
    if (section !== 'scrapy') continue;
    const m = /^settings\s*=\s*([A-Za-z_][\w.]*)\s*$/.exec(line);
    if (m) return m[1]!;
  }
  return null;
}
