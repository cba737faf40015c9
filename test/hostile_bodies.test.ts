// Hostile request bodies against a real master and a real slave, over raw sockets: a multipart file
// part that never ends, a connection closed mid-part, file parts where no file is taken, endless
// chunked floods. Each must end its request (400 or 413, the connection closed after a flood) and
// leave the daemon answering, with its memory where it was.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, basic, startMaster, type MasterHandle } from './helpers/master_process.ts';
import { startSlave, type SlaveHandle } from './helpers/slave_process.ts';
import { chunk, rawExchange, rssKiB, type RawAnswer } from './helpers/raw_http.ts';

const MIB = 1024 * 1024;
const BOUNDARY = 'XhostileX';
/** Memory a flood may leave behind: far below what the flood sent. */
const RSS_SLACK_KIB = 64 * 1024;

let master: MasterHandle;
let slave: SlaveHandle;

before(async () => {
  [master, slave] = await Promise.all([startMaster(), startSlave()]);
});

after(async () => {
  await Promise.all([master?.stop(), slave?.stop()]);
});

const host = (url: string) => new URL(url).host;

/** A multipart body that opens a file part and stops inside it (no closing boundary). */
function truncatedMultipart(fileField: string): Buffer {
  return Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="username"\r\n\r\nadmin\r\n` +
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${fileField}"; filename="x.egg"\r\nContent-Type: application/octet-stream\r\n\r\n` +
    'PK\u0003\u0004 and then the part never ends',
  );
}

function once(body: Buffer): (i: number) => Buffer | null {
  return (i) => (i === 0 ? body : null);
}

async function masterAlive(): Promise<void> {
  assert.equal(master.proc.exitCode, null, `master exited:\n${master.output()}`);
  const r = await fetch(`${master.url}/login`);
  assert.equal(r.status, 200);
  await r.arrayBuffer();
}

async function slaveAlive(): Promise<void> {
  assert.equal(slave.proc.exitCode, null, `slave exited:\n${slave.output()}`);
  const r = await fetch(`${slave.url}/daemonstatus.json`);
  assert.equal(r.status, 200);
  assert.equal(((await r.json()) as { status: string }).status, 'ok');
}

/** A chunked body of `fieldBytes`-sized form fields, forever (until the server answers or maxBytes). */
function multipartFlood(fieldBytes: number): (i: number) => Buffer {
  const value = Buffer.alloc(fieldBytes, 'a');
  return (i) => chunk(Buffer.concat([Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="f${i}"\r\n\r\n`), value, Buffer.from('\r\n')]));
}

function urlencodedFlood(): (i: number) => Buffer {
  const value = Buffer.alloc(MIB, 'a');
  return (i) => chunk(Buffer.concat([Buffer.from(`${i === 0 ? '' : '&'}f${i}=`), value]));
}

async function flood(url: string, head: string, next: (i: number) => Buffer, pid: number): Promise<{ answer: RawAnswer; grownKiB: number }> {
  const before = rssKiB(pid);
  const answer = await rawExchange(url, head, next, { maxBytes: 300 * MIB });
  const grownKiB = rssKiB(pid) - before;
  return { answer, grownKiB };
}

describe('master', () => {
  test('POST /login with a file part that never ends: 400, and the master keeps answering', async () => {
    const body = truncatedMultipart('password');
    const r = await rawExchange(master.url, `POST /login HTTP/1.1\nHost: ${host(master.url)}\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\nConnection: close\nContent-Length: ${body.length}`, once(body));
    assert.equal(r.status, 400, r.headers);
    await masterAlive();
  });

  test('POST /login closed mid-part by the client: the master keeps answering', async () => {
    const body = truncatedMultipart('password');
    await rawExchange(master.url, `POST /login HTTP/1.1\nHost: ${host(master.url)}\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\nContent-Length: ${body.length + 10_000}`, once(body), { end: 'close', settleMs: 500 });
    await masterAlive();
  });

  test('POST /login takes no file parts, even a complete one', async () => {
    const form = new FormData();
    form.set('username', 'admin');
    form.set('password', new Blob([Buffer.from('not a password')]), 'password.txt');
    const r = await fetch(`${master.url}/login`, { method: 'POST', body: form });
    assert.equal(r.status, 400);
    assert.match(await r.text(), /takes no file uploads/);
  });

  test('web forms other than the upload take no file parts', async () => {
    // Refused while reading the body, before the form's session and CSRF checks: no login needed to see it.
    const form = new FormData();
    form.set('file', new Blob([Buffer.from('x')]), 'x.txt');
    const login = await fetch(`${master.url}/login`, { method: 'POST', body: form });
    assert.equal(login.status, 400);
    await login.arrayBuffer();
  });

  test('a chunked multipart flood to /login: 413 at once, connection closed, no memory kept', async () => {
    const { answer, grownKiB } = await flood(master.url,
      `POST /login HTTP/1.1\nHost: ${host(master.url)}\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\nTransfer-Encoding: chunked`,
      multipartFlood(MIB), master.proc.pid!);
    assert.equal(answer.status, 413, answer.headers);
    assert.match(answer.headers, /connection: close/i);
    assert.ok(answer.closed, 'the master closed the connection');
    assert.ok(answer.sent < 100 * MIB, `the master stopped reading early (${answer.sent} bytes were sent)`);
    assert.ok(grownKiB < RSS_SLACK_KIB, `the master grew by ${grownKiB} KiB`);
    await masterAlive();
  });

  test('a chunked urlencoded flood to /login: 413', async () => {
    const { answer, grownKiB } = await flood(master.url,
      `POST /login HTTP/1.1\nHost: ${host(master.url)}\nContent-Type: application/x-www-form-urlencoded\nTransfer-Encoding: chunked`,
      urlencodedFlood(), master.proc.pid!);
    assert.equal(answer.status, 413, answer.headers);
    assert.ok(answer.closed);
    assert.ok(grownKiB < RSS_SLACK_KIB, `the master grew by ${grownKiB} KiB`);
    await masterAlive();
  });

  test('a chunked JSON flood to the API (authenticated): 413, connection closed', async () => {
    const piece = Buffer.alloc(MIB, ' ');
    const { answer, grownKiB } = await flood(master.url,
      `POST /api/schedules HTTP/1.1\nHost: ${host(master.url)}\nAuthorization: ${basic(ADMIN.user, ADMIN.password)}\nContent-Type: application/json\nTransfer-Encoding: chunked`,
      (i) => chunk(i === 0 ? Buffer.from('{"x": "') : piece), master.proc.pid!);
    assert.equal(answer.status, 413, answer.headers);
    assert.match(answer.body, /JSON body is over/);
    assert.ok(answer.closed);
    assert.ok(grownKiB < RSS_SLACK_KIB, `the master grew by ${grownKiB} KiB`);
    await masterAlive();
  });

  test('a chunked flood to the API without credentials: 401, and the connection is not kept for it', async () => {
    const { answer } = await flood(master.url,
      `POST /api/schedules HTTP/1.1\nHost: ${host(master.url)}\nContent-Type: application/json\nTransfer-Encoding: chunked`,
      (i) => chunk(Buffer.alloc(i === 0 ? 1 : MIB, ' ')), master.proc.pid!);
    assert.equal(answer.status, 401, answer.headers);
    assert.ok(answer.closed, 'the master closed the connection');
    assert.ok(answer.sent < 100 * MIB, `${answer.sent} bytes were sent`);
  });

  test('the Scrapyd facade: a truncated multipart addversion.json is an error, the master keeps answering', async () => {
    const body = truncatedMultipart('egg');
    const r = await rawExchange(master.url, `POST /addversion.json HTTP/1.1\nHost: ${host(master.url)}\nAuthorization: ${basic(ADMIN.user, ADMIN.password)}\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\nConnection: close\nContent-Length: ${body.length}`, once(body));
    assert.equal(r.status, 200, r.headers);
    assert.match(r.body, /"status": "error", "message": "cannot read the multipart body: Unexpected end of form"/);
    await masterAlive();
  });
});

describe('slave', () => {
  test('addversion.json with a file part that never ends: Scrapyd error, the slave keeps answering', async () => {
    const body = truncatedMultipart('egg');
    const r = await rawExchange(slave.url, `POST /addversion.json HTTP/1.1\nHost: ${host(slave.url)}\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\nConnection: close\nContent-Length: ${body.length}`, once(body));
    assert.equal(r.status, 200, r.headers);
    assert.match(r.body, /^\{"status": "error", "message": "cannot read the multipart body: Unexpected end of form", "node_name": "testnode"\}\n$/);
    await slaveAlive();
  });

  test('addversion.json closed mid-part by the client: the slave keeps answering', async () => {
    const body = truncatedMultipart('egg');
    await rawExchange(slave.url, `POST /addversion.json HTTP/1.1\nHost: ${host(slave.url)}\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\nContent-Length: ${body.length + 10_000}`, once(body), { end: 'close', settleMs: 500 });
    await slaveAlive();
  });

  test('schedule.json takes no file under another name than egg', async () => {
    const form = new FormData();
    form.set('project', 'p');
    form.set('spider', 's');
    form.set('other', new Blob([Buffer.from('x')]), 'x.bin');
    const r = await fetch(`${slave.url}/schedule.json`, { method: 'POST', body: form });
    const j = (await r.json()) as { status: string; message: string };
    assert.equal(j.status, 'error');
    assert.match(j.message, /unexpected file field 'other'/);
  });

  test('a chunked urlencoded flood to schedule.json: refused early, connection closed, no memory kept', async () => {
    const { answer, grownKiB } = await flood(slave.url,
      `POST /schedule.json HTTP/1.1\nHost: ${host(slave.url)}\nContent-Type: application/x-www-form-urlencoded\nTransfer-Encoding: chunked`,
      urlencodedFlood(), slave.proc.pid!);
    assert.equal(answer.status, 200, answer.headers); // Scrapyd answers errors with 200 and its envelope
    assert.match(answer.body, /"status": "error", "message": "request body is too large \(over 4194304 bytes\)"/);
    assert.ok(answer.closed);
    assert.ok(answer.sent < 100 * MIB, `${answer.sent} bytes were sent`);
    assert.ok(grownKiB < RSS_SLACK_KIB, `the slave grew by ${grownKiB} KiB`);
    await slaveAlive();
  });
});
