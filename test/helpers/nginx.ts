// Runs Debian's real nginx with one of daemon/nginx/'s site files, from a temporary prefix on
// free 127.0.0.1 ports (never /etc/nginx/sites-enabled), and talks HTTPS to it with the test's
// self-signed certificate as the only trusted CA.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { DAEMON_DIR, execFileP, exitOf, freePort, killGroupOf } from './daemon_tools.ts';
import { tempDir, waitFor } from './slave_process.ts';

export const NGINX = '/usr/sbin/nginx';

export interface Cert { cert: string; key: string; pem: Buffer }

/** A self-signed certificate for 127.0.0.1 (what the site's TLS placeholders are replaced by). */
export async function selfSignedCert(dir: string): Promise<Cert> {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await execFileP('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  return { cert, key, pem: readFileSync(cert) };
}

/**
 * The shipped site file made runnable here, by plain text replacements only: the upstream address,
 * the two listen ports on 127.0.0.1 (IPv6 listens dropped), the certificate placeholders.
 */
export function renderSite(siteFile: string, o: { upstream: string; httpPort: number; httpsPort: number; cert: Cert }): string {
  return readFileSync(join(DAEMON_DIR, 'nginx', siteFile), 'utf8')
    .replace(/server 127\.0\.0\.1:5000;/g, `server ${o.upstream};`)
    .replace(/^\s*listen \[::\]:.*$/gm, '')
    .replace(/listen 80;/g, `listen 127.0.0.1:${o.httpPort};`)
    .replace(/listen 443 ssl/g, `listen 127.0.0.1:${o.httpsPort} ssl`)
    .replace(/ssl_certificate\s+\S+;/g, `ssl_certificate ${o.cert.cert};`)
    .replace(/ssl_certificate_key\s+\S+;/g, `ssl_certificate_key ${o.cert.key};`);
}

export interface NginxHandle { httpsUrl: string; httpUrl: string; dir: string; proc: ChildProcess; output: () => string; stop: () => Promise<void> }

export async function startNginx(siteFile: string, upstream: string, cert: Cert): Promise<NginxHandle> {
  const dir = tempDir('spiderplane-nginx-');
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'site.conf'), renderSite(siteFile, { upstream, httpPort, httpsPort, cert }));
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, [
    // as root the workers would become 'nobody' and could not write the temp folders
    userInfo().uid === 0 ? 'user root;' : '',
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'logs', 'error.log')} info;`,
    'events { worker_connections 256; }',
    'http {',
    '  include /etc/nginx/mime.types;',
    '  default_type application/octet-stream;',
    `  access_log ${join(dir, 'logs', 'access.log')};`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, t === 'client_body' ? 'body' : t)};`),
    `  include ${join(dir, 'site.conf')};`,
    '}',
    '',
  ].join('\n'));
  const args = ['-p', dir + '/', '-e', join(dir, 'logs', 'error.log'), '-c', conf, '-g', 'daemon off;'];
  try {
    await execFileP(NGINX, ['-t', ...args]);
  } catch (e) {
    const x = e as { stderr?: string };
    throw new Error(`nginx -t refused ${siteFile}:\n${x.stderr ?? String(e)}\n${readFileSync(join(dir, 'site.conf'), 'utf8')}`);
  }
  const proc = spawn(NGINX, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  await waitFor(`nginx listening on ${httpUrl}`, async () => {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${out}`);
    await fetch(httpUrl + '/', { redirect: 'manual' });
    return true;
  }, 10_000, 50);
  return {
    httpsUrl: `https://127.0.0.1:${httpsPort}`, httpUrl, dir, proc, output: () => out + readFileSync(join(dir, 'logs', 'error.log'), 'utf8').slice(-3000),
    stop: async () => {
      if (proc.exitCode !== null) return;
      proc.kill('SIGQUIT'); // graceful shutdown
      const timer = setTimeout(() => killGroupOf(proc, 'SIGKILL'), 5000);
      await exitOf(proc);
      clearTimeout(timer);
    },
  };
}

export interface TlsResponse { status: number; headers: IncomingMessage['headers']; body: Buffer; text: string }

/** An HTTPS request trusting only `ca`; the whole answer. */
export function tlsFetch(url: string, ca: Buffer, opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<TlsResponse> {
  return new Promise((res, rej) => {
    const req = httpsRequest(url, { method: opts.method ?? 'GET', headers: opts.headers, ca, agent: false }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => { const body = Buffer.concat(chunks); res({ status: r.statusCode!, headers: r.headers, body, text: body.toString('utf8') }); });
      r.on('error', rej);
    });
    req.on('error', rej);
    req.end(opts.body);
  });
}

/** An HTTPS request whose answer is read as a stream (server-sent events). */
export function tlsStream(url: string, ca: Buffer, headers: Record<string, string> = {}): Promise<{ res: IncomingMessage; close: () => void }> {
  return new Promise((res, rej) => {
    const req = httpsRequest(url, { headers, ca, agent: false }, (r) => res({ res: r, close: () => req.destroy() }));
    req.on('error', rej);
    req.end();
  });
}

/** A FormData body as bytes plus its multipart Content-Type (for node:https). */
export async function multipart(form: FormData): Promise<{ body: Buffer; contentType: string }> {
  const req = new Request('http://localhost/', { method: 'POST', body: form });
  return { body: Buffer.from(await req.arrayBuffer()), contentType: req.headers.get('content-type')! };
}
