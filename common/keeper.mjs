// The keeper: a tiny process that runs ONE spider and holds the slave's lease for it.
//
// Guarantee: a spider is never left crawling unsupervised for longer than its lease window after
// its daemon died. The daemon that started the keeper holds it through the keeper's stdin/fd 3
// pipes; a restarted daemon takes it over by connecting to the keeper's unix socket. While no
// daemon holds it, the keeper counts down the window (from the daemon's last contact with a master,
// when it was told one) and, unless a daemon re-adopts it in time, stops the spider: SIGTERM to its
// process group, SIGKILL after the grace. Whatever ends the spider, the keeper writes its exit
// status (and why it stopped it) to a file the daemon reads, and sends it to the holding daemon.
//
// Warm start (spec.forkserver = {sock, python}): instead of spawning the spider, the keeper connects
// to its environment's forkserver (slave/runner/forkserver.py), hands it the log (its own fds 1 and
// 2, sent with SCM_RIGHTS by a tiny `python -I -S` helper, as Node cannot send fds), and the job;
// the forkserver forks the spider, reports its pid and, as its parent, its exit status. The keeper
// accepts only a pid that leads its own process group (and runs as the spider's user), so a
// misbehaving forkserver cannot make it signal anyone else. If the forkserver cannot be reached it
// spawns the spider itself; if the forkserver dies mid-run, it watches the pid until it is gone.
//
// Spare keepers: the daemon starts a keeper before it has a job for it (so a job does not wait for
// Node to start); such a keeper writes nowhere until its spec arrives, then opens the job's log
// itself (spec.logPath: the daemon's logs folder, which this keeper, running as the daemon, may
// write) and gives that file to the spider as stdout and stderr. One started onto the log (fds 1
// and 2) uses those. A spare whose daemon goes away before sending a spec just exits.
//
// Wire: JSON lines both ways. Daemon -> keeper: the spec (first line on stdin), then
// {"lease": ms|null}, {"keep": bool}, {"contact": true}. Keeper -> daemon: {"pid": N},
// {"exit": {code, signal, at, note}}, {"error": "..."}.
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { setPriority } from 'node:os';

let spec = null;
let child = null;
let result = null; // set when the spider ended
let holder = null; // { write(obj), end() } of the daemon holding the lease, or null
let leaseMs = null; // null: no window (no master ever told one, or keep_running)
let keep = false;
let lastContact = null; // monotonic ms of the daemon's last master contact it told us
let orphanTimer = null;
let stopping = null;
let logFd = 2; // the job's log: fd 2 (with fd 1, the same file) unless the spec names the file to open
const mono = () => Number(process.hrtime.bigint() / 1_000_000n);
// The keeper's own lines go to stderr: the job's log, so the log says what happened.
const say = (msg) => { try { writeSync(logFd, `${new Date().toISOString().replace('T', ' ').slice(0, 19)} [spiderplane keeper] ${msg}\n`); } catch { /* log gone */ } };

// The keeper outlives INT/TERM meant for its daemon's group; the spider has its own group.
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGPIPE']) process.on(s, () => undefined);

function lineReader(stream, onMessage, onEnd) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    buf += d;
    if (buf.length > 1 << 20) buf = ''; // no line is that long: drop garbage instead of growing
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line.trim()) continue;
      let msg;
      try { msg = JSON.parse(line); } catch { continue; }
      onMessage(msg);
    }
  });
  stream.on('error', () => undefined);
  stream.on('end', onEnd);
  stream.on('close', onEnd);
}

function onHolderMessage(msg) {
  if (spec === null && msg && typeof msg.command === 'string') return start(msg);
  if ('lease' in msg) leaseMs = typeof msg.lease === 'number' && msg.lease > 0 ? msg.lease : null;
  if ('keep' in msg) keep = msg.keep === true;
  if (msg.contact) lastContact = mono();
  if (typeof msg.contactAgoMs === 'number') lastContact = mono() - msg.contactAgoMs;
}

function setHolder(h) {
  if (orphanTimer) { clearTimeout(orphanTimer); orphanTimer = null; }
  holder = h;
  if (child?.pid) h.write({ pid: child.pid });
  if (result) h.write({ exit: result });
}

function holderGone(h) {
  if (holder !== h) return;
  holder = null;
  if (result) return finish();
  if (!child) return process.exit(1); // the daemon died before it sent the spec
  armOrphanTimer();
}

/** No daemon holds us: stop the spider when the lease runs out, unless one re-adopts us first. */
function armOrphanTimer() {
  if (orphanTimer || result) return;
  if (leaseMs === null || keep) {
    say(`daemon gone; spider ${child.pid} keeps running until a daemon re-adopts it (${keep ? 'keep_running' : 'no lease window known'})`);
    return;
  }
  const since = lastContact ?? mono();
  const wait = Math.max(0, since + leaseMs - mono());
  say(`daemon gone; spider ${child.pid} is stopped in ${(wait / 1000).toFixed(1)} s unless a daemon re-adopts it`);
  orphanTimer = setTimeout(() => {
    orphanTimer = null;
    if (holder || result) return;
    const noMaster = Math.round((mono() - since) / 1000);
    stopping = `stopped by its keeper: its daemon died and no daemon re-adopted it within the lease (no master for ${noMaster} s, lease ${leaseMs / 1000} s)`;
    say(`${stopping}; sending SIGTERM, SIGKILL after ${spec.graceMs / 1000} s`);
    signalGroup('SIGTERM');
    setTimeout(() => { if (!result) signalGroup('SIGKILL'); }, spec.graceMs).unref();
  }, wait);
}

function signalGroup(sig) {
  try { process.kill(-child.pid, sig); } catch { try { process.kill(child.pid, sig); } catch { /* gone */ } }
}

function start(s) {
  spec = s;
  if (typeof s.logPath === 'string') {
    try {
      logFd = openSync(s.logPath, 'a');
    } catch (e) {
      holder?.write({ error: `could not open the job's log ${s.logPath}: ${e.message}` });
      setTimeout(() => process.exit(1), 50);
      return;
    }
  }
  leaseMs = typeof s.leaseMs === 'number' && s.leaseMs > 0 ? s.leaseMs : null;
  keep = s.keep === true;
  if (s.contactAgoMs !== undefined && s.contactAgoMs !== null) lastContact = mono() - s.contactAgoMs;
  if (s.forkserver) {
    startForked(s).catch((e) => {
      if (child) return; // the spider runs: the forkserver link failed later, handled there
      say(`forkserver unavailable (${e.message}); starting the spider directly`);
      spawnSpider(s);
    });
  } else {
    spawnSpider(s);
  }
}

function spawnSpider(s) {
  let proc;
  try {
    proc = spawn(s.command, s.args, { cwd: s.cwd, env: s.env, stdio: ['ignore', logFd, logFd], detached: true, ...(s.uid !== undefined ? { uid: s.uid, gid: s.gid } : {}) });
  } catch (e) {
    holder?.write({ error: e.message });
    return process.exit(1);
  }
  proc.once('error', (e) => {
    if (proc.pid === undefined) {
      holder?.write({ error: e.message });
      setTimeout(() => process.exit(1), 50);
    }
  });
  if (proc.pid === undefined) return;
  child = { pid: proc.pid };
  started();
  proc.once('exit', (code, signal) => spiderEnded(code, signal));
}

function started() {
  if (typeof spec.nice === 'number') { try { setPriority(child.pid, spec.nice); } catch { /* gone or refused */ } }
  holder?.write({ pid: child.pid });
  listen();
}

function spiderEnded(code, signal) {
  if (result) return;
  result = { code, signal, at: Date.now() / 1000, note: stopping };
  writeExitFile();
  if (holder) {
    holder.write({ exit: result });
    holder.end();
  }
  finish();
}

// Sends the helper's stdout and stderr (the job's log) over the socket on its fd 3 (SCM_RIGHTS).
// Through _socket alone: `import socket` (enum and friends) would double the helper's start-up.
const SEND_FDS = "import _socket, sys; s = _socket.socket(fileno=3); s.sendmsg([b'L'], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, (1).to_bytes(4, sys.byteorder) + (2).to_bytes(4, sys.byteorder))]); s.detach()";

/** The pid is a child of the forkserver, leads its own process group and runs as the spider's user: what a forked spider must. */
function isForkedSpider(pid, uid, forkserverPid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) !== forkserverPid) return false; // ppid: not some other process of that user
    const pgrp = Number(fields[2]);
    if (pgrp !== pid) return false;
    if (uid === undefined) return true;
    const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m !== null && Number(m[1]) === uid;
  } catch {
    return false;
  }
}

/**
 * Connects as the spiders' user (effective uid, for the connect() alone: libuv makes it at once):
 * the socket's folder is theirs, so a spider could put a symlink there to a root-only socket (a
 * keeper's); connecting as that user, such a link leads nowhere.
 */
function connectAs(path, uid) {
  if (uid === undefined || typeof process.seteuid !== 'function' || process.geteuid() !== 0) return connect(path);
  process.seteuid(uid);
  try {
    return connect(path);
  } finally {
    process.seteuid(0);
  }
}

/** Connects to the forkserver, waiting (up to 60 s) while it is still starting: its process lives but its socket is not there yet. */
async function connectWhileStarting(fs, uid) {
  const until = mono() + 60_000;
  for (;;) {
    const sock = connectAs(fs.sock, uid);
    const err = await new Promise((resolve) => {
      const t = setTimeout(() => { sock.destroy(); resolve(new Error('no answer')); }, 3000);
      sock.once('error', (e) => { clearTimeout(t); resolve(e); });
      sock.once('connect', () => { clearTimeout(t); resolve(null); });
    });
    if (!err) return sock;
    sock.destroy();
    let starting = err.code === 'ENOENT' || err.code === 'ECONNREFUSED';
    try { process.kill(fs.pid, 0); } catch (e) { if (e.code !== 'EPERM') starting = false; }
    if (!starting || mono() > until) throw err;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function startForked(s) {
  const sock = await connectWhileStarting(s.forkserver, s.uid);
  // As the spiders' user: the interpreter lives in an environment, and root runs nothing of theirs.
  const helper = spawn(s.forkserver.python, ['-I', '-S', '-c', SEND_FDS], { stdio: ['ignore', logFd, logFd, sock], env: {}, cwd: '/', ...(s.uid !== undefined ? { uid: s.uid, gid: s.gid } : {}) });
  const code = await new Promise((resolve) => { helper.once('error', () => resolve(-1)); helper.once('exit', (c) => resolve(c)); });
  if (code !== 0) { sock.destroy(); throw new Error(`could not hand it the log (helper exit ${code})`); }
  sock.resume(); // spawn() paused it when it shared it with the helper
  sock.write(JSON.stringify({ args: s.args, env: s.env, cwd: s.cwd }) + '\n');
  await new Promise((resolve, reject) => {
    let gotPid = false;
    let exited = false;
    lineReader(sock, (msg) => {
      if (typeof msg.error === 'string' && !gotPid) { sock.destroy(); reject(new Error(msg.error)); return; }
      if (typeof msg.pid === 'number' && !gotPid) {
        if (!Number.isInteger(msg.pid) || msg.pid <= 1 || !isForkedSpider(msg.pid, s.uid, s.forkserver.pid)) {
          sock.destroy();
          holder?.write({ error: `the forkserver reported pid ${msg.pid}, which is not a spider in its own process group` });
          setTimeout(() => process.exit(1), 50);
          return;
        }
        gotPid = true;
        child = { pid: msg.pid };
        started();
        resolve();
      }
      if (msg.exit && gotPid && !exited) {
        exited = true;
        spiderEnded(typeof msg.exit.code === 'number' ? msg.exit.code : null, typeof msg.exit.signal === 'string' ? msg.exit.signal : null);
      }
    }, () => {
      if (!gotPid) { reject(new Error('it closed the connection')); return; }
      if (exited || result) return;
      // The forkserver died before its child: its exit status is lost; watch for the pid to go.
      say(`the forkserver went away while spider ${child.pid} runs; its exit status will be unknown`);
      const poll = setInterval(() => {
        try { process.kill(child.pid, 0); } catch (e) {
          if (e.code === 'EPERM') return;
          clearInterval(poll);
          spiderEnded(null, null);
        }
      }, 500);
    });
  });
}

function writeExitFile() {
  try {
    const tmp = `${spec.exitFile}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    writeFileSync(fd, JSON.stringify(result));
    closeSync(fd);
    renameSync(tmp, spec.exitFile);
  } catch (e) {
    say(`could not write ${spec.exitFile}: ${e.message}`);
  }
}

let server = null;
function listen() {
  rmSync(spec.sock, { force: true });
  server = createServer((sock) => {
    const h = { write: (o) => { try { sock.write(JSON.stringify(o) + '\n'); } catch { /* closed */ } }, end: () => sock.end() };
    sock.on('error', () => undefined);
    if (holder) holder.end?.();
    setHolder(h);
    lineReader(sock, onHolderMessage, () => holderGone(h));
  });
  server.on('error', (e) => say(`cannot listen on ${spec.sock}: ${e.message} (a restarted daemon cannot re-adopt this spider)`));
  server.listen(spec.sock);
}

function finish() {
  // Leave a moment for the last message to flush, then go.
  if (server) { server.close(); rmSync(spec.sock, { force: true }); }
  setTimeout(() => process.exit(0), 100).unref();
}

// The first holder: the daemon that spawned us (stdin to read, fd 3 to write).
let out = null;
try {
  const { createWriteStream } = await import('node:fs');
  out = createWriteStream(null, { fd: 3 });
  out.on('error', () => undefined);
} catch { out = null; }
const first = {
  write: (o) => { try { out?.write(JSON.stringify(o) + '\n'); } catch { /* daemon gone */ } },
  end: () => { try { out?.end(); } catch { /* gone */ } },
};
holder = first;
lineReader(process.stdin, onHolderMessage, () => holderGone(first));
