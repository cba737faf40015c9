import type { Db } from '../../common/sqlite.ts';
import type { LimitHit, RunLimits } from '../../common/types.ts';

// The limit columns of the jobs table (max_runtime, max_memory, nice, limit_hit), kept apart from
// JobStore so the limits feature stays in its own files. NULL limits mean "the slave's default".

/** What a job asked for: null = use the slave's default; 0 = explicitly none. */
export interface RequestedLimits {
  maxRuntime: number | null;
  maxMemory: number | null;
  nice: number | null;
}

export class JobLimitStore {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      set: db.prepare(`UPDATE jobs SET max_runtime = @maxRuntime, max_memory = @maxMemory, nice = @nice WHERE uid = @uid`),
      get: db.prepare(`SELECT max_runtime, max_memory, nice, limit_hit FROM jobs WHERE uid = ?`),
      hit: db.prepare(`UPDATE jobs SET limit_hit = ? WHERE uid = ?`),
    };
  }

  /** Records what a newly queued job asked for. */
  set(uid: number, r: RequestedLimits): void { this.s.set.run({ uid, ...r }); }

  requested(uid: number): RequestedLimits {
    const row = this.s.get.get(uid) as { max_runtime: number | null; max_memory: number | null; nice: number | null } | undefined;
    return { maxRuntime: row?.max_runtime ?? null, maxMemory: row?.max_memory ?? null, nice: row?.nice ?? null };
  }

  recordHit(uid: number, hit: LimitHit): void { this.s.hit.run(JSON.stringify(hit), uid); }
}

/** The limits a job runs under: its own where given, else the slave's defaults; 0 means none. */
export function effectiveLimits(r: RequestedLimits, defaults: RequestedLimits): RunLimits {
  const pick = (own: number | null, def: number | null) => {
    const v = own ?? def;
    return v === null || v === 0 ? null : v;
  };
  return { max_runtime: pick(r.maxRuntime, defaults.maxRuntime), max_memory: pick(r.maxMemory, defaults.maxMemory), nice: pick(r.nice, defaults.nice) };
}

/** Reads the limit columns of a row selected with `SELECT *` (they are not in JobRow). */
export function limitColumns(row: object): { requested: RequestedLimits; hit: LimitHit | null } {
  const r = row as { max_runtime?: number | null; max_memory?: number | null; nice?: number | null; limit_hit?: string | null };
  return {
    requested: { maxRuntime: r.max_runtime ?? null, maxMemory: r.max_memory ?? null, nice: r.nice ?? null },
    hit: r.limit_hit ? (JSON.parse(r.limit_hit) as LimitHit) : null,
  };
}
