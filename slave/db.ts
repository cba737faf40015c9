import { join } from 'node:path';
import { openDatabase, type Db } from '../common/sqlite.ts';

// Append-only: a released migration is never edited, only followed by a new one.
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE versions (
    project     TEXT NOT NULL,
    version     TEXT NOT NULL,           -- sanitised, as Scrapyd stores it
    kind        TEXT NOT NULL,           -- 'scrapy-egg' | 'generic'
    uploaded_at REAL NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    spiders     TEXT NOT NULL,           -- JSON array, the cached 'scrapy list' or manifest spiders
    settings_module TEXT,                -- eggs: from EGG-INFO/entry_points.txt
    manifest    TEXT,                    -- generic: the validated manifest JSON
    PRIMARY KEY (project, version)
  );
  CREATE TABLE jobs (
    uid          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL,          -- the Scrapyd job id (may repeat across runs)
    project      TEXT NOT NULL,
    spider       TEXT NOT NULL,
    version      TEXT,                   -- requested _version, sanitised; NULL = newest at launch
    run_version  TEXT,
    priority     REAL NOT NULL DEFAULT 0,
    args         TEXT NOT NULL DEFAULT '{}',
    settings     TEXT NOT NULL DEFAULT '{}',
    state        TEXT NOT NULL,          -- pending | running | finished
    created_at   REAL NOT NULL,
    start_time   REAL,
    end_time     REAL,
    pid          INTEGER,
    proc_start   TEXT,                   -- /proc/PID/stat start time, tells our process from a reused pid
    exit_code    INTEGER,
    signal       TEXT,
    outcome      TEXT,
    cancels      INTEGER NOT NULL DEFAULT 0,
    items_count  INTEGER,
    error_count  INTEGER,
    log_exists   INTEGER NOT NULL DEFAULT 0,
    items_exists INTEGER NOT NULL DEFAULT 0,
    stats        TEXT,                   -- LogParser-style stats JSON, written when the job ends
    note         TEXT
  );
  CREATE INDEX jobs_pending ON jobs (priority DESC, uid) WHERE state = 'pending';
  CREATE INDEX jobs_state ON jobs (state, end_time DESC);
  CREATE INDEX jobs_project ON jobs (project, state, end_time DESC);
  CREATE INDEX jobs_id ON jobs (id);
  CREATE INDEX jobs_files ON jobs (project, spider, end_time DESC) WHERE log_exists = 1 OR items_exists = 1;
  CREATE TABLE errors (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    job_uid   INTEGER NOT NULL,
    job       TEXT NOT NULL,
    project   TEXT NOT NULL,
    spider    TEXT NOT NULL,
    time      TEXT NOT NULL,
    level     TEXT NOT NULL,
    logger    TEXT NOT NULL,
    message   TEXT NOT NULL,
    traceback TEXT
  );
  CREATE INDEX errors_job ON errors (job_uid);
  `,
  // Limits on a run (issue 14): what the job asked for (NULL = the slave's default at launch),
  // and, when a limit stopped it, which one and the figure reached (JSON LimitHit).
  `
  ALTER TABLE jobs ADD COLUMN max_runtime REAL;
  ALTER TABLE jobs ADD COLUMN max_memory REAL;
  ALTER TABLE jobs ADD COLUMN nice INTEGER;
  ALTER TABLE jobs ADD COLUMN limit_hit TEXT;
  `,
  // Per-state job counts kept by triggers in the same transaction as every change: daemonstatus.json
  // and the history pruner read them in O(1), however many finished jobs are kept.
  `
  CREATE TABLE job_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
  INSERT INTO job_counts (state, n) SELECT state, COUNT(*) FROM jobs GROUP BY state;
  CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts (state, n) VALUES (NEW.state, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
  END;
  CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;
  END;
  CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs WHEN OLD.state IS NOT NEW.state BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO job_counts (state, n) VALUES (NEW.state, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
  END;
  `,
  `
  ALTER TABLE versions ADD COLUMN requirements TEXT;   -- JSON array of pip requirement lines (null: none)
  ALTER TABLE versions ADD COLUMN py_env TEXT;         -- key of its Python environment (envs/KEY)
  ALTER TABLE versions ADD COLUMN node_env TEXT;       -- key of its Node environment
  CREATE TABLE envs (
    key           TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,         -- python | node
    requirements  TEXT NOT NULL,         -- what it was built from, one per line
    built_at      REAL NOT NULL,
    last_used     REAL,
    size          INTEGER NOT NULL,
    build_seconds REAL NOT NULL
  );
  `,
  // Master leases (issue 14 §4): schedule.json's _keep_running (NULL = not given: kept running).
  `
  ALTER TABLE jobs ADD COLUMN keep_running INTEGER;
  `,
];

export function openSlaveDb(dataDir: string): Db {
  return openDatabase(join(dataDir, 'slave.db'), MIGRATIONS);
}
