import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import AdmZip from 'adm-zip';
import {
  DEFAULT_ZIP_LIMITS,
  ZipRejected,
  crc32,
  extractZip,
  inspectZip,
  isZip,
  readZipEntry,
  type ZipLimits,
} from '../common/packages/safe_zip.ts';
import { rawZip as buildZip, refCrc32, unixAttr, type RawEntry } from './helpers/raw_zip.ts';

// ---------------------------------------------------------------------------
// The hand-rolled ZIP writer lives in helpers/raw_zip.ts.

/** Find the offsets of the central record and the local header of `name` in a zip buffer. */
function findHeaders(zip: Buffer, name: string): { central: number; local: number } {
  for (let p = zip.indexOf('PK\x01\x02'); p >= 0; p = zip.indexOf('PK\x01\x02', p + 1)) {
    const nameLen = zip.readUInt16LE(p + 28);
    if (zip.subarray(p + 46, p + 46 + nameLen).toString('utf8') === name) {
      return { central: p, local: zip.readUInt32LE(p + 42) };
    }
  }
  throw new Error(`no central record for ${name}`);
}

// ---------------------------------------------------------------------------

async function withTmp(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'safe-zip-test-'));
  try {
    await fn(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * The archive must be refused by all three entry points with a ZipRejected
 * whose message matches, and extractZip must leave NOTHING behind: the test
 * root contains only the (empty) parent dir, and the parent contains nothing.
 */
async function assertRejected(zip: Buffer, message: RegExp, limits?: ZipLimits): Promise<ZipRejected> {
  let caught: unknown;
  try {
    inspectZip(zip, limits);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ZipRejected, `inspectZip should throw ZipRejected, got ${String(caught)}`);
  assert.match(caught.message, message);
  assert.equal(caught.name, 'ZipRejected');

  await withTmp(async (root) => {
    const parent = path.join(root, 'parent');
    await mkdir(parent);
    const dest = path.join(parent, 'pkg');
    await assert.rejects(extractZip(zip, dest, limits), (err: unknown) => {
      assert.ok(err instanceof ZipRejected, `extractZip should reject with ZipRejected, got ${String(err)}`);
      assert.match(err.message, message);
      return true;
    });
    assert.deepEqual(await readdir(parent), [], 'nothing may be left in the parent dir (no dest, no temp dir, no escaped file)');
    assert.deepEqual(await readdir(root), ['parent'], 'nothing may be written next to the parent dir');
  });
  return caught;
}

function assertInspectRejected(zip: Buffer, message: RegExp, limits?: ZipLimits): void {
  assert.throws(
    () => inspectZip(zip, limits),
    (err: unknown) => err instanceof ZipRejected && message.test(err.message),
  );
}

const MB = 1024 * 1024;

// ---------------------------------------------------------------------------

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32(Buffer.alloc(0)), 0);
  const rnd = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) & 0xff));
  assert.equal(crc32(rnd), refCrc32(rnd));
});

test('isZip checks the magic bytes', () => {
  const z = new AdmZip();
  z.addFile('a.txt', Buffer.from('hi'));
  assert.equal(isZip(z.toBuffer()), true);
  assert.equal(isZip(buildZip([])), true, 'empty zip starts with PK\\x05\\x06');
  assert.equal(isZip(Buffer.from('%PDF-1.4 hello')), false);
  assert.equal(isZip(Buffer.from('PK')), false);
  assert.equal(isZip(Buffer.alloc(0)), false);
  assert.equal(isZip(Buffer.from('PK\x01\x02xxxx')), false);
});

test('DEFAULT_ZIP_LIMITS are sane', () => {
  assert.equal(DEFAULT_ZIP_LIMITS.maxEntries, 20000);
  assert.equal(DEFAULT_ZIP_LIMITS.maxTotalUncompressed, 1024 * MB);
});

test('a good zip (written by adm-zip) is inspected, read and extracted with nested dirs', async () => {
  const random = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 2654435761) >>> 24));
  const z = new AdmZip();
  z.addFile('myproject/', Buffer.alloc(0));
  z.addFile('myproject/__init__.py', Buffer.from(''));
  z.addFile('myproject/settings.py', Buffer.from('BOT_NAME = "myproject"\n'));
  z.addFile('myproject/spiders/quotes.py', Buffer.from('import scrapy\n'.repeat(100)));
  z.addFile('EGG-INFO/entry_points.txt', Buffer.from('[scrapy]\nsettings = myproject.settings\n'));
  z.addFile('data/deep/er/blob.bin', random);
  z.addFile('empty/', Buffer.alloc(0));
  const zip = z.toBuffer();

  const infos = inspectZip(zip);
  const byName = new Map(infos.map((i) => [i.name, i]));
  assert.equal(infos.length, 7);
  assert.deepEqual(byName.get('data/deep/er/blob.bin'), {
    name: 'data/deep/er/blob.bin',
    isDirectory: false,
    size: 200_000,
    compressedSize: byName.get('data/deep/er/blob.bin')?.compressedSize,
  });
  assert.equal(byName.get('empty/')?.isDirectory, true);
  assert.equal(byName.get('myproject/settings.py')?.isDirectory, false);

  assert.equal(readZipEntry(zip, 'EGG-INFO/entry_points.txt')?.toString(), '[scrapy]\nsettings = myproject.settings\n');
  assert.equal(readZipEntry(zip, 'nope.txt'), null);
  assert.equal(readZipEntry(zip, 'empty/'), null, 'directories are not files');

  await withTmp(async (root) => {
    const dest = path.join(root, 'parent', 'pkg'); // parent does not exist yet either
    await extractZip(zip, dest);
    assert.deepEqual(await readdir(root), ['parent']);
    assert.deepEqual(await readdir(path.join(root, 'parent')), ['pkg'], 'temp dir must be gone');
    assert.deepEqual((await readdir(dest)).sort(), ['EGG-INFO', 'data', 'empty', 'myproject']);
    assert.equal(await readFile(path.join(dest, 'myproject/settings.py'), 'utf8'), 'BOT_NAME = "myproject"\n');
    assert.equal(await readFile(path.join(dest, 'myproject/spiders/quotes.py'), 'utf8'), 'import scrapy\n'.repeat(100));
    assert.equal(await readFile(path.join(dest, 'myproject/__init__.py'), 'utf8'), '');
    assert.ok((await readFile(path.join(dest, 'data/deep/er/blob.bin'))).equals(random));
    assert.deepEqual(await readdir(path.join(dest, 'empty')), []);
    assert.equal((await stat(path.join(dest, 'myproject/settings.py'))).mode & 0o7777, 0o644);
    assert.equal((await stat(path.join(dest, 'data/deep'))).mode & 0o7777, 0o755);
    assert.equal((await stat(dest)).mode & 0o7777, 0o755);
  });
});

test('a hand-built zip with stored, deflated, data-descriptor and executable entries extracts', async () => {
  const zip = buildZip([
    { name: 'pkg/', content: Buffer.alloc(0) },
    { name: 'pkg/stored.txt', content: Buffer.from('stored bytes'), method: 0 },
    { name: 'pkg/deflated.txt', content: Buffer.from('deflate '.repeat(1000)), method: 8 },
    { name: 'pkg/streamed.txt', content: Buffer.from('written by a streaming zipper'), descriptor: true },
    { name: 'pkg/run.sh', content: Buffer.from('#!/bin/sh\n'), attr: unixAttr(0o104755) }, // setuid: ignored
    { name: 'pkg/dos.txt', content: Buffer.from('dos'), attr: 0x20 }, // no unix mode at all
  ]);
  await withTmp(async (root) => {
    const dest = path.join(root, 'out');
    await extractZip(zip, dest);
    assert.equal(await readFile(path.join(dest, 'pkg/stored.txt'), 'utf8'), 'stored bytes');
    assert.equal(await readFile(path.join(dest, 'pkg/deflated.txt'), 'utf8'), 'deflate '.repeat(1000));
    assert.equal(await readFile(path.join(dest, 'pkg/streamed.txt'), 'utf8'), 'written by a streaming zipper');
    assert.equal((await stat(path.join(dest, 'pkg/run.sh'))).mode & 0o7777, 0o644, 'no setuid/exec bits from the archive');
    assert.equal(await readFile(path.join(dest, 'pkg/dos.txt'), 'utf8'), 'dos');
  });
});

test('an empty zip extracts to an empty directory', async () => {
  const zip = buildZip([]);
  assert.deepEqual(inspectZip(zip), []);
  await withTmp(async (root) => {
    await extractZip(zip, path.join(root, 'e'));
    assert.deepEqual(await readdir(path.join(root, 'e')), []);
  });
});

test('extractZip refuses an existing destination and does not touch it', async () => {
  const zip = buildZip([{ name: 'a.txt', content: Buffer.from('new') }]);
  await withTmp(async (root) => {
    const dest = path.join(root, 'pkg');
    await mkdir(dest);
    await writeFile(path.join(dest, 'a.txt'), 'old');
    await assert.rejects(extractZip(zip, dest), /already exists/);
    assert.equal(await readFile(path.join(dest, 'a.txt'), 'utf8'), 'old');
    assert.deepEqual(await readdir(root), ['pkg']);
    // an existing EMPTY directory too (rename(2) would silently replace it)
    const empty = path.join(root, 'empty');
    await mkdir(empty);
    await assert.rejects(extractZip(zip, empty), /already exists/);
    assert.deepEqual(await readdir(empty), []);
  });
});

// --- malicious names ---------------------------------------------------------

test('zip-slip ../evil.txt is rejected and nothing escapes', async () => {
  const zip = buildZip([
    { name: 'ok.txt', content: Buffer.from('fine') },
    { name: '../evil.txt', content: Buffer.from('pwned') },
  ]);
  await assertRejected(zip, /^zip entry '\.\.\/evil\.txt' escapes the package folder/);
});

test('zip-slip a/../../evil (and a deeper one) is rejected', async () => {
  await assertRejected(buildZip([{ name: 'a/../../evil', content: Buffer.from('pwned') }]), /'a\/\.\.\/\.\.\/evil' escapes the package folder/);
  await assertRejected(buildZip([{ name: 'x/../../../evil2', content: Buffer.from('pwned') }]), /escapes the package folder/);
  await assertRejected(buildZip([{ name: 'a/..', content: Buffer.alloc(0) }]), /escapes the package folder/);
});

test('absolute paths are rejected (unix, drive letter, UNC)', async () => {
  await withTmp(async (elsewhere) => {
    const target = path.join(elsewhere, 'evil'); // a real absolute path an unsafe extractor would write
    await assertRejected(buildZip([{ name: target, content: Buffer.from('pwned') }]), /has an absolute path/);
    assert.equal(existsSync(target), false);
  });
  await assertRejected(buildZip([{ name: '/tmp/evil', content: Buffer.from('pwned') }]), /^zip entry '\/tmp\/evil' has an absolute path/);
  await assertRejected(buildZip([{ name: 'C:\\evil.txt', content: Buffer.from('x') }]), /has an absolute path/);
  await assertRejected(buildZip([{ name: 'c:evil.txt', content: Buffer.from('x') }]), /has an absolute path/);
  await assertRejected(buildZip([{ name: '\\\\server\\share\\x', content: Buffer.from('x') }]), /has an absolute path/);
});

test('backslashes, NUL/control characters, empty/dot segments and long names are rejected', async () => {
  await assertRejected(buildZip([{ name: 'a\\..\\..\\evil', content: Buffer.from('x') }]), /contains a backslash/);
  await assertRejected(buildZip([{ name: 'a\0.txt', content: Buffer.from('x') }]), /NUL or control character/);
  const err = await assertRejected(buildZip([{ name: 'a\n.txt', content: Buffer.from('x') }]), /NUL or control character/);
  assert.ok(!err.message.includes('\n'), 'control characters are escaped in the message');
  await assertRejected(buildZip([{ name: 'a\x1b[31m.txt', content: Buffer.from('x') }]), /control character/);
  await assertRejected(buildZip([{ name: 'a\u009b31m.txt', content: Buffer.from('x') }]), /control character/);
  await assertRejected(buildZip([{ name: 'a//b.txt', content: Buffer.from('x') }]), /empty or '\.' path segment/);
  await assertRejected(buildZip([{ name: './a.txt', content: Buffer.from('x') }]), /empty or '\.' path segment/);
  await assertRejected(buildZip([{ name: 'x'.repeat(1001), content: Buffer.from('x') }]), /longer than 1000 characters/);
  await assertRejected(buildZip([{ name: 'x'.repeat(300), content: Buffer.from('x') }]), /path component longer than 255 bytes/);
  await assertRejected(buildZip([{ name: '', content: Buffer.from('x') }]), /empty name/);
  // 1000 characters made of short segments is fine
  const okName = Array.from({ length: 100 }, () => 'abcdefghi').join('/').slice(0, 999);
  assert.equal(inspectZip(buildZip([{ name: okName, content: Buffer.from('x') }]))[0]?.name, okName);
});

test('duplicate names and file/directory clashes are rejected', async () => {
  await assertRejected(
    buildZip([
      { name: 'spider.py', content: Buffer.from('harmless') },
      { name: 'spider.py', content: Buffer.from('evil') },
    ]),
    /more than one entry named 'spider\.py'/,
  );
  await assertRejected(
    buildZip([
      { name: 'a', content: Buffer.from('file') },
      { name: 'a/b.txt', content: Buffer.from('x') },
    ]),
    /'a' is both a file and a directory/,
  );
  await assertRejected(
    buildZip([
      { name: 'a/', content: Buffer.alloc(0) },
      { name: 'a', content: Buffer.from('file') },
    ]),
    /'a' is both a file and a directory/,
  );
});

// --- entry types -------------------------------------------------------------

test('a symlink entry is rejected', async () => {
  const zip = buildZip([
    { name: 'pkg/ok.py', content: Buffer.from('x = 1\n') },
    { name: 'pkg/link', content: Buffer.from('/etc/passwd'), method: 0, attr: unixAttr(0o120777) },
  ]);
  // adm-zip itself sees the type bits only through header.attr (fileAttr masks them away)
  const entry = new AdmZip(zip).getEntries().find((e) => e.entryName === 'pkg/link');
  assert.equal(((entry?.header.attr ?? 0) >>> 16) & 0o170000, 0o120000);
  await assertRejected(zip, /^zip entry 'pkg\/link' is a symbolic link/);
  // a symlink posing as a directory
  await assertRejected(buildZip([{ name: 'lnk/', content: Buffer.alloc(0), attr: unixAttr(0o120755) }]), /symbolic link/);
});

test('device/fifo entries are rejected', async () => {
  await assertRejected(buildZip([{ name: 'fifo', content: Buffer.alloc(0), attr: unixAttr(0o010644) }]), /special file/);
});

test('encrypted entries and unsupported compression methods are rejected', async () => {
  await assertRejected(buildZip([{ name: 'secret.txt', content: Buffer.from('xxxxxxxxxxxx'), method: 0, flags: 0x0801 }]), /is encrypted/);
  await assertRejected(
    buildZip([{ name: 'a.bz2ed', content: Buffer.from('BZh91AY&SY'), method: 12 }]),
    /^zip entry 'a\.bz2ed' uses unsupported compression method 12/,
  );
  await assertRejected(buildZip([{ name: 'a.lzma', content: Buffer.from('x'), method: 14 }]), /unsupported compression method 14/);
});

// --- limits and bombs --------------------------------------------------------

test('too many entries is rejected', async () => {
  const six = buildZip(Array.from({ length: 6 }, (_, i) => ({ name: `f${i}.txt`, content: Buffer.from(String(i)) })));
  const limits: ZipLimits = { maxEntries: 5, maxTotalUncompressed: MB };
  await assertRejected(six, /zip has 6 entries, more than the limit of 5/, limits);
  assert.equal(inspectZip(six, { maxEntries: 6, maxTotalUncompressed: MB }).length, 6);

  // default limit: 20001 empty entries
  const many = buildZip(Array.from({ length: 20001 }, (_, i) => ({ name: `d/f${i}`, content: Buffer.alloc(0) })));
  assertInspectRejected(many, /20001 entries, more than the limit of 20000/);
});

test('a declared-size bomb (50 MB of zeros, limit 10 MB) is rejected before decompressing', async () => {
  const zeros = Buffer.alloc(50 * MB);
  const z = new AdmZip();
  z.addFile('bomb.bin', zeros);
  const zip = z.toBuffer();
  assert.ok(zip.length < 200_000, `the bomb is small (${zip.length} bytes)`);
  const limits: ZipLimits = { maxEntries: 100, maxTotalUncompressed: 10 * MB };
  await assertRejected(zip, /zip contents exceed the limit of 10 MiB uncompressed/, limits);

  // spread over many entries: the TOTAL is what counts
  const spread = buildZip(Array.from({ length: 6 }, (_, i) => ({ name: `part${i}`, content: Buffer.alloc(2 * MB) })));
  await assertRejected(spread, /exceed the limit of 10 MiB/, limits);
  assert.equal(inspectZip(spread, { ...limits, maxTotalUncompressed: 12 * MB }).length, 6);

  // per-entry limit
  await assertRejected(zip, /per-file limit of 1 MiB/, { maxEntries: 10, maxTotalUncompressed: 100 * MB, maxEntryUncompressed: MB });
});

test('a bomb whose local AND central headers lie about the size is caught while decompressing', async () => {
  const declared = 1000;
  const zeros = Buffer.alloc(50 * MB);
  const z = new AdmZip();
  z.addFile('a_fine.txt', Buffer.from('written first, must be cleaned up'));
  z.addFile('z_bomb.bin', zeros);
  const zip = z.toBuffer();
  const { central, local } = findHeaders(zip, 'z_bomb.bin');
  // uncompressed size: central @24, local @22; make the CRC consistent with the lie too
  const fakeCrc = refCrc32(Buffer.alloc(declared));
  zip.writeUInt32LE(declared, central + 24);
  zip.writeUInt32LE(declared, local + 22);
  zip.writeUInt32LE(fakeCrc, central + 16);
  zip.writeUInt32LE(fakeCrc, local + 14);

  // the headers alone look harmless even with tight limits...
  const tight: ZipLimits = { maxEntries: 10, maxTotalUncompressed: 10 * MB };
  const err = await assertRejected(zip, /^zip entry 'z_bomb\.bin' decompresses to more than its declared size of 1000 bytes/, tight);
  assert.match(err.message, /zip bomb/);
  assert.throws(() => readZipEntry(zip, 'z_bomb.bin', tight), /more than its declared size/);
  // ...and the honest entry is still readable on its own
  assert.equal(readZipEntry(zip, 'a_fine.txt', tight)?.toString(), 'written first, must be cleaned up');
});

test('a stored entry declaring fewer bytes than it contains is rejected', async () => {
  const zip = buildZip([{ name: 's.bin', content: Buffer.alloc(5000), method: 0, size: 10 }]);
  await assertRejected(zip, /stored entry 's\.bin' declares 10 bytes but contains 5000/);
});

test('an entry that is shorter than declared, or has a wrong CRC, is rejected', async () => {
  const content = Buffer.from('hello hello hello hello');
  await assertRejected(buildZip([{ name: 'short.txt', content, size: 1000 }]), /decompresses to 23 bytes but declares 1000/);
  await assertRejected(buildZip([{ name: 'crc.txt', content, crc: 0x12345678 }]), /'crc\.txt' failed its CRC32 check/);
  // adm-zip 0.6.1 only checks the LOCAL crc for non-descriptor entries; the
  // central one must be checked too (here the two disagree)
  await assertRejected(buildZip([{ name: 'crc2.txt', content, centralCrc: 0x12345678 }]), /headers of entry 'crc2\.txt' disagree \(CRC32\)/);
});

test('local and central headers that disagree about the size are rejected', async () => {
  const zip = buildZip([{ name: 'x.bin', content: Buffer.alloc(100_000), centralSize: 10 }]);
  await assertRejected(zip, /headers of entry 'x\.bin' disagree \(uncompressed size\)/);
});

test('corrupt deflate data is rejected', async () => {
  const zip = buildZip([{ name: 'bad.txt', content: Buffer.from('whatever'), method: 8, compressed: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]) }]);
  await assertRejected(zip, /'bad\.txt' has corrupt compressed data/);
});

// --- not a zip at all ---------------------------------------------------------

test('a truncated zip is rejected as not a valid ZIP file', async () => {
  const z = new AdmZip();
  z.addFile('a/b.txt', Buffer.from('some content '.repeat(50)));
  z.addFile('c.txt', Buffer.from('more'));
  const good = z.toBuffer();
  assert.equal(inspectZip(good).length, 2);
  await assertRejected(good.subarray(0, good.length - 10), /^package is not a valid ZIP file: /);
  await assertRejected(good.subarray(0, Math.floor(good.length / 2)), /^package is not a valid ZIP file: /);
  await assertRejected(good.subarray(0, 4), /^package is not a valid ZIP file: /);

  // central directory intact, but the file data chopped out of the middle
  const { local } = findHeaders(good, 'c.txt');
  const chopped = Buffer.concat([good.subarray(0, 40), good.subarray(local)]);
  await assertRejected(chopped, /^package is not a valid ZIP file: /);
});

test('a non-zip is rejected', async () => {
  await assertRejected(Buffer.from('#!/bin/sh\nrm -rf /\n'), /^package is not a valid ZIP file: it does not start with a ZIP signature/);
  await assertRejected(Buffer.alloc(0), /not a valid ZIP file/);
  await assertRejected(Buffer.from('PK\x03\x04 but nothing else of a zip'), /^package is not a valid ZIP file: .*No END header/);
});
