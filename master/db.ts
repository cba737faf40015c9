import { join } from 'node:path';
import { openDatabase, type Db } from '../common/sqlite.ts';

// Append-only: a released migration is never edited, only followed by a new one.
// Times are epoch milliseconds on the master's own clock.
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);

  CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at    INTEGER NOT NULL
  );
  CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,     -- sha256 of the token; the token itself is shown once
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
  );

  CREATE TABLE nodes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    url           TEXT NOT NULL UNIQUE,
    username      TEXT,                    -- basic auth for nodes added by URL (e.g. a real Scrapyd)
    password      TEXT,
    source        TEXT NOT NULL,           -- 'announced' | 'added'
    status        TEXT NOT NULL DEFAULT 'unknown', -- 'online' | 'offline' | 'unknown'
    draining      INTEGER NOT NULL DEFAULT 0,
    extensions    INTEGER NOT NULL DEFAULT 0,     -- answers spiderplane's /metrics.json and /jobs.json
    max_proc      INTEGER,
    running       INTEGER NOT NULL DEFAULT 0,
    pending       INTEGER NOT NULL DEFAULT 0,
    metrics       TEXT,                    -- last /metrics.json payload
    last_ok_at    INTEGER,                 -- master clock at receipt of the last good heartbeat
    last_error    TEXT,
    status_since  INTEGER NOT NULL,
    added_at      INTEGER NOT NULL
  );
  CREATE TABLE node_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id  INTEGER NOT NULL,
    node     TEXT NOT NULL,
    time     INTEGER NOT NULL,
    status   TEXT NOT NULL,
    reason   TEXT
  );
  CREATE INDEX node_events_node ON node_events (node_id, time DESC);
  CREATE TABLE node_metrics (
    node_id     INTEGER NOT NULL,
    time        INTEGER NOT NULL,
    cpu_percent REAL,
    load1       REAL,
    mem_percent REAL,
    disk        TEXT,                      -- JSON [{mount, used_percent}]
    rx_bps      REAL,
    tx_bps      REAL,
    running     INTEGER NOT NULL,
    pending     INTEGER NOT NULL
  );
  CREATE INDEX node_metrics_node_time ON node_metrics (node_id, time);
  CREATE INDEX node_metrics_time ON node_metrics (time);

  CREATE TABLE versions (
    project     TEXT NOT NULL,
    version     TEXT NOT NULL,             -- sanitised as Scrapyd stores it
    kind        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    spiders     TEXT,                      -- JSON array once a node has listed them
    uploaded_at INTEGER NOT NULL,
    uploaded_by TEXT,
    PRIMARY KEY (project, version)
  );
  CREATE TABLE node_versions (
    node_id  INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    project  TEXT NOT NULL,
    version  TEXT NOT NULL,
    PRIMARY KEY (node_id, project, version)
  );
  CREATE TABLE deleted_versions (         -- removed cluster-wide: taken off nodes that return later
    project    TEXT NOT NULL,
    version    TEXT NOT NULL,             -- '*' = the whole project
    deleted_at INTEGER NOT NULL,
    PRIMARY KEY (project, version)
  );
  CREATE TABLE deployments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project    TEXT NOT NULL,
    version    TEXT NOT NULL,
    reason     TEXT NOT NULL,             -- 'upload' | 'roll' | 'node-joined'
    created_at INTEGER NOT NULL,
    finished_at INTEGER
  );
  CREATE TABLE deployment_targets (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    node_id       INTEGER NOT NULL,
    node          TEXT NOT NULL,
    state         TEXT NOT NULL,          -- 'pending' | 'ok' | 'failed'
    message       TEXT,
    spiders       INTEGER,
    started_at    INTEGER,
    finished_at   INTEGER,
    PRIMARY KEY (deployment_id, node_id)
  );

  CREATE TABLE schedules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    cron        TEXT NOT NULL,
    timezone    TEXT,
    project     TEXT NOT NULL,
    spider      TEXT NOT NULL,
    version     TEXT,                      -- NULL = newest at fire time
    target      TEXT NOT NULL,             -- JSON {mode, node?, count?}
    args        TEXT NOT NULL DEFAULT '{}',
    settings    TEXT NOT NULL DEFAULT '{}',
    priority    REAL NOT NULL DEFAULT 0,
    enabled     INTEGER NOT NULL DEFAULT 1,
    overlap     TEXT NOT NULL DEFAULT 'skip',    -- 'skip' | 'allow'
    missed      TEXT NOT NULL DEFAULT 'skip',    -- 'skip' | 'run_once'
    max_retries INTEGER NOT NULL DEFAULT 2,
    last_fire_at INTEGER,                  -- the last occurrence handled (fired, skipped or missed)
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
  );
  CREATE TABLE schedule_fires (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id  INTEGER NOT NULL,
    scheduled_for INTEGER NOT NULL,        -- the occurrence
    handled_at   INTEGER NOT NULL,
    outcome      TEXT NOT NULL,            -- 'dispatched' | 'skipped-overlap' | 'missed' | 'missed-run' | 'failed'
    detail       TEXT,
    UNIQUE (schedule_id, scheduled_for, outcome)
  );
  CREATE INDEX schedule_fires_schedule ON schedule_fires (schedule_id, scheduled_for DESC);

  CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    job          TEXT NOT NULL UNIQUE,     -- the job id on the node (and on the master's Scrapyd API)
    project      TEXT NOT NULL,
    spider       TEXT NOT NULL,
    version      TEXT,                     -- the version sent as _version
    args         TEXT NOT NULL DEFAULT '{}',
    settings     TEXT NOT NULL DEFAULT '{}',
    priority     REAL NOT NULL DEFAULT 0,
    node_id      INTEGER,
    node         TEXT,
    state        TEXT NOT NULL,            -- 'dispatching' | 'pending' | 'running' | 'finished' | 'lost' | 'failed'
    outcome      TEXT,                     -- the node's outcome once finished, or 'lost' / 'cancelled'
    schedule_id  INTEGER,
    retry_of     INTEGER,                  -- the run this one re-runs after its node was lost
    attempt      INTEGER NOT NULL DEFAULT 1,
    retries_left INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    dispatched_at INTEGER,
    started_at   INTEGER,
    ended_at     INTEGER,
    exit_code    INTEGER,
    items_count  INTEGER,
    error_count  INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    note         TEXT,
    created_by   TEXT
  );
  CREATE INDEX runs_state ON runs (state, id DESC);
  CREATE INDEX runs_node ON runs (node_id, state);
  CREATE INDEX runs_project ON runs (project, spider, id DESC);
  CREATE INDEX runs_schedule ON runs (schedule_id, id DESC);
  `,
  // Web UI sessions: the cookie holds a random token, the table only its hash.
  `
  CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX sessions_user ON sessions (user_id);
  CREATE INDEX runs_created ON runs (created_at DESC);
  CREATE INDEX runs_node_id ON runs (node, id DESC);
  `,
  // Alerts: rules, their firings, the mail notices waiting to be grouped, the mail outbox; metric roll-ups.
  `
  CREATE TABLE alert_rules (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,          -- node_offline | cpu | memory | disk | network_rx | network_tx | job_* | schedule_missed
    threshold        REAL,
    duration_seconds INTEGER NOT NULL DEFAULT 0,
    scope            TEXT NOT NULL DEFAULT 'all',   -- all | node | project | spider
    scope_node       TEXT,
    scope_project    TEXT,
    scope_spider     TEXT,
    recipients       TEXT NOT NULL DEFAULT '[]',    -- JSON array; empty = the default recipients
    enabled          INTEGER NOT NULL DEFAULT 1,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
  );
  CREATE TABLE alert_firings (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id        INTEGER NOT NULL,
    rule_name      TEXT NOT NULL,
    kind           TEXT NOT NULL,
    subject_key    TEXT NOT NULL,            -- what fired: 'node:NAME', 'spider:P/S', 'job:JOB', 'schedule:ID'
    title          TEXT NOT NULL,            -- 'node crawl-3 offline'
    link           TEXT,                     -- UI path: /nodes/NAME, /jobs/JOB
    state          TEXT NOT NULL,            -- 'firing' | 'resolved'
    value          REAL,
    threshold      REAL,
    since          INTEGER NOT NULL,         -- when the condition began
    fired_at       INTEGER NOT NULL,
    resolved_at    INTEGER,
    detail         TEXT,
    resolve_detail TEXT
  );
  CREATE UNIQUE INDEX alert_firings_open ON alert_firings (rule_id, subject_key) WHERE state = 'firing';
  CREATE INDEX alert_firings_time ON alert_firings (fired_at DESC);
  CREATE TABLE alert_notices (              -- one per (firing, fire|resolve, recipient), grouped into mails
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    firing_id  INTEGER NOT NULL,
    event      TEXT NOT NULL,                -- 'fire' | 'resolve'
    recipient  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    mail_id    INTEGER,                      -- the outbox mail carrying it (NULL = waiting for its group)
    UNIQUE (firing_id, event, recipient)
  );
  CREATE INDEX alert_notices_waiting ON alert_notices (mail_id, recipient);
  CREATE TABLE mail_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT NOT NULL UNIQUE,    -- the Message-ID header, the same on every attempt
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text            TEXT NOT NULL,
    html            TEXT NOT NULL,
    headers         TEXT NOT NULL DEFAULT '{}',
    state           TEXT NOT NULL,           -- 'queued' | 'sending' | 'sent' | 'failed'
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    smtp_response   TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
  );
  CREATE INDEX mail_outbox_due ON mail_outbox (state, next_attempt_at);
  CREATE TABLE metric_rollups (
    res         INTEGER NOT NULL,            -- bucket width in ms: 60000 or 3600000
    node_id     INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,            -- bucket start, epoch ms
    n           INTEGER NOT NULL,            -- raw samples behind it
    cpu_avg REAL, cpu_max REAL, load_avg REAL, mem_avg REAL, mem_max REAL, disk_max REAL,
    rx_avg REAL, rx_max REAL, tx_avg REAL, tx_max REAL, running_avg REAL, running_max INTEGER,
    PRIMARY KEY (res, node_id, bucket)
  ) WITHOUT ROWID;
  CREATE INDEX metric_rollups_time ON metric_rollups (res, bucket);
  `,
  // Which ended runs the alert rules have looked at, so a master crash between a run's end and its
  // evaluation is caught up at the next start (runs that ended before this migration count as seen).
  `
  CREATE TABLE alert_run_checks (
    run_id     INTEGER PRIMARY KEY,
    checked_at INTEGER NOT NULL
  );
  INSERT INTO alert_run_checks (run_id, checked_at) SELECT id, COALESCE(ended_at, 0) FROM runs WHERE ended_at IS NOT NULL;
  CREATE INDEX runs_ended ON runs (ended_at);
  `,
  // When a node's heartbeats started failing (NULL while they succeed): the UI shows "not answering
  // since …" between the first failed heartbeat and the offline verdict.
  `
  ALTER TABLE nodes ADD COLUMN failing_since INTEGER;
  `,
  // Limits on a run and retries on failure (issue 14). Limits: NULL = the slave's default, 0 = none.
  // retries/retry_delay: the failure-retry policy of the run's chain; retry_number: which retry this
  // run is (0 = the first run); retry_at: when its retry is due (set when it failed and one is left);
  // retry_claimed_at: the retry was taken by the master (before dispatching, so it happens once).
  // Schedules keep the same policy as JSON in run_policy.
  `
  ALTER TABLE runs ADD COLUMN max_runtime REAL;
  ALTER TABLE runs ADD COLUMN max_memory REAL;
  ALTER TABLE runs ADD COLUMN nice INTEGER;
  ALTER TABLE runs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE runs ADD COLUMN retry_delay REAL NOT NULL DEFAULT 0;
  ALTER TABLE runs ADD COLUMN retry_number INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE runs ADD COLUMN retry_at INTEGER;
  ALTER TABLE runs ADD COLUMN retry_claimed_at INTEGER;
  ALTER TABLE runs ADD COLUMN limit_hit TEXT;
  CREATE INDEX runs_retry_due ON runs (retry_at) WHERE retry_at IS NOT NULL AND retry_claimed_at IS NULL;
  CREATE INDEX runs_retry_of ON runs (retry_of) WHERE retry_of IS NOT NULL;
  ALTER TABLE schedules ADD COLUMN run_policy TEXT NOT NULL DEFAULT '{}';
  `,
  // Spider services (desired state: N replicas kept running), node labels for their placement,
  // and the service a run is a replica of.
  `
  ALTER TABLE nodes ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';   -- JSON {name: value}
  CREATE TABLE services (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL UNIQUE,
    project         TEXT NOT NULL,
    spider          TEXT NOT NULL,
    version         TEXT,                      -- pinned version; NULL = the newest, rolled when a newer one is deployed
    args            TEXT NOT NULL DEFAULT '{}',
    settings        TEXT NOT NULL DEFAULT '{}',
    replicas        INTEGER NOT NULL,
    max_per_node    INTEGER,                   -- NULL = no limit
    labels          TEXT NOT NULL DEFAULT '{}',-- JSON {name: value}: only nodes carrying all of them
    max_unavailable INTEGER NOT NULL DEFAULT 1,-- replicas restarted at once per node during a roll
    max_runtime     INTEGER,                   -- seconds, each replica's limit (NULL = the slave's default, 0 = none)
    max_memory      INTEGER,                   -- MiB, likewise
    stable_version  TEXT,                      -- the version every replica ran at the end of the last finished roll
    paused_version  TEXT,                      -- a version whose roll was stopped because its replicas crashed
    status          TEXT NOT NULL DEFAULT 'converging',
    status_detail   TEXT,
    status_since    INTEGER NOT NULL,
    created_by      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
  );
  ALTER TABLE runs ADD COLUMN service_id INTEGER;
  CREATE INDEX runs_service ON runs (service_id, state);
  `,
  // Flat cost at scale: per-state run counts kept by triggers in the same transaction as every
  // change (exact and crash-safe, an O(1) read); indexes that match each list's filter and sort;
  // raw metric samples carry their fullest disk as a number (no JSON to parse per row).
  `
  CREATE TABLE run_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
  INSERT INTO run_counts (state, n) SELECT state, COUNT(*) FROM runs GROUP BY state;
  CREATE TRIGGER runs_count_insert AFTER INSERT ON runs BEGIN
    INSERT INTO run_counts (state, n) VALUES (NEW.state, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
  END;
  CREATE TRIGGER runs_count_delete AFTER DELETE ON runs BEGIN
    UPDATE run_counts SET n = n - 1 WHERE state = OLD.state;
  END;
  CREATE TRIGGER runs_count_update AFTER UPDATE OF state ON runs WHEN OLD.state IS NOT NEW.state BEGIN
    UPDATE run_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO run_counts (state, n) VALUES (NEW.state, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
  END;
  CREATE INDEX runs_ended_list ON runs (ended_at DESC, id DESC) WHERE state IN ('finished', 'lost', 'failed');
  CREATE INDEX runs_ended_project ON runs (project, ended_at DESC, id DESC) WHERE state IN ('finished', 'lost', 'failed');
  CREATE INDEX runs_waiting ON runs (priority DESC, id) WHERE state IN ('dispatching', 'pending');
  CREATE INDEX runs_running ON runs (started_at, id) WHERE state = 'running';
  CREATE INDEX runs_project_id ON runs (project, id DESC);
  CREATE INDEX runs_lost ON runs (node_id, ended_at) WHERE state = 'lost';
  CREATE INDEX alert_run_checks_time ON alert_run_checks (checked_at);
  ALTER TABLE node_metrics ADD COLUMN disk_max REAL;
  -- One row per bucket for the whole cluster, so cluster charts never read a row per node.
  CREATE TABLE cluster_rollups (
    res INTEGER NOT NULL, bucket INTEGER NOT NULL, nodes INTEGER NOT NULL,
    cpu REAL, mem REAL, load REAL, disk_max REAL, rx REAL, tx REAL, running REAL,
    PRIMARY KEY (res, bucket)
  ) WITHOUT ROWID;
  `,
  // Per-project dependencies (issue 10): what a version declares, JSON {python: [...], node: LOCKFILE|null}
  // (NULL: nothing), shown on the project page; each node builds it when the version is deployed.
  `
  ALTER TABLE versions ADD COLUMN requirements TEXT;
  `,
  // Master leases (issue 14 §4): a run that keeps going on a node cut off from the master (not
  // failed over, not stopped by its slave). Schedules keep it in run_policy's JSON.
  `
  ALTER TABLE runs ADD COLUMN keep_running INTEGER NOT NULL DEFAULT 0;
  `,
  // Leadership (issue 12): one lease row (holder, fencing epoch, expiry on the database's clock) and
  // the masters sharing this database. On SQLite there is one master, and it always leads.
  `
  CREATE TABLE leader_lease (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  INSERT INTO leader_lease (id, holder, epoch, expires_at) VALUES (1, NULL, 0, 0);
  CREATE TABLE masters (
    id         TEXT PRIMARY KEY,
    url        TEXT,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
  );
  -- Package files shared by masters on one database (master/packages/shared_packages.ts).
  CREATE TABLE package_chunks (
    sha256 TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (sha256, seq)
  );
  `,
  // Issue 12: the load balancer's dispatch accounting lives in the database, so any master targets
  // with the same view. A node's dispatches since its last heartbeat are its runs created since
  // that heartbeat was requested (heartbeat_at); dispatch_lock's one row serialises each choice of
  // nodes with the insert of its runs, across masters.
  `
  CREATE TABLE node_dispatch_load (
    node_id      INTEGER PRIMARY KEY,
    heartbeat_at INTEGER NOT NULL   -- when the newest heartbeat that reported its running/pending was requested
  );
  CREATE TABLE dispatch_lock (id INTEGER PRIMARY KEY, dispatches INTEGER NOT NULL);
  INSERT INTO dispatch_lock (id, dispatches) VALUES (1, 0);
  `,
  // Failed logins per key (ip:ADDRESS, user:NAME) in the database, so every master shares one limit
  // (issue 12): how many tries in the window, until when the next one waits, and the wait the last
  // attempt met (written by the same statement that counts it: the reservation is one upsert).
  `
  CREATE TABLE login_failures (
    key      TEXT PRIMARY KEY,
    count    INTEGER NOT NULL,
    until_at INTEGER NOT NULL,
    last_at  INTEGER NOT NULL,
    wait_ms  INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX login_failures_last ON login_failures (last_at);
  `,
  // Master HA (issue 12): each node's last listjobs.json (pid, log and items links of every job it
  // lists), written by the master that heartbeats, read by every master's Scrapyd facade.
  `
  CREATE TABLE node_jobs (
    node_id   INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    job       TEXT NOT NULL,
    pid       INTEGER,
    log_url   TEXT,
    items_url TEXT,
    PRIMARY KEY (node_id, job)
  ) WITHOUT ROWID;
  CREATE INDEX node_jobs_job ON node_jobs (job);
  `,
  // Retry claims left set (released when a master starts or takes over, RunPolicyStore.releaseInterrupted):
  // found through their own small index, not by scanning every run of the history (issue 12 bench).
  `
  CREATE INDEX runs_retry_claimed ON runs (id) WHERE retry_claimed_at IS NOT NULL;
  `,
];

export const SQLITE_MIGRATION_COUNT = MIGRATIONS.length;

export function openMasterDb(dataDir: string): Db {
  return openMasterDbFile(join(dataDir, 'master.db'));
}

export function openMasterDbFile(file: string): Db {
  const db = openDatabase(file, MIGRATIONS);
  // A fleet's heartbeats write the WAL steadily: checkpoint every 1 MB rather than every 4 MB, so
  // each checkpoint (run on the commit that crosses it, on the event loop) stays short.
  db.pragma('wal_autocheckpoint = 256');
  return db;
}
