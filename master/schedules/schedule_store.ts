import type { Db } from '../../common/sqlite.ts';
import type { Target } from '../runs/dispatcher.ts';
import type { RunPolicy } from '../runs/run_policy.ts';

export interface ScheduleRow {
  id: number;
  name: string;
  cron: string;
  timezone: string | null;
  project: string;
  spider: string;
  version: string | null;
  target: string;
  args: string;
  settings: string;
  priority: number;
  enabled: number;
  overlap: 'skip' | 'allow';
  missed: 'skip' | 'run_once';
  max_retries: number;
  /** JSON RunPolicy: limits and failure retries of the runs it starts */
  run_policy: string;
  last_fire_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface ScheduleInput {
  name: string;
  cron: string;
  timezone: string | null;
  project: string;
  spider: string;
  version: string | null;
  target: Target;
  args: Record<string, string>;
  settings: Record<string, string>;
  priority: number;
  enabled: boolean;
  overlap: 'skip' | 'allow';
  missed: 'skip' | 'run_once';
  max_retries: number;
  /** limits and failure retries of the runs it starts (absent: none, the slaves' defaults) */
  policy?: RunPolicy;
}

export type FireOutcome = 'dispatched' | 'skipped-overlap' | 'missed' | 'missed-run' | 'failed' | 'manual';

export class ScheduleStore {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      all: db.prepare(`SELECT * FROM schedules ORDER BY name, id`),
      get: db.prepare(`SELECT * FROM schedules WHERE id = ?`),
      insert: db.prepare(`INSERT INTO schedules (name, cron, timezone, project, spider, version, target, args, settings, priority, enabled, overlap, missed, max_retries, created_at, updated_at)
                          VALUES (@name, @cron, @timezone, @project, @spider, @version, @target, @args, @settings, @priority, @enabled, @overlap, @missed, @max_retries, @now, @now)`),
      update: db.prepare(`UPDATE schedules SET name = @name, cron = @cron, timezone = @timezone, project = @project, spider = @spider, version = @version,
                          target = @target, args = @args, settings = @settings, priority = @priority, enabled = @enabled, overlap = @overlap, missed = @missed,
                          max_retries = @max_retries, updated_at = @now WHERE id = @id`),
      remove: db.prepare(`DELETE FROM schedules WHERE id = ?`),
      setPolicy: db.prepare(`UPDATE schedules SET run_policy = ? WHERE id = ?`),
      claim: db.prepare(`UPDATE schedules SET last_fire_at = ? WHERE id = ? AND enabled = 1 AND (last_fire_at IS NULL OR last_fire_at < ?)`),
      fire: db.prepare(`INSERT OR IGNORE INTO schedule_fires (schedule_id, scheduled_for, handled_at, outcome, detail) VALUES (?, ?, ?, ?, ?)`),
      fires: db.prepare(`SELECT scheduled_for, handled_at, outcome, detail FROM schedule_fires WHERE schedule_id = ? ORDER BY scheduled_for DESC, id DESC LIMIT ?`),
      firesAfter: db.prepare(`SELECT f.id, f.schedule_id, f.scheduled_for, f.outcome, f.detail, s.name AS schedule_name, s.project, s.spider
                              FROM schedule_fires f JOIN schedules s ON s.id = f.schedule_id WHERE f.id > ? ORDER BY f.id LIMIT ?`),
      lastFireId: db.prepare(`SELECT COALESCE(MAX(id), 0) AS id FROM schedule_fires`),
    };
  }

  private row(i: ScheduleInput) {
    return { ...i, target: JSON.stringify(i.target), args: JSON.stringify(i.args), settings: JSON.stringify(i.settings), enabled: i.enabled ? 1 : 0, now: Date.now() };
  }

  all(): ScheduleRow[] { return this.s.all.all() as ScheduleRow[]; }
  get(id: number): ScheduleRow | undefined { return this.s.get.get(id) as ScheduleRow | undefined; }
  create(i: ScheduleInput): ScheduleRow {
    return this.db.transaction(() => {
      const id = Number(this.s.insert.run(this.row(i)).lastInsertRowid);
      this.s.setPolicy.run(JSON.stringify(i.policy ?? {}), id);
      return this.get(id)!;
    })();
  }
  update(id: number, i: ScheduleInput): ScheduleRow | undefined {
    this.db.transaction(() => {
      this.s.update.run({ ...this.row(i), id });
      // An input without a policy (enable/disable from the list) keeps the stored one.
      if (i.policy !== undefined) this.s.setPolicy.run(JSON.stringify(i.policy), id);
    })();
    return this.get(id);
  }
  remove(id: number): boolean { return this.s.remove.run(id).changes > 0; }

  /**
   * Marks an occurrence as handled, once: true for the one caller that claims it. The claim is
   * committed before anything is dispatched, so no restart or race can fire it twice.
   */
  claim(id: number, occurrence: number): boolean { return this.s.claim.run(occurrence, id, occurrence).changes === 1; }

  recordFire(id: number, occurrence: number, outcome: FireOutcome, detail: string | null): void {
    this.s.fire.run(id, occurrence, Date.now(), outcome, detail);
  }

  /** Whether anything was recorded for an occurrence (a claim with no record was interrupted). */
  hasFire(id: number, occurrence: number): boolean {
    return this.db.prepare(`SELECT 1 FROM schedule_fires WHERE schedule_id = ? AND scheduled_for = ?`).get(id, occurrence) !== undefined;
  }

  /** Fires of every schedule recorded after fire `cursor`, oldest first, with their schedule's names (for the alert rules). */
  firesAfter(cursor: number, limit: number): Array<{ id: number; schedule_id: number; scheduled_for: number; outcome: FireOutcome; detail: string | null; schedule_name: string; project: string; spider: string }> {
    return this.s.firesAfter.all(cursor, limit) as Array<{ id: number; schedule_id: number; scheduled_for: number; outcome: FireOutcome; detail: string | null; schedule_name: string; project: string; spider: string }>;
  }

  lastFireId(): number { return (this.s.lastFireId.get() as { id: number }).id; }

  fires(id: number, limit = 50): Array<{ scheduled_for: number; handled_at: number; outcome: FireOutcome; detail: string | null }> {
    return this.s.fires.all(id, limit) as Array<{ scheduled_for: number; handled_at: number; outcome: FireOutcome; detail: string | null }>;
  }
}
