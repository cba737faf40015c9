/**
 * The one reader of request bodies, for every route of the master and the slave (forms, Scrapyd
 * API calls, uploads, JSON). What it guarantees:
 * - bytes are counted as they arrive, chunked or not, whatever Content-Length claims; nothing past a
 *   cap is buffered. A body over a cap ends the request with 413 and the connection is closed once
 *   the answer is out (the rest of the body is read and thrown away for a moment, then the socket is
 *   destroyed, so the client still gets the answer);
 * - a body that breaks off (a multipart file part that never ends, a client gone mid-way) ends that
 *   request with 400: no stream error escapes into the process;
 * - file parts are accepted only by routes that name their one upload field, with its own cap;
 *   everywhere else a file part is refused (400);
 * - urlencoded bodies are decoded as bytes (percent-decoding to a Buffer), so an upload field sent
 *   urlencoded (ScrapydWeb's `requests.post(data={'egg': bytes})`) arrives byte for byte.
 */
import type { Context } from 'koa';
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';

/** A body the reader refused; `status` is the HTTP status to answer (400, 413 or 415). */
export class BodyRejected extends Error {
  constructor(readonly status: 400 | 413 | 415, message: string) {
    super(message);
  }
}

/** Request arguments merged from the query string and the body, as Twisted's request.args are. */
export class Params {
  constructor(
    private readonly values: Map<string, string[]>,
    /** The upload, when the route takes one (a multipart file part or the urlencoded field's bytes). */
    readonly files: Map<string, Buffer>,
  ) {}

  get(name: string): string | undefined { return this.values.get(name)?.[0]; }
  getAll(name: string): string[] { return this.values.get(name) ?? []; }
  names(): string[] { return [...this.values.keys()]; }
}

export interface BodyLimits {
  /** Bytes of the body apart from the upload's data: every field name and value together. */
  maxBytes: number;
  maxFields: number;
  /** Bytes of one field's value (and of one field's name). */
  maxFieldBytes: number;
  /** The route's one upload: the field names it may come under, and its own cap. None: no file parts. */
  upload?: { fields: readonly string[]; maxBytes: number };
}

const MIB = 1024 * 1024;

/** Scrapyd's API (slave and the master's facade): egg uploads, spider arguments and settings. */
export function scrapydLimits(maxUploadBytes: number): BodyLimits {
  return { maxBytes: 4 * MIB, maxFields: 1000, maxFieldBytes: 4 * MIB, upload: { fields: ['egg'], maxBytes: maxUploadBytes } };
}

/** The master's web forms (everything but the package upload, which adds its upload field). */
export const FORM_LIMITS: BodyLimits = Object.freeze({ maxBytes: 256 * 1024, maxFields: 400, maxFieldBytes: 64 * 1024 });

/** The login form: a username, a password and two tokens. */
export const LOGIN_LIMITS: BodyLimits = Object.freeze({ maxBytes: 8 * 1024, maxFields: 8, maxFieldBytes: 2 * 1024 });

/** JSON bodies of the master's API. */
export const MAX_JSON_BYTES = MIB;

/** Part headers, boundaries and the like around a multipart upload. */
const MULTIPART_OVERHEAD = 64 * 1024;
/** After a refused body: how long and how much of the rest is read and dropped before the socket goes. */
const LINGER_MS = 2_000;
const LINGER_BYTES = 16 * MIB;

const mib = (n: number) => `${Math.round((n / MIB) * 100) / 100} MiB`;
const tooLargeUpload = (name: string, cap: number) => new BodyRejected(413, `upload '${name}' is too large: the limit is ${mib(cap)} (--max-upload-mb)`);
const tooLargeBody = (cap: number) => new BodyRejected(413, `request body is too large (over ${cap} bytes)`);

const lingering = new WeakSet<IncomingMessage>();

/**
 * After refusing a body that was not read to its end: answer with Connection: close and close the
 * connection without losing the answer. Until the answer is out, nothing more is read (the client
 * is held back by TCP). Then the connection is half-closed and what still comes is read and
 * dropped — up to LINGER_BYTES, then it is left unread — and after LINGER_MS the socket is
 * destroyed. Destroying it at once, with unread bytes, would make the kernel send a reset that can
 * reach the client before our answer does.
 */
export function closeAfterAnswer(ctx: Context): void {
  ctx.set('Connection', 'close');
  const { req, res } = ctx;
  if (req.complete || lingering.has(req)) return;
  lingering.add(req);
  const socket = req.socket;
  // Node's server calls destroySoon() right after a Connection: close answer: half-close instead.
  socket.destroySoon = () => { if (socket.writable) socket.end(); };
  req.removeAllListeners('data');
  req.on('error', () => undefined);
  req.pause();
  const linger = () => {
    let dropped = 0;
    req.on('data', (c: Buffer) => {
      dropped += c.length;
      if (dropped > LINGER_BYTES) req.pause();
    });
    req.resume();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  };
  if (res.writableFinished) linger();
  else {
    res.once('finish', linger);
    res.once('close', () => { if (!res.writableFinished) socket.destroy(); }); // the answer never went out
  }
}

/**
 * Middleware, first in both daemons: a request whose body no route read (refused before reading:
 * no credentials, wrong role, no such route) is answered with Connection: close and the rest of its
 * body is dropped, so nobody holds a connection open by streaming a body nobody wants.
 */
export async function closeUnreadBodies(ctx: Context, next: () => Promise<unknown>): Promise<void> {
  await next();
  if (!ctx.req.complete && !ctx.req.readableEnded) closeAfterAnswer(ctx);
}

/**
 * Feeds the request's bytes to `sink`, counting them against `cap`. Resolves at the body's end;
 * rejects with 413 past the cap, with 400 when the body breaks off, or with what `sink` threw.
 */
function pump(req: IncomingMessage, cap: number, sink: (chunk: Buffer) => boolean, drain?: (resume: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    if (req.readableEnded) return resolve(); // read before: nothing more will come
    let size = 0;
    let settled = false;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('aborted', onBroken);
      req.off('close', onClose);
      req.off('error', onError);
      req.on('error', () => undefined); // a later socket error must not crash the process
    };
    const fail = (e: unknown) => {
      if (settled) return;
      settled = true;
      cleanup();
      req.pause();
      reject(e);
    };
    const onData = (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > cap) return fail(tooLargeBody(cap));
      let more: boolean;
      try {
        more = sink(chunk);
      } catch (e) {
        return fail(e);
      }
      if (!more && drain) {
        req.pause();
        drain(() => { if (!settled) req.resume(); });
      }
    };
    const onEnd = () => {
      if (settled) return;
      settled = true;
      cleanup();
      resolve();
    };
    const onBroken = () => fail(new BodyRejected(400, 'the request body broke off before its end'));
    const onClose = () => { if (!req.complete) onBroken(); };
    const onError = (e: Error) => fail(new BodyRejected(400, `cannot read the request body: ${e.message}`));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('aborted', onBroken);
    req.on('close', onClose);
    req.on('error', onError);
    req.resume();
  });
}

function add(map: Map<string, string[]>, k: string, v: string): void {
  const list = map.get(k);
  if (list) list.push(v);
  else map.set(k, [v]);
}

const HEX = (b: number): number => (b >= 0x30 && b <= 0x39 ? b - 0x30 : b >= 0x41 && b <= 0x46 ? b - 0x37 : b >= 0x61 && b <= 0x66 ? b - 0x57 : -1);

/**
 * application/x-www-form-urlencoded, decoded byte by byte as it streams ('+' is a space, %XX a
 * byte, a '%' not followed by two hex digits stays as it is — as Python's unquote_plus does).
 * Names and ordinary values are UTF-8 text; the upload field's value stays bytes.
 */
class UrlencodedDecoder {
  private readonly uploadFields: ReadonlySet<string>;
  private name: string | null = null; // set once the '=' of the current pair was seen
  private parts: Buffer[] = [];
  private partsLength = 0;
  private pct: number[] = []; // bytes after a '%' not yet decided
  private fields = 0;
  private textBytes = 0;
  private uploadBytes = 0;
  private started = false;

  constructor(private readonly limits: BodyLimits, private readonly values: Map<string, string[]>, private readonly files: Map<string, Buffer>) {
    this.uploadFields = new Set(limits.upload?.fields ?? []);
  }

  private flushOut(out: Buffer, n: number): void {
    if (n === 0) return;
    const len = this.partsLength + n;
    const upload = this.name !== null && this.uploadFields.has(this.name);
    if (upload) {
      // One upload per request: its bytes, however many fields carry them, meet one cap.
      if (this.files.size > 0) throw new BodyRejected(400, 'only one file can be uploaded at a time');
      this.uploadBytes += n;
      if (this.uploadBytes > this.limits.upload!.maxBytes) throw tooLargeUpload(this.name!, this.limits.upload!.maxBytes);
    } else {
      this.textBytes += n;
      if (this.textBytes > this.limits.maxBytes) throw tooLargeBody(this.limits.maxBytes);
      if (len > this.limits.maxFieldBytes) {
        throw new BodyRejected(413, `form field ${this.name === null ? 'name' : `'${this.name.slice(0, 50)}'`} is too large: the limit is ${this.limits.maxFieldBytes} bytes`);
      }
    }
    this.parts.push(Buffer.from(out.subarray(0, n)));
    this.partsLength = len;
  }

  private take(): Buffer {
    const b = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsLength);
    this.parts = [];
    this.partsLength = 0;
    return b;
  }

  private endPair(): void {
    const bytes = this.take();
    if (this.name === null && bytes.length === 0 && !this.started) return; // '&&' or an empty body
    this.fields++;
    if (this.fields > this.limits.maxFields) throw new BodyRejected(413, `too many form fields: the limit is ${this.limits.maxFields}`);
    const name = this.name ?? bytes.toString('utf8');
    if (this.name !== null && this.uploadFields.has(name)) {
      if (this.files.size > 0) throw new BodyRejected(400, 'only one file can be uploaded at a time');
      this.files.set(name, bytes);
    }
    else add(this.values, name, this.name === null ? '' : bytes.toString('utf8'));
    this.name = null;
    this.started = false;
  }

  write(chunk: Buffer): boolean {
    const out = Buffer.allocUnsafe(chunk.length + 3);
    let n = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.pct.length > 0) {
        this.pct.push(b);
        if (HEX(b) < 0) { // not an escape after all: the '%' and what followed are literal
          const literal = this.pct;
          this.pct = [];
          out[n++] = 0x25;
          for (const x of literal.slice(1, -1)) out[n++] = x;
          i--; // look at this byte again, unescaped
          continue;
        }
        if (this.pct.length === 3) {
          out[n++] = HEX(this.pct[1]!) * 16 + HEX(this.pct[2]!);
          this.pct = [];
        }
        continue;
      }
      if (b === 0x26) { // '&'
        this.flushOut(out, n);
        n = 0;
        this.endPair();
        continue;
      }
      this.started = true;
      if (b === 0x3d && this.name === null) { // the first '=' of a pair ends its name
        this.flushOut(out, n);
        n = 0;
        this.name = this.take().toString('utf8');
        continue;
      }
      if (b === 0x25) this.pct.push(b);
      else out[n++] = b === 0x2b ? 0x20 : b;
    }
    this.flushOut(out, n);
    return true;
  }

  end(): void {
    if (this.pct.length > 0) {
      const tail = Buffer.from(this.pct);
      this.pct = [];
      this.flushOut(tail, tail.length);
    }
    this.endPair();
  }
}

async function readUrlencoded(ctx: Context, limits: BodyLimits, values: Map<string, string[]>, files: Map<string, Buffer>): Promise<void> {
  const decoder = new UrlencodedDecoder(limits, values, files);
  // Percent-encoding at most triples the bytes of a value.
  const cap = limits.maxBytes + 3 * (limits.upload?.maxBytes ?? 0) + limits.maxFields;
  await pump(ctx.req, cap, (c) => decoder.write(c));
  decoder.end();
}

function readMultipart(ctx: Context, limits: BodyLimits, values: Map<string, string[]>, files: Map<string, Buffer>): Promise<void> {
  let bb: busboy.Busboy;
  try {
    bb = busboy({
      headers: ctx.req.headers,
      limits: {
        fields: limits.maxFields, fieldSize: limits.maxFieldBytes, fieldNameSize: 1024, parts: limits.maxFields + 1,
        files: limits.upload ? 1 : 0, fileSize: limits.upload?.maxBytes ?? 0, headerPairs: 20,
      },
    });
  } catch (e) {
    return Promise.reject(new BodyRejected(400, `cannot read the multipart body: ${(e as Error).message}`));
  }
  const uploadFields = new Set(limits.upload?.fields ?? []);
  let failure: BodyRejected | null = null;
  const refuse = (e: BodyRejected) => { failure ??= e; };
  let textBytes = 0;
  bb.on('field', (name, value, info) => {
    if (info.nameTruncated || info.valueTruncated) return refuse(new BodyRejected(413, `form field '${name.slice(0, 50)}' is too large: the limit is ${limits.maxFieldBytes} bytes`));
    textBytes += Buffer.byteLength(name) + Buffer.byteLength(value);
    if (textBytes > limits.maxBytes) return refuse(tooLargeBody(limits.maxBytes));
    add(values, name, value);
  });
  bb.on('file', (name, stream) => {
    // Every file stream gets its error handler: busboy fails it when the body ends mid-part.
    stream.on('error', (e: Error) => refuse(new BodyRejected(400, `cannot read the multipart body: ${e.message}`)));
    if (!uploadFields.has(name)) {
      refuse(new BodyRejected(400, limits.upload ? `unexpected file field '${name.slice(0, 50)}': upload the file as the multipart file field '${limits.upload.fields[0]}'` : 'this request takes no file uploads'));
      stream.resume();
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => { if (!failure) chunks.push(c); });
    stream.on('limit', () => refuse(tooLargeUpload(name, limits.upload!.maxBytes)));
    stream.on('end', () => { if (!failure) files.set(name, Buffer.concat(chunks)); });
  });
  bb.on('filesLimit', () => refuse(limits.upload ? new BodyRejected(400, 'only one file can be uploaded at a time') : new BodyRejected(400, 'this request takes no file uploads')));
  bb.on('fieldsLimit', () => refuse(new BodyRejected(413, `too many form fields: the limit is ${limits.maxFields}`)));
  bb.on('partsLimit', () => refuse(new BodyRejected(413, `too many form fields: the limit is ${limits.maxFields}`)));
  // Settles on busboy's end either way (never rejects: an error is kept in `failure`).
  const finished = new Promise<void>((resolve) => {
    bb.on('error', (e: Error) => { refuse(new BodyRejected(400, `cannot read the multipart body: ${e.message}`)); resolve(); });
    bb.on('close', () => resolve());
  });
  const cap = limits.maxBytes + (limits.upload?.maxBytes ?? 0) + MULTIPART_OVERHEAD;
  const fed = pump(ctx.req, cap, (c) => {
    if (failure) throw failure; // stop reading at the first refusal: no need to see the rest
    return bb.write(c);
  }, (resume) => bb.once('drain', resume));
  return (async () => {
    try {
      await fed;
    } catch (e) {
      bb.destroy();
      throw e;
    }
    if (failure) {
      bb.destroy();
      throw failure;
    }
    bb.end();
    await finished;
    if (failure) throw failure;
  })();
}

function declaredTooLarge(ctx: Context, limits: BodyLimits): BodyRejected | null {
  const raw = ctx.get('Content-Length');
  if (!raw) return null;
  const declared = Number(raw);
  const multipart = /^multipart\/form-data/i.test(ctx.get('Content-Type'));
  const upload = limits.upload?.maxBytes ?? 0;
  const cap = limits.maxBytes + (multipart ? upload + MULTIPART_OVERHEAD : 3 * upload + limits.maxFields);
  if (!(declared > cap)) return null;
  if (upload > 0) return new BodyRejected(413, `upload is too large: ${declared} bytes, the limit is ${mib(upload)} (--max-upload-mb)`);
  return tooLargeBody(cap);
}

/**
 * Parses query + body once per request. Throws BodyRejected (after arranging for the connection to
 * close when the body was not read to its end).
 */
export async function readParams(ctx: Context, limits: BodyLimits): Promise<Params> {
  const values = new Map<string, string[]>();
  const files = new Map<string, Buffer>();
  for (const [k, v] of new URLSearchParams(ctx.querystring)) add(values, k, v);
  if (ctx.method === 'POST' || ctx.method === 'PUT') {
    try {
      const early = declaredTooLarge(ctx, limits);
      if (early) throw early;
      if (/^multipart\/form-data/i.test(ctx.get('Content-Type'))) await readMultipart(ctx, limits, values, files);
      else await readUrlencoded(ctx, limits, values, files);
    } catch (e) {
      if (!ctx.req.complete) closeAfterAnswer(ctx);
      throw e;
    }
  }
  return new Params(values, files);
}

/** A JSON body (Content-Type application/json) of at most maxBytes; an empty body is {}. */
export async function readJsonBody(ctx: Context, maxBytes = MAX_JSON_BYTES): Promise<unknown> {
  try {
    if (!/^application\/json/i.test(ctx.get('Content-Type'))) throw new BodyRejected(415, 'send a JSON body with Content-Type: application/json');
    const declared = Number(ctx.get('Content-Length') || 0);
    if (declared > maxBytes) throw new BodyRejected(413, `the JSON body is over ${maxBytes} bytes`);
    const chunks: Buffer[] = [];
    try {
      await pump(ctx.req, maxBytes, (c) => { chunks.push(c); return true; });
    } catch (e) {
      if (e instanceof BodyRejected && e.status === 413) throw new BodyRejected(413, `the JSON body is over ${maxBytes} bytes`);
      throw e;
    }
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      return JSON.parse(text || '{}') as unknown;
    } catch (e) {
      throw new BodyRejected(400, `the body is not valid JSON: ${(e as Error).message}`);
    }
  } catch (e) {
    if (!ctx.req.complete) closeAfterAnswer(ctx);
    throw e;
  }
}
