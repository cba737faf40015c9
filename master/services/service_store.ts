// Every SQL statement about spider services (desired state). A service's replicas are runs
// tagged with its id (runs.service_id); this store keeps only what the user asked for and the
// status the reconciler last reached, so a master restart resumes from the database.
import type { SqlDb } from '../store/sql_db.ts';

export interface ServiceRow {
  id: number;
  name: string;
  project: string;
  spider: string;
  version: string | null;
  args: string;
  settings: string;
  replicas: number;
  max_per_node: number | null;
  labels: string;
  max_unavailable: number;
  max_runtime: number | null;
  max_memory: number | null;
  stable_version: string | null;
  paused_version: string | null;
  status: string;
  status_detail: string | null;
  status_since: number;
  created_by: string | null;
  created_at: number;
  updated_at: number;
}

export interface ServiceInput {
  name: string;
  project: string;
  spider: string;
  /** null = the newest version, rolled to whenever a newer one is deployed */
  version: string | null;
  args: Record<string, string>;
  settings: Record<string, string>;
  replicas: number;
  max_per_node: number | null;
  labels: Record<string, string>;
  max_unavailable: number;
  max_runtime: number | null;
  max_memory: number | null;
}

export function serviceView(s: ServiceRow) {
  return {
    id: s.id, name: s.name, project: s.project, spider: s.spider, version: s.version ?? 'newest',
    args: JSON.parse(s.args) as Record<string, string>, settings: JSON.parse(s.settings) as Record<string, string>,
    replicas: s.replicas,
    placement: { spread: true, max_per_node: s.max_per_node, labels: JSON.parse(s.labels) as Record<string, string> },
    max_unavailable: s.max_unavailable, max_runtime: s.max_runtime, max_memory: s.max_memory,
    stable_version: s.stable_version, paused_version: s.paused_version,
    status: s.status, status_detail: s.status_detail, status_since: s.status_since,
    created_by: s.created_by, created_at: s.created_at, updated_at: s.updated_at,
  };
}

export class ServiceStore {
  constructor(private readonly db: SqlDb) {}

  all(): Promise<ServiceRow[]> { return this.db.all<ServiceRow>(`SELECT * FROM services ORDER BY name`); }
  get(id: number): Promise<ServiceRow | undefined> { return this.db.get<ServiceRow>(`SELECT * FROM services WHERE id = ?`, [id]); }
  byName(name: string): Promise<ServiceRow | undefined> { return this.db.get<ServiceRow>(`SELECT * FROM services WHERE name = ?`, [name]); }

  /** By numeric id or by name. */
  async find(ref: string): Promise<ServiceRow | undefined> {
    // An id beyond a BIGINT is no id (PostgreSQL would refuse the comparison): only a name.
    return /^\d{1,15}$/.test(ref) ? (await this.get(Number(ref))) ?? this.byName(ref) : this.byName(ref);
  }

  async create(i: ServiceInput, createdBy: string | null): Promise<ServiceRow> {
    const now = Date.now();
    const id = await this.db.insert(`INSERT INTO services (name, project, spider, version, args, settings, replicas, max_per_node, labels,
        max_unavailable, max_runtime, max_memory, status, status_since, created_by, created_at, updated_at)
      VALUES (@name, @project, @spider, @version, @args, @settings, @replicas, @max_per_node, @labels,
        @max_unavailable, @max_runtime, @max_memory, 'converging', @now, @created_by, @now, @now)`, { ...this.columns(i), created_by: createdBy, now });
    return (await this.get(id))!;
  }

  async update(id: number, i: ServiceInput): Promise<ServiceRow | undefined> {
    await this.db.run(`UPDATE services SET name = @name, project = @project, spider = @spider, version = @version, args = @args, settings = @settings,
        replicas = @replicas, max_per_node = @max_per_node, labels = @labels, max_unavailable = @max_unavailable, max_runtime = @max_runtime,
        max_memory = @max_memory, updated_at = @now WHERE id = @id`, { ...this.columns(i), id, now: Date.now() });
    return this.get(id);
  }

  async scale(id: number, replicas: number): Promise<ServiceRow | undefined> {
    await this.db.run(`UPDATE services SET replicas = ?, updated_at = ? WHERE id = ?`, [replicas, Date.now(), id]);
    return this.get(id);
  }

  async remove(id: number): Promise<boolean> { return (await this.db.run(`DELETE FROM services WHERE id = ?`, [id])) > 0; }

  /** What the reconciler reached; status_since moves only when the status itself changes. */
  async setState(s: ServiceRow, st: { status: string; detail: string | null; stable_version: string | null; paused_version: string | null }, now = Date.now()): Promise<void> {
    if (s.status === st.status && s.status_detail === st.detail && s.stable_version === st.stable_version && s.paused_version === st.paused_version) return;
    await this.db.run(`UPDATE services SET status = ?, status_detail = ?, stable_version = ?, paused_version = ?, status_since = ? WHERE id = ?`,
      [st.status, st.detail, st.stable_version, st.paused_version, s.status === st.status ? s.status_since : now, s.id]);
  }

  private columns(i: ServiceInput) {
    return {
      name: i.name, project: i.project, spider: i.spider, version: i.version, args: JSON.stringify(i.args), settings: JSON.stringify(i.settings),
      replicas: i.replicas, max_per_node: i.max_per_node, labels: JSON.stringify(i.labels), max_unavailable: i.max_unavailable,
      max_runtime: i.max_runtime, max_memory: i.max_memory,
    };
  }
}
