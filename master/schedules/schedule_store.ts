import type { SqlDb } from '../store/sql_db.ts';
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

type FireAfter = { id: number; schedule_id: number; scheduled_for: number; outcome: FireOutcome; detail: string | null; schedule_name: string; project: string; spider: string };

/**
 * Schedules and their fire history. An occurrence is claimed by one conditional UPDATE before
 * anything is dispatched: of any number of claimers (a restart, a race, masters sharing one
 * PostgreSQL under READ COMMITTED) exactly one gets it.
 */
export class ScheduleStore {
  constructor(private readonly db: SqlDb) {}

  private row(i: ScheduleInput) {
    return { ...i, target: JSON.stringify(i.target), args: JSON.stringify(i.args), settings: JSON.stringify(i.settings), enabled: i.enabled ? 1 : 0, now: Date.now() };
  }

  async count(): Promise<number> { return Number((await this.db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM schedules`))!.n); }
  all(): Promise<ScheduleRow[]> { return this.db.all<ScheduleRow>(`SELECT * FROM schedules ORDER BY name, id`); }
  get(id: number): Promise<ScheduleRow | undefined> { return this.db.get<ScheduleRow>(`SELECT * FROM schedules WHERE id = ?`, [id]); }
  create(i: ScheduleInput): Promise<ScheduleRow> {
    return this.db.tx(async () => {
      const id = await this.db.insert(`INSERT INTO schedules (name, cron, timezone, project, spider, version, target, args, settings, priority, enabled, overlap, missed, max_retries, created_at, updated_at)
        VALUES (@name, @cron, @timezone, @project, @spider, @version, @target, @args, @settings, @priority, @enabled, @overlap, @missed, @max_retries, @now, @now)`, this.row(i));
      await this.db.run(`UPDATE schedules SET run_policy = ? WHERE id = ?`, [JSON.stringify(i.policy ?? {}), id]);
      return (await this.get(id))!;
    });
  }
  async update(id: number, i: ScheduleInput): Promise<ScheduleRow | undefined> {
    await this.db.tx(async () => {
      await this.db.run(`UPDATE schedules SET name = @name, cron = @cron, timezone = @timezone, project = @project, spider = @spider, version = @version,
        target = @target, args = @args, settings = @settings, priority = @priority, enabled = @enabled, overlap = @overlap, missed = @missed,
        max_retries = @max_retries, updated_at = @now WHERE id = @id`, { ...this.row(i), id });
      // An input without a policy (enable/disable from the list) keeps the stored one.
      if (i.policy !== undefined) await this.db.run(`UPDATE schedules SET run_policy = ? WHERE id = ?`, [JSON.stringify(i.policy), id]);
    });
    return this.get(id);
  }
  async remove(id: number): Promise<boolean> { return (await this.db.run(`DELETE FROM schedules WHERE id = ?`, [id])) > 0; }

  /**
   * Marks an occurrence as handled, once: true for the one caller that claims it. The claim is
   * committed before anything is dispatched, so no restart or race can fire it twice.
   */
  async claim(id: number, occurrence: number): Promise<boolean> {
    return (await this.db.run(`UPDATE schedules SET last_fire_at = ? WHERE id = ? AND enabled = 1 AND (last_fire_at IS NULL OR last_fire_at < ?)`,
      [occurrence, id, occurrence])) === 1;
  }

  async recordFire(id: number, occurrence: number, outcome: FireOutcome, detail: string | null): Promise<void> {
    await this.db.run(`INSERT INTO schedule_fires (schedule_id, scheduled_for, handled_at, outcome, detail) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      [id, occurrence, Date.now(), outcome, detail]);
  }

  /** Whether anything was recorded for an occurrence (a claim with no record was interrupted). */
  async hasFire(id: number, occurrence: number): Promise<boolean> {
    return (await this.db.get(`SELECT 1 AS x FROM schedule_fires WHERE schedule_id = ? AND scheduled_for = ?`, [id, occurrence])) !== undefined;
  }

  /** Fires of every schedule recorded after fire `cursor`, oldest first, with their schedule's names (for the alert rules). */
  firesAfter(cursor: number, limit: number): Promise<FireAfter[]> {
    return this.db.all<FireAfter>(`SELECT f.id, f.schedule_id, f.scheduled_for, f.outcome, f.detail, s.name AS schedule_name, s.project, s.spider
      FROM schedule_fires f JOIN schedules s ON s.id = f.schedule_id WHERE f.id > ? ORDER BY f.id LIMIT ?`, [cursor, limit]);
  }

  /** Every schedule's name by id (run tables name the schedule that made a run). */
  async names(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const r of await this.db.all<{ id: number; name: string }>(`SELECT id, name FROM schedules`)) out[String(r.id)] = r.name;
    return out;
  }

  async lastFireId(): Promise<number> { return Number((await this.db.get<{ id: number }>(`SELECT COALESCE(MAX(id), 0) AS id FROM schedule_fires`))!.id); }

  fires(id: number, limit = 50): Promise<Array<{ scheduled_for: number; handled_at: number; outcome: FireOutcome; detail: string | null }>> {
    return this.db.all(`SELECT scheduled_for, handled_at, outcome, detail FROM schedule_fires WHERE schedule_id = ? ORDER BY scheduled_for DESC, id DESC LIMIT ?`, [id, limit]);
  }
}
