import { pyUnquote, type DirEntry } from '../../slave/http/html_views.ts';

// Reads a node's /logs/ or /items/ directory listing (Twisted's DirectoryLister markup, with or
// without Scrapyd >= 1.5's "Last modified" column — spiderplane slaves and real Scrapyd alike),
// so the master can merge the listings of every node into one.

const ROW = /<tr class="(?:odd|even)">\n\s+<td><a href="([^"]*)">.*?<\/a><\/td>\n\s+<td>(.*?)<\/td>\n(?:\s+<td>.*?<\/td>\n)?\s+<td>.*?<\/td>\n\s+<td>.*?<\/td>\n<\/tr>/g;

const HTML_ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#x27;': "'", '&#39;': "'" };

function unescapeHtml(s: string): string {
  return s.replace(/&(?:amp|lt|gt|quot|#x27|#39);/g, (e) => HTML_ENTITIES[e]!);
}

/** The entries of a listing; the size stays as the node formatted it. */
export function parseDirectoryListing(html: string): DirEntry[] {
  const out: DirEntry[] = [];
  for (const m of html.matchAll(ROW)) {
    const href = unescapeHtml(m[1]!);
    const isDir = href.endsWith('/');
    const name = pyUnquote(isDir ? href.slice(0, -1) : href);
    if (name === '' || name.includes('/')) continue;
    out.push({ name, isDir, size: 0, sizeText: isDir ? '' : unescapeHtml(m[2]!) });
  }
  return out;
}

/** One listing from several: folders merged, a file listed once (the first node's). */
export function mergeListings(listings: DirEntry[][]): DirEntry[] {
  const byName = new Map<string, DirEntry>();
  for (const list of listings) for (const e of list) if (!byName.has(e.name)) byName.set(e.name, e);
  return [...byName.values()];
}
