// A hand-rolled ZIP writer for tests, so they can produce archives that no sane library would
// write (adm-zip's addFile sanitises '../x' to 'x', for example): zip-slip names, lying sizes and
// CRCs, symlink attributes, data descriptors, any compression method.
import zlib from 'node:zlib';

/** Independent CRC32 (bitwise, no table) so the tests do not trust the module's. */
export function refCrc32(buf: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of buf) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

export interface RawEntry {
  name: string | Buffer;
  content?: Buffer | string;
  /** 0 = stored, 8 = deflate, anything else is written as-is (content stored raw). */
  method?: number;
  /** Overrides the compressed payload. */
  compressed?: Buffer;
  /** Declared uncompressed size in BOTH headers. */
  size?: number;
  centralSize?: number;
  localSize?: number;
  crc?: number;
  centralCrc?: number;
  /** External attributes (unix mode in the high 16 bits). */
  attr?: number;
  flags?: number;
  /** Write a data descriptor (flag bit 3, zeros in the local header). */
  descriptor?: boolean;
}

export function unixAttr(mode: number, dos = 0): number {
  return ((mode << 16) | dos) >>> 0;
}

export function rawZip(entries: RawEntry[], opts: { declaredCount?: number } = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.isBuffer(e.name) ? e.name : Buffer.from(e.name, 'utf8');
    const isDir = name[name.length - 1] === 0x2f;
    const content = typeof e.content === 'string' ? Buffer.from(e.content, 'utf8') : e.content ?? Buffer.alloc(0);
    const method = e.method ?? (content.length > 0 ? 8 : 0);
    const compressed = e.compressed ?? (method === 8 ? zlib.deflateRawSync(content) : content);
    const crc = e.crc ?? refCrc32(content);
    const size = e.size ?? content.length;
    const flags = (e.flags ?? 0x0800) | (e.descriptor ? 0x0008 : 0);
    const attr = e.attr ?? (isDir ? unixAttr(0o040755, 0x10) : unixAttr(0o100644));

    const loc = Buffer.alloc(30);
    loc.writeUInt32LE(0x04034b50, 0);
    loc.writeUInt16LE(20, 4);
    loc.writeUInt16LE(flags, 6);
    loc.writeUInt16LE(method, 8);
    loc.writeUInt32LE(0x5a210000, 10); // some DOS date/time
    loc.writeUInt32LE(e.descriptor ? 0 : crc, 14);
    loc.writeUInt32LE(e.descriptor ? 0 : compressed.length, 18);
    loc.writeUInt32LE(e.descriptor ? 0 : (e.localSize ?? size), 22);
    loc.writeUInt16LE(name.length, 26);
    loc.writeUInt16LE(0, 28);
    const parts = [loc, name, compressed];
    if (e.descriptor) {
      const dd = Buffer.alloc(16);
      dd.writeUInt32LE(0x08074b50, 0);
      dd.writeUInt32LE(crc, 4);
      dd.writeUInt32LE(compressed.length, 8);
      dd.writeUInt32LE(e.localSize ?? size, 12);
      parts.push(dd);
    }
    const local = Buffer.concat(parts);

    const cen = Buffer.alloc(46);
    cen.writeUInt32LE(0x02014b50, 0);
    cen.writeUInt16LE(0x031e, 4); // made by: unix, zip 3.0
    cen.writeUInt16LE(20, 6);
    cen.writeUInt16LE(flags, 8);
    cen.writeUInt16LE(method, 10);
    cen.writeUInt32LE(0x5a210000, 12);
    cen.writeUInt32LE(e.centralCrc ?? crc, 16);
    cen.writeUInt32LE(compressed.length, 20);
    cen.writeUInt32LE(e.centralSize ?? size, 24);
    cen.writeUInt16LE(name.length, 28);
    cen.writeUInt16LE(0, 30); // extra
    cen.writeUInt16LE(0, 32); // comment
    cen.writeUInt16LE(0, 34); // disk
    cen.writeUInt16LE(0, 36); // internal attrs
    cen.writeUInt32LE(attr, 38);
    cen.writeUInt32LE(offset, 42);
    centrals.push(Buffer.concat([cen, name]));
    locals.push(local);
    offset += local.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  const count = opts.declaredCount ?? entries.length;
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(count, 8);
  eocd.writeUInt16LE(count, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}

