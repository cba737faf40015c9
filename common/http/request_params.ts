import type { Context } from 'koa';
import busboy from 'busboy';
import { ApiError } from './scrapyd_protocol.ts';

/** Request arguments merged from the query string and the body, as Twisted's request.args are. */
export class Params {
  constructor(
    private readonly values: Map<string, string[]>,
    readonly files: Map<string, Buffer>,
  ) {}

  get(name: string): string | undefined { return this.values.get(name)?.[0]; }
  getAll(name: string): string[] { return this.values.get(name) ?? []; }
  names(): string[] { return [...this.values.keys()]; }
}

const MAX_FORM_BYTES = 4 * 1024 * 1024;

function add(map: Map<string, string[]>, k: string, v: string): void {
  const list = map.get(k);
  if (list) list.push(v);
  else map.set(k, [v]);
}

async function readBody(ctx: Context, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      // The rest of the body stays unread: close the connection so a keep-alive client does not hang on it.
      ctx.set('Connection', 'close');
      throw new ApiError(`request body is too large (over ${limit} bytes)`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function readMultipart(ctx: Context, values: Map<string, string[]>, files: Map<string, Buffer>, maxFileBytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: ctx.req.headers, limits: { fileSize: maxFileBytes, files: 4, fields: 1000, fieldSize: 1024 * 1024 } });
    } catch (e) {
      reject(new ApiError(`cannot read the multipart body: ${(e as Error).message}`));
      return;
    }
    let failure: ApiError | null = null;
    bb.on('field', (name, value) => add(values, name, value));
    bb.on('file', (name, stream) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => {
        failure = new ApiError(`upload '${name}' is too large: the limit is ${Math.round((maxFileBytes / 1048576) * 100) / 100} MiB (--max-upload-mb)`);
      });
      stream.on('end', () => { if (!failure) files.set(name, Buffer.concat(chunks)); });
    });
    bb.on('filesLimit', () => { failure = new ApiError('too many files in the upload'); });
    bb.on('error', (e: Error) => reject(new ApiError(`cannot read the multipart body: ${e.message}`)));
    bb.on('close', () => (failure ? reject(failure) : resolve()));
    ctx.req.pipe(bb);
  });
}

/** Parses query + body once per request; uploads are capped at maxFileBytes each. */
export async function readParams(ctx: Context, maxFileBytes: number): Promise<Params> {
  const values = new Map<string, string[]>();
  const files = new Map<string, Buffer>();
  for (const [k, v] of new URLSearchParams(ctx.querystring)) add(values, k, v);
  if (ctx.method === 'POST') {
    const declared = Number(ctx.get('Content-Length') || 0);
    if (declared > maxFileBytes + MAX_FORM_BYTES) {
      ctx.req.resume(); // drain, so the client reads our answer instead of a reset
      throw new ApiError(`upload is too large: ${declared} bytes, the limit is ${Math.round((maxFileBytes / 1048576) * 100) / 100} MiB (--max-upload-mb)`);
    }
    const type = ctx.get('Content-Type');
    if (/^multipart\/form-data/i.test(type)) {
      await readMultipart(ctx, values, files, maxFileBytes);
    } else {
      const body = await readBody(ctx, MAX_FORM_BYTES);
      for (const [k, v] of new URLSearchParams(body)) add(values, k, v);
    }
  }
  return new Params(values, files);
}
