// Whether a listen address keeps a daemon on this machine (loopback only) or opens it to a network.

/** True for 127.0.0.0/8, ::1 (also IPv4-mapped) and 'localhost'; false for 0.0.0.0, :: and every other address. */
export function isLoopbackBind(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}
