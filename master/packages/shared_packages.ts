import { createHash } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { SqlDb } from '../store/sql_db.ts';

/**
 * Package files for masters that share one database (PostgreSQL): every uploaded package is also
 * kept in the database, content-addressed by its sha256 and split in 1 MiB chunks, so the master
 * that deploys it (the leader, to a node that joins later) need not be the one that received it.
 * Each master keeps a local copy per sha256 (`cacheDir/SHA.zip`), fetched once and checked against
 * the hash before use. Chunks are written and read one at a time: a 200 MiB package never sits in
 * one query. A sha256 no version refers to any more is deleted.
 */
const CHUNK = 1024 * 1024;

export class SharedPackages {
  constructor(private readonly db: SqlDb, private readonly cacheDir: string) {}

  /** Stores the package's bytes unless that content is already there. */
  async put(sha256: string, data: Buffer): Promise<void> {
    const have = await this.db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM package_chunks WHERE sha256 = ?`, [sha256]);
    const chunks = Math.max(1, Math.ceil(data.length / CHUNK));
    if (have && Number(have.n) === chunks) return;
    await this.db.tx(async () => {
      await this.db.run(`DELETE FROM package_chunks WHERE sha256 = ?`, [sha256]);
      for (let i = 0; i < chunks; i++) {
        await this.db.run(`INSERT INTO package_chunks (sha256, seq, data) VALUES (?, ?, ?)`, [sha256, i, data.subarray(i * CHUNK, (i + 1) * CHUNK)]);
      }
    });
  }

  /** A local file with this content, fetched from the database when this master has none. */
  async localFile(sha256: string): Promise<string> {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`bad package hash ${sha256}`);
    const path = join(this.cacheDir, `${sha256}.zip`);
    if (await stat(path).then(() => true, () => false)) return path;
    await mkdir(this.cacheDir, { recursive: true });
    const staging = `${path}.incoming-${process.pid}-${Date.now()}`;
    const out = await open(staging, 'w', 0o600);
    const hash = createHash('sha256');
    let seq = 0;
    try {
      for (;;) {
        const row = await this.db.get<{ data: Buffer }>(`SELECT data FROM package_chunks WHERE sha256 = ? AND seq = ?`, [sha256, seq]);
        if (!row) break;
        hash.update(row.data);
        await out.write(row.data);
        seq++;
      }
    } finally {
      await out.close();
    }
    if (seq === 0 || hash.digest('hex') !== sha256) {
      await rm(staging, { force: true });
      throw new Error(seq === 0 ? `package ${sha256.slice(0, 12)}… is not in the database` : `package ${sha256.slice(0, 12)}… in the database does not match its hash`);
    }
    await rename(staging, path);
    return path;
  }

  /** Deletes contents no version refers to any more (after versions were deleted). */
  async collect(): Promise<void> {
    await this.db.run(`DELETE FROM package_chunks WHERE sha256 NOT IN (SELECT sha256 FROM versions)`);
  }
}
