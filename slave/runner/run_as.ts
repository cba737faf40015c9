/**
 * Which user spiders run as. Guarantee: a daemon running as root never starts package code as
 * root unless the operator names root explicitly; it switches to --run-as USER (default the
 * dedicated `spiderplane-run` user that scripts/install.sh creates, else `nobody` with a warning).
 * A daemon that is not root cannot switch users: it runs spiders as itself and says so.
 * Resolution is pure (the passwd lookup is passed in); `lookupUser` is the real lookup.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const DEFAULT_RUN_AS = 'spiderplane-run';
export const FALLBACK_RUN_AS = 'nobody';

export interface PasswdEntry { name: string; uid: number; gid: number; home: string }

export interface SpiderIdentity {
  /** uid/gid given to spawn; null when spiders run as the daemon's own user. */
  uid: number | null;
  gid: number | null;
  name: string;
  /** The user's home from passwd (may not exist on disk, e.g. nobody's /nonexistent). */
  home: string | null;
  /** One line for the daemon's log: who spiders run as, and why. */
  summary: string;
  warnings: string[];
}

export class RunAsError extends Error {}

/** Decides the spiders' user from --run-as, the daemon's uid and the passwd database. */
export function resolveRunAs(requested: string | null, daemonUid: number, lookup: (nameOrUid: string) => PasswdEntry | null): SpiderIdentity {
  if (daemonUid !== 0) {
    const self = lookup(String(daemonUid));
    const name = self?.name ?? String(daemonUid);
    if (requested !== null) {
      const wanted = lookup(requested);
      if (!wanted || wanted.uid !== daemonUid) {
        throw new RunAsError(`--run-as ${requested}: only a daemon started as root can run spiders as another user (this one runs as ${name}, uid ${daemonUid}); start it as root, or drop --run-as`);
      }
    }
    return {
      uid: null, gid: null, name, home: self?.home ?? null, warnings: [],
      summary: `spiders run as this daemon's own user ${name} (uid ${daemonUid}): they can read what the daemon can, including its environment; start the daemon as root with --run-as to separate them`,
    };
  }
  const warnings: string[] = [];
  let entry: PasswdEntry | null;
  if (requested !== null) {
    entry = lookup(requested);
    if (!entry) throw new RunAsError(`--run-as ${requested}: no such user; create it (scripts/install.sh creates ${DEFAULT_RUN_AS}: useradd --system --shell /usr/sbin/nologin --create-home --home-dir /var/lib/${DEFAULT_RUN_AS} ${DEFAULT_RUN_AS}) or name another one`);
  } else {
    entry = lookup(DEFAULT_RUN_AS);
    if (!entry) {
      entry = lookup(FALLBACK_RUN_AS);
      if (!entry) throw new RunAsError(`neither the user ${DEFAULT_RUN_AS} nor ${FALLBACK_RUN_AS} exists, and spiders never run as root by default: create ${DEFAULT_RUN_AS} (scripts/install.sh does) or pass --run-as USER`);
      warnings.push(`the user ${DEFAULT_RUN_AS} does not exist: spiders run as ${FALLBACK_RUN_AS}, which other services may share; create ${DEFAULT_RUN_AS} with scripts/install.sh (or useradd --system --shell /usr/sbin/nologin --create-home --home-dir /var/lib/${DEFAULT_RUN_AS} ${DEFAULT_RUN_AS})`);
    }
  }
  if (entry.uid === 0) {
    warnings.push(`--run-as ${requested ?? ''} is root: spiders can read every secret of this daemon (its environment, database and config); use an unprivileged user`);
    return { uid: null, gid: null, name: entry.name, home: entry.home, warnings, summary: `spiders run as root (uid 0), as asked by --run-as` };
  }
  return {
    uid: entry.uid, gid: entry.gid, name: entry.name, home: entry.home, warnings,
    summary: `spiders run as ${entry.name} (uid ${entry.uid}, gid ${entry.gid}), not as this daemon's root`,
  };
}

function parsePasswdLine(line: string): PasswdEntry | null {
  const f = line.split(':');
  if (f.length < 7) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return null;
  return { name: f[0]!, uid, gid, home: f[5]! };
}

/** The passwd entry of a user name or numeric uid: getent (which sees LDAP/NSS users), else /etc/passwd. */
export function lookupUser(nameOrUid: string): PasswdEntry | null {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(nameOrUid)) return null;
  try {
    const out = execFileSync('getent', ['passwd', nameOrUid], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    return parsePasswdLine(out.trim().split('\n')[0] ?? '');
  } catch (e) {
    // getent exits 2 for "not found"; fall back to the file only when getent itself is missing.
    if ((e as { code?: string }).code !== 'ENOENT') return null;
  }
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const entry = parsePasswdLine(line);
      if (entry && (entry.name === nameOrUid || String(entry.uid) === nameOrUid)) return entry;
    }
  } catch {
    // no passwd file: nobody to find
  }
  return null;
}
