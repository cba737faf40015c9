import type { Context, Next } from 'koa';
import { BlockList, isIP } from 'node:net';
import type { OptionSpec } from '../../common/options.ts';

// Reverse-proxy awareness: the X-Forwarded-* headers are believed only when the TCP peer is a
// trusted proxy (nginx on the same host by default). Anybody else could send them to spoof their
// address, scheme, host or the path prefix the UI builds its links with.

/** The master option that feeds trustedProxy(); spread it into MASTER_OPTIONS to wire it. */
export const TRUSTED_PROXY_OPTION: OptionSpec = {
  flag: 'trusted-proxy', env: 'SPIDERPLANE_TRUSTED_PROXY', type: 'string', default: '127.0.0.1,::1',
  help: "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For/-Proto/-Host/-Prefix headers are believed ('' = none)",
};

/** What the middleware leaves in ctx.state. */
export interface ProxyState {
  /** the client's address: the socket peer, or from X-Forwarded-For behind a trusted proxy */
  clientIp: string;
  /** 'http' or 'https' as the client used it */
  proto: 'http' | 'https';
  /** Host (with port when not default) as the client used it */
  host: string;
  /** path prefix the site lives under ('' or like '/spiderplane', never a trailing slash) */
  prefix: string;
  /** true when the request came through a trusted proxy */
  viaProxy: boolean;
}

/** Splits a `--trusted-proxy` value ("127.0.0.1, ::1,10.0.0.0/8") into its entries. */
export function parseTrustedList(value: string | readonly string[] | null | undefined): string[] {
  const parts = typeof value === 'string' ? value.split(',') : [...(value ?? [])];
  return parts.map((s) => s.trim()).filter((s) => s !== '');
}

/** Strips IPv6 brackets, a zone, an IPv4-mapped prefix and a port; returns null when not an IP. */
export function normaliseIp(raw: string): string | null {
  let s = raw.trim();
  if (s === '') return null;
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (bracket) s = bracket[1]!;
  else if (/^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(s)) s = s.slice(0, s.lastIndexOf(':'));
  const zone = s.indexOf('%');
  if (zone > 0 && s.includes(':')) s = s.slice(0, zone);
  const mapped = /^::ffff:(\d{1,3}(\.\d{1,3}){3})$/i.exec(s);
  if (mapped) s = mapped[1]!;
  return isIP(s) ? s.toLowerCase() : null;
}

/** Builds a matcher for addresses and CIDRs ("127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8"). */
export function ipMatcher(entries: readonly string[]): (ip: string) => boolean {
  const list = new BlockList();
  for (const entry of entries) {
    const [addr = '', bits] = entry.split('/', 2);
    const ip = normaliseIp(addr);
    if (!ip) throw new Error(`trusted proxy '${entry}' is not an IP address or CIDR`);
    const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) {
      list.addAddress(ip, type);
    } else {
      const n = Number(bits);
      if (!/^\d+$/.test(bits) || n > (type === 'ipv6' ? 128 : 32)) throw new Error(`trusted proxy '${entry}' has a bad prefix length`);
      list.addSubnet(ip, n, type);
    }
  }
  return (ip: string) => {
    const n = normaliseIp(ip);
    return n !== null && list.check(n, isIP(n) === 6 ? 'ipv6' : 'ipv4');
  };
}

/**
 * The client address from X-Forwarded-For: walking from the right (the hop nearest to us), every
 * trusted proxy is skipped and the first untrusted address is the client. A malformed entry stops
 * the walk (what lies left of it cannot be believed). All hops trusted: the leftmost one.
 */
export function clientFromForwardedFor(peer: string, header: string, trusted: (ip: string) => boolean): string {
  let client = peer;
  const hops = header.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const ip = normaliseIp(hops[i]!);
    if (ip === null) break;
    client = ip;
    if (!trusted(ip)) break;
  }
  return client;
}

const PREFIX_SEGMENT = /^[A-Za-z0-9._~!$&*+,;=:@-]+$/;

/**
 * A validated X-Forwarded-Prefix: '' for none or '/', else '/a/b' — starts with '/', no trailing
 * slash, no empty, '.' or '..' segment, nothing outside a conservative character set (no quotes,
 * '<', '>', '%', '\', whitespace or control characters), at most 200 characters. Null when invalid.
 */
export function validPrefix(raw: string): string | null {
  const v = raw.trim();
  if (v === '' || v === '/') return '';
  if (v.length > 200 || !v.startsWith('/') || v.endsWith('/') || v.includes('..')) return null;
  const segments = v.slice(1).split('/');
  if (segments.some((s) => s === '' || s === '.' || !PREFIX_SEGMENT.test(s))) return null;
  return v;
}

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

function firstValue(header: string): string {
  return (header.split(',')[0] ?? '').trim();
}

/**
 * Koa middleware: fills ctx.state.clientIp, .proto, .host, .prefix (and .viaProxy). Behind a
 * trusted proxy (the TCP peer is in `trusted`) they come from X-Forwarded-For (rightmost untrusted
 * address), X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Prefix, each validated and falling
 * back to the socket's own value when missing or malformed; from anyone else the headers are
 * ignored. When the proxy passed the prefix on in the path itself (no stripping), it is removed
 * from ctx.path so the routes match either way.
 */
export function trustedProxy(trusted: string | readonly string[]) {
  const isTrusted = ipMatcher(parseTrustedList(trusted));
  return async (ctx: Context, next: Next): Promise<void> => {
    const peer = normaliseIp(ctx.req.socket.remoteAddress ?? '') ?? (ctx.req.socket.remoteAddress ?? '');
    const socketProto: 'http' | 'https' = (ctx.req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
    const ownHost = ctx.get('Host');
    const state: ProxyState = { clientIp: peer, proto: socketProto, host: HOST.test(ownHost) ? ownHost : '', prefix: '', viaProxy: false };
    if (peer !== '' && isTrusted(peer)) {
      state.viaProxy = true;
      const xff = ctx.get('X-Forwarded-For');
      if (xff) state.clientIp = clientFromForwardedFor(peer, xff, isTrusted);
      const proto = firstValue(ctx.get('X-Forwarded-Proto')).toLowerCase();
      if (proto === 'http' || proto === 'https') state.proto = proto;
      const host = firstValue(ctx.get('X-Forwarded-Host'));
      if (host && HOST.test(host)) state.host = host;
      const prefix = validPrefix(ctx.get('X-Forwarded-Prefix'));
      if (prefix) {
        state.prefix = prefix;
        if (ctx.path === prefix || ctx.path.startsWith(prefix + '/')) ctx.path = ctx.path.slice(prefix.length) || '/';
      }
    }
    Object.assign(ctx.state, state);
    await next();
  };
}

/** The URL the client sees for a path of this app, e.g. publicUrl(ctx, '/api/runs') behind a prefix. */
export function publicUrl(ctx: Context, path: string): string {
  const s = ctx.state as Partial<ProxyState>;
  return `${s.proto ?? ctx.protocol}://${s.host || ctx.host}${s.prefix ?? ''}${path.startsWith('/') ? path : '/' + path}`;
}
