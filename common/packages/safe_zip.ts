/**
 * Safe handling of untrusted ZIP uploads (Scrapy eggs, generic zip packages).
 *
 * adm-zip is used only to PARSE the archive (end-of-central-directory, central
 * directory, local header lookup). Everything security-relevant is done here:
 * entry-name validation, symlink / special-file rejection, entry-count and size
 * limits, method whitelist, and decompression of every entry from its raw
 * compressed bytes with an output cap of (declared size + 1) and a CRC32 check
 * against BOTH the central and the local header. adm-zip's extractAllTo /
 * extractEntryTo are never used.
 *
 * inspectZip / readZipEntry / extractZip inflate up to maxTotalUncompressed (1 GiB by default)
 * synchronously: the daemons never call them on their event loop but through
 * package_checker.ts, which runs them in a worker thread.
 *
 * Observed adm-zip 0.6.1 behaviour this module compensates for:
 *  - entry.getData() caps deflate output at the declared size (it throws a
 *    RangeError ERR_BUFFER_TOO_LARGE), but it does NOT reject output that is
 *    SHORTER than declared, and for entries without a data descriptor it
 *    checks the CRC from the LOCAL header only (a wrong central CRC passes).
 *  - AdmZip#addFile() sanitises names ('../x' -> 'x'), so it never reports
 *    what an attacker really put in the archive; we read entry.entryName, which
 *    is the raw central-directory name decoded as UTF-8.
 *  - Exact duplicate names make getEntries() throw "Duplicate entry name".
 *  - header.attr is the raw 32-bit external attributes; the unix st_mode is
 *    (attr >>> 16). header.fileAttr masks to 0o777 and hides the file type, so
 *    it cannot be used to detect symlinks.
 */
import AdmZip from 'adm-zip';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, rename, rm, chmod } from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';

export interface ZipLimits {
  /** Maximum number of entries (files + directories) in the archive. */
  maxEntries: number;
  /** Maximum sum of declared uncompressed sizes, in bytes. */
  maxTotalUncompressed: number;
  /** Maximum declared uncompressed size of one entry, in bytes (defaults to maxTotalUncompressed). */
  maxEntryUncompressed?: number;
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = Object.freeze({
  maxEntries: 20_000,
  maxTotalUncompressed: 1024 * 1024 * 1024, // 1 GiB
  maxEntryUncompressed: 256 * 1024 * 1024, // 256 MiB: one entry is decompressed in memory
});

/** The upload was refused. The message is meant to be shown to the uploading user. */
export class ZipRejected extends Error {
  override readonly name = 'ZipRejected';
}

export interface ZipEntryInfo {
  name: string;
  isDirectory: boolean;
  /** Declared uncompressed size (verified against the real data by inspectZip / extractZip). */
  size: number;
  compressedSize: number;
}

const MAX_NAME_LENGTH = 1000;
const MAX_SEGMENT_BYTES = 255;

const METHOD_STORED = 0;
const METHOD_DEFLATED = 8;

const FLAG_ENCRYPTED = 0x0001;
const FLAG_DATA_DESCRIPTOR = 0x0008;

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

const LOC_SIG = 0x04034b50;
const LOC_HEADER_LEN = 30;
const ZIP64_MARKER = 0xffffffff;

const FILE_MODE = 0o644;
const DIR_MODE = 0o755;

// ---------------------------------------------------------------------------
// CRC32 (IEEE 802.3, the one ZIP uses): zlib.crc32 (native, Node >= 20.15) where Node has it,
// else a table-driven one in JavaScript (several times slower).

const CRC_TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32Js(buf: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < buf.length; i++) crc = CRC_TABLE[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

export function crc32(buf: Uint8Array): number {
  return nativeCrc32 ? nativeCrc32(buf) >>> 0 : crc32Js(buf);
}

// ---------------------------------------------------------------------------

export function isZip(buf: Buffer): boolean {
  if (buf.length < 4) return false;
  if (buf[0] !== 0x50 || buf[1] !== 0x4b) return false; // "PK"
  return (buf[2] === 0x03 && buf[3] === 0x04) || (buf[2] === 0x05 && buf[3] === 0x06);
}

/** Render an attacker-controlled name for an error message: quoted, escaped, bounded. */
function show(name: string): string {
  const clipped = name.length > 120 ? `${name.slice(0, 120)}…` : name;
  // eslint-disable-next-line no-control-regex
  const escaped = clipped.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return `'${escaped}'`;
}

function reasonOf(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/^ADM-ZIP:\s*/, '');
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024 * 1024) return `${+(n / (1024 * 1024 * 1024)).toFixed(2)} GiB`;
  if (n >= 1024 * 1024) return `${+(n / (1024 * 1024)).toFixed(2)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(2)} KiB`;
  return `${n} bytes`;
}

/** One validated entry; internal. */
interface CheckedEntry {
  info: ZipEntryInfo;
  /** Path segments, already validated (no '', '.', '..', no separators). */
  segments: string[];
  method: number;
  /** CRC32 from the central directory (verified equal to the local one when the local one is meaningful). */
  crc: number;
  /** Raw compressed bytes, a view into the input buffer. */
  compressed: Buffer;
}

function checkLimits(limits: ZipLimits): void {
  const ok = (n: number | undefined) => n === undefined || (Number.isFinite(n) && n >= 0);
  if (!ok(limits.maxEntries) || !ok(limits.maxTotalUncompressed) || !ok(limits.maxEntryUncompressed)) {
    throw new TypeError('invalid ZipLimits');
  }
}

/** Validate an entry name and split it into path segments. Throws ZipRejected. */
function validateName(name: string, isDirectory: boolean): string[] {
  if (name.length === 0) throw new ZipRejected('zip contains an entry with an empty name');
  if (name.length > MAX_NAME_LENGTH) {
    throw new ZipRejected(`zip entry ${show(name)} has a name longer than ${MAX_NAME_LENGTH} characters`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) {
    throw new ZipRejected(`zip entry ${show(name)} contains a NUL or control character in its name`);
  }
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name) || name.startsWith('\\\\')) {
    throw new ZipRejected(`zip entry ${show(name)} has an absolute path`);
  }
  if (name.includes('\\')) {
    throw new ZipRejected(`zip entry ${show(name)} contains a backslash; only '/' is allowed as path separator`);
  }
  const body = isDirectory && name.endsWith('/') ? name.slice(0, -1) : name;
  const segments = body.split('/');
  if (segments.includes('..')) {
    throw new ZipRejected(`zip entry ${show(name)} escapes the package folder ('..' path segment)`);
  }
  if (segments.some((s) => s === '' || s === '.')) {
    throw new ZipRejected(`zip entry ${show(name)} has an empty or '.' path segment`);
  }
  for (const s of segments) {
    if (Buffer.byteLength(s, 'utf8') > MAX_SEGMENT_BYTES) {
      throw new ZipRejected(`zip entry ${show(name)} has a path component longer than ${MAX_SEGMENT_BYTES} bytes`);
    }
  }
  return segments;
}

/**
 * Parse and validate everything that can be validated without decompressing.
 * Returns entries in central-directory order (adm-zip sorts by name).
 */
function validateStructure(data: Buffer, limits: ZipLimits): CheckedEntry[] {
  checkLimits(limits);
  if (!Buffer.isBuffer(data)) throw new TypeError('zip data must be a Buffer');
  if (!isZip(data)) {
    throw new ZipRejected('package is not a valid ZIP file: it does not start with a ZIP signature (PK)');
  }

  let zip: AdmZip;
  let entries: AdmZip.IZipEntry[];
  try {
    zip = new AdmZip(data);
  } catch (err) {
    throw new ZipRejected(`package is not a valid ZIP file: ${reasonOf(err)}`);
  }
  // The count in the end-of-central-directory record is available before the
  // central directory itself is parsed: refuse huge archives early.
  const declaredCount = zip.getEntryCount();
  if (declaredCount > limits.maxEntries) {
    throw new ZipRejected(`zip has ${declaredCount} entries, more than the limit of ${limits.maxEntries}`);
  }
  try {
    entries = zip.getEntries();
  } catch (err) {
    const reason = reasonOf(err);
    const dup = /^Duplicate entry name "(.*)"$/s.exec(reason);
    if (dup) throw new ZipRejected(`zip contains more than one entry named ${show(dup[1] ?? '')}`);
    throw new ZipRejected(`package is not a valid ZIP file: ${reason}`);
  }
  if (entries.length > limits.maxEntries) {
    throw new ZipRejected(`zip has ${entries.length} entries, more than the limit of ${limits.maxEntries}`);
  }

  const maxEntry = limits.maxEntryUncompressed ?? limits.maxTotalUncompressed;
  const seen = new Set<string>();
  const checked: CheckedEntry[] = [];
  let total = 0;

  for (const entry of entries) {
    const header = entry.header;
    const name = entry.entryName;
    const unixMode = (header.attr >>> 16) & 0xffff;
    const fileType = unixMode & S_IFMT;
    const isDirectory = name.endsWith('/') || fileType === S_IFDIR;

    const segments = validateName(name, isDirectory);

    const key = segments.join('/') + (isDirectory ? '/' : '');
    if (seen.has(key)) throw new ZipRejected(`zip contains more than one entry named ${show(key)}`);
    seen.add(key);

    if (fileType === S_IFLNK) {
      throw new ZipRejected(`zip entry ${show(name)} is a symbolic link; symlinks are not allowed in packages`);
    }
    if (fileType !== 0 && fileType !== S_IFREG && fileType !== S_IFDIR) {
      throw new ZipRejected(`zip entry ${show(name)} is a special file (device, FIFO or socket); only regular files and directories are allowed`);
    }
    if (header.flags & FLAG_ENCRYPTED) {
      throw new ZipRejected(`zip entry ${show(name)} is encrypted; encrypted packages are not supported`);
    }
    if (header.method !== METHOD_STORED && header.method !== METHOD_DEFLATED) {
      throw new ZipRejected(
        `zip entry ${show(name)} uses unsupported compression method ${header.method}; only stored (0) and deflate (8) are allowed`,
      );
    }

    const size = header.size;
    const compressedSize = header.compressedSize;
    if (!Number.isSafeInteger(size) || !Number.isSafeInteger(compressedSize) || size < 0 || compressedSize < 0) {
      throw new ZipRejected(`zip entry ${show(name)} has an invalid size field`);
    }
    if (isDirectory && size !== 0) {
      throw new ZipRejected(`zip entry ${show(name)} is a directory but declares ${size} bytes of content`);
    }
    total += size;
    if (total > limits.maxTotalUncompressed) {
      throw new ZipRejected(
        `zip contents exceed the limit of ${formatBytes(limits.maxTotalUncompressed)} uncompressed (at entry ${show(name)})`,
      );
    }
    if (size > maxEntry) {
      throw new ZipRejected(
        `zip entry ${show(name)} is ${formatBytes(size)} uncompressed, more than the per-file limit of ${formatBytes(maxEntry)}`,
      );
    }

    // Locate the raw data. adm-zip checks the local header signature and that
    // the declared compressed extent lies inside the buffer.
    let compressed: Buffer;
    try {
      compressed = entry.getCompressedData();
    } catch (err) {
      throw new ZipRejected(`package is not a valid ZIP file: entry ${show(name)}: ${reasonOf(err)}`);
    }
    if (compressed.length !== compressedSize) {
      throw new ZipRejected(`package is not a valid ZIP file: entry ${show(name)} data is truncated`);
    }
    if (header.method === METHOD_STORED && compressedSize !== size) {
      throw new ZipRejected(
        `package is not a valid ZIP file: stored entry ${show(name)} declares ${size} bytes but contains ${compressedSize}`,
      );
    }
    checkLocalHeader(data, entry, name);

    checked.push({
      info: { name, isDirectory, size, compressedSize },
      segments,
      method: header.method,
      crc: header.crc,
      compressed,
    });
  }

  // A name may not be both a file and a directory ("a" and "a/b").
  const dirs = new Set<string>();
  for (const e of checked) {
    for (let i = 1; i < e.segments.length; i++) dirs.add(e.segments.slice(0, i).join('/'));
    if (e.info.isDirectory) dirs.add(e.segments.join('/'));
  }
  for (const e of checked) {
    if (!e.info.isDirectory && dirs.has(e.segments.join('/'))) {
      throw new ZipRejected(`zip entry ${show(e.info.name)} is both a file and a directory`);
    }
  }
  return checked;
}

/**
 * Compare the local file header with the central directory record: a zip whose
 * two headers disagree (name, method, sizes, CRC) is read differently by
 * different tools, which is a classic way to smuggle content past a checker.
 */
function checkLocalHeader(data: Buffer, entry: AdmZip.IZipEntry, name: string): void {
  const h = entry.header;
  const off = h.offset;
  const bad = (what: string): never => {
    throw new ZipRejected(`package is not a valid ZIP file: local and central headers of entry ${show(name)} disagree (${what})`);
  };
  if (off + LOC_HEADER_LEN > data.length || data.readUInt32LE(off) !== LOC_SIG) bad('missing local header');
  const flags = data.readUInt16LE(off + 6);
  const method = data.readUInt16LE(off + 8);
  const crc = data.readUInt32LE(off + 14);
  const csize = data.readUInt32LE(off + 18);
  const usize = data.readUInt32LE(off + 22);
  const nameLen = data.readUInt16LE(off + 26);
  if (off + LOC_HEADER_LEN + nameLen > data.length) bad('truncated name');
  const localName = data.subarray(off + LOC_HEADER_LEN, off + LOC_HEADER_LEN + nameLen);
  if (!localName.equals(entry.rawEntryName)) bad('name');
  if (method !== h.method) bad('compression method');
  if ((flags & FLAG_ENCRYPTED) !== (h.flags & FLAG_ENCRYPTED)) bad('encryption flag');
  // With a data descriptor (bit 3) the local CRC/sizes are placeholders.
  if (!(flags & FLAG_DATA_DESCRIPTOR)) {
    if (crc !== h.crc) bad('CRC32');
    if (csize !== ZIP64_MARKER && csize !== h.compressedSize) bad('compressed size');
    if (usize !== ZIP64_MARKER && usize !== h.size) bad('uncompressed size');
  }
}

/** Decompress one validated entry, enforcing its declared size and CRC. */
function decompress(e: CheckedEntry): Buffer {
  const { name, size } = e.info;
  let out: Buffer;
  if (e.info.isDirectory) return Buffer.alloc(0);
  if (e.method === METHOD_STORED) {
    out = Buffer.from(e.compressed); // copy: do not hand out a view into the upload
  } else {
    try {
      out = zlib.inflateRawSync(e.compressed, { maxOutputLength: size + 1 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new ZipRejected(
          `zip entry ${show(name)} decompresses to more than its declared size of ${size} bytes (zip bomb?)`,
        );
      }
      throw new ZipRejected(`package is not a valid ZIP file: entry ${show(name)} has corrupt compressed data: ${reasonOf(err)}`);
    }
  }
  if (out.length > size) {
    throw new ZipRejected(`zip entry ${show(name)} decompresses to more than its declared size of ${size} bytes (zip bomb?)`);
  }
  if (out.length < size) {
    throw new ZipRejected(
      `package is not a valid ZIP file: entry ${show(name)} decompresses to ${out.length} bytes but declares ${size}`,
    );
  }
  if (crc32(out) !== e.crc) {
    throw new ZipRejected(`package is not a valid ZIP file: entry ${show(name)} failed its CRC32 check`);
  }
  return out;
}

/**
 * Validate the whole archive without writing anything: structure, names,
 * limits, and (one entry at a time, in memory) that every entry really
 * decompresses to its declared size with a matching CRC32.
 */
export function inspectZip(data: Buffer, limits: ZipLimits = DEFAULT_ZIP_LIMITS): ZipEntryInfo[] {
  const entries = validateStructure(data, limits);
  for (const e of entries) decompress(e);
  return entries.map((e) => ({ ...e.info }));
}

/**
 * Validate the archive structure and decompress the single file entry `name`
 * (exact match). Returns null when there is no such file entry (directories
 * included).
 */
export function readZipEntry(data: Buffer, name: string, limits: ZipLimits = DEFAULT_ZIP_LIMITS): Buffer | null {
  const entries = validateStructure(data, limits);
  const e = entries.find((x) => x.info.name === name && !x.info.isDirectory);
  return e ? decompress(e) : null;
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Extract into `destDir`, which must not exist yet. Entries are written into
 * a fresh temporary sibling directory which is renamed to `destDir` only after
 * every entry has been verified and written; on any failure the temporary
 * directory is removed and `destDir` is not created.
 *
 * Throws ZipRejected for a bad archive, a plain Error if `destDir` exists, and
 * filesystem errors as they are.
 */
export async function extractZip(data: Buffer, destDir: string, limits: ZipLimits = DEFAULT_ZIP_LIMITS): Promise<void> {
  const entries = validateStructure(data, limits);

  const dest = path.resolve(destDir);
  const parent = path.dirname(dest);
  if (dest === parent) throw new Error(`refusing to extract a zip onto ${dest}`);
  if (await exists(dest)) throw new Error(`extraction target already exists: ${dest}`);
  await mkdir(parent, { recursive: true });

  const tmp = path.join(parent, `.${path.basename(dest)}.partial-${process.pid}-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp, { mode: 0o700 }); // fails if it somehow exists: never reuse a directory
  try {
    const created = new Set<string>(['']);
    const ensureDir = async (segments: string[]): Promise<void> => {
      for (let i = 1; i <= segments.length; i++) {
        const rel = segments.slice(0, i).join('/');
        if (created.has(rel)) continue;
        const abs = path.join(tmp, ...segments.slice(0, i));
        await mkdir(abs, { mode: DIR_MODE }); // non-recursive: fails if anything is already there
        await chmod(abs, DIR_MODE);
        created.add(rel);
      }
    };

    for (const e of entries) {
      const target = path.join(tmp, ...e.segments);
      // Defence in depth: names were validated, but never write outside tmp.
      if (!target.startsWith(tmp + path.sep)) {
        throw new ZipRejected(`zip entry ${show(e.info.name)} escapes the package folder`);
      }
      if (e.info.isDirectory) {
        await ensureDir(e.segments);
        continue;
      }
      await ensureDir(e.segments.slice(0, -1));
      const content = decompress(e);
      // 'wx' = O_CREAT|O_EXCL: never opens an existing file or follows a symlink.
      const fh = await open(target, 'wx', FILE_MODE);
      try {
        await fh.writeFile(content);
        await fh.chmod(FILE_MODE);
      } finally {
        await fh.close();
      }
    }

    await chmod(tmp, DIR_MODE);
    // Re-check right before the rename (rename(2) would replace an empty dir).
    if (await exists(dest)) throw new Error(`extraction target already exists: ${dest}`);
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}
