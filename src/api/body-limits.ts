/**
 * Request body limits, applied to every request before anything reads or parses its body.
 *
 * In: the request path (which picks the limit, `BODY_LIMITS`) and the body as it arrives. A body
 * whose Content-Length is over the limit is answered 413 without reading a byte; a body without
 * one (chunked) is counted as the handler reads it and the read fails past the limit, so no more
 * than the limit is ever held, and the answer is the same 413. Nothing is buffered here: a route
 * that authenticates first (the webhook's secret) still does so before the body is read.
 *
 * Bodies are read as sent: one with a Content-Encoding other than identity (gzip, br...) would
 * reach the parsers as bytes they cannot read ("Malformed JSON"), so it is refused first with 415
 * and `Accept-Encoding: identity` (RFC 9110 §15.5.16).
 *
 * Out: 413 `{error, details: {limitBytes}}`. The unread rest of any answered body is read and
 * dropped for at most LINGER_MS (`lingerOnUnreadBody`), then the connection is closed: closing at
 * once would reset it while the client is still sending, and a reset can destroy the answer before
 * the client has read it (RFC 9112 §9.6).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * The limits, first match wins (README "Security"). Sign-in and the token report carry a few
 * short fields; gold tasks may carry brush masks (expectedLabels ≤ 5,000,000 characters, see
 * gold-tasks.ts); Label Studio webhooks carry a whole annotation.
 */
export const BODY_LIMITS: ReadonlyArray<{ path: RegExp; maxBytes: number }> = [
  { path: /^\/api\/auth\//, maxBytes: 16 * KiB },
  { path: /^\/api\/annotators\/[^/]+\/token$/, maxBytes: 4 * KiB },
  { path: /^\/api\/webhook$/, maxBytes: 10 * MiB },
  { path: /^\/api\/gold-tasks(\/|$)/, maxBytes: 8 * MiB },
];
/** Every other route (the largest documented bodies — bulk lists, settings — are well under it). */
export const DEFAULT_BODY_LIMIT = 1 * MiB;

export const bodyLimitFor = (path: string): number => BODY_LIMITS.find((l) => l.path.test(path))?.maxBytes ?? DEFAULT_BODY_LIMIT;

function tooLarge(c: Context, maxBytes: number): Response {
  return c.json({ error: 'Payload too large', details: { limitBytes: maxBytes } }, 413);
}

/** How long a connection whose request body was not read is kept reading (and dropping) it. */
export const LINGER_MS = 5_000;

/**
 * After the answer is sent, a request body nobody read is read and dropped (memory stays flat)
 * until the client stops sending or LINGER_MS pass, then the connection closes. A polite client
 * stops once it has its answer; one that will not stop is cut off. Replaces @hono/node-server's
 * own clean-up (500 ms or 64 MB, too short for a busy machine: serve({autoCleanupIncoming: false})).
 */
export function lingerOnUnreadBody(): MiddlewareHandler {
  return async (c, next) => {
    const env = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
    const { incoming, outgoing } = env ?? {};
    if (incoming && outgoing && c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      outgoing.once('finish', () => {
        if (incoming.readableEnded || incoming.destroyed) return;
        const timer = setTimeout(() => incoming.socket?.destroy(), LINGER_MS);
        timer.unref();
        incoming.once('end', () => clearTimeout(timer));
        incoming.once('close', () => clearTimeout(timer));
        incoming.on('data', () => {});
        incoming.resume();
      });
    }
    return next();
  };
}

export function limitBodies(): MiddlewareHandler {
  return async (c, next) => {
    // Headers first: touching c.req.raw.body makes the node adapter build a web Request and
    // stream for the body, which costs CPU on every request (the webhook hot path reads the
    // Node stream directly when the length is declared).
    const declared = c.req.header('content-length');
    const chunked = c.req.header('transfer-encoding') !== undefined;
    // Over HTTP/1.1 a body comes with one of the two; a request made in-process (app.request)
    // may carry one without either.
    if (declared === undefined && !chunked && ((c.env as { incoming?: unknown } | undefined)?.incoming || !c.req.raw.body)) return next();
    const encoding = c.req.header('content-encoding')?.trim();
    if (encoding && encoding.toLowerCase() !== 'identity') {
      return c.json(
        { error: 'Unsupported Content-Encoding: send the body uncompressed', details: { contentEncoding: encoding.slice(0, 100), accepted: ['identity'] } },
        415,
        { 'Accept-Encoding': 'identity' },
      );
    }
    const maxBytes = bodyLimitFor(c.req.path);
    if (declared !== undefined && !chunked) {
      // Node's HTTP parser holds the body to exactly Content-Length bytes, so the header is enough.
      return Number(declared) > maxBytes ? tooLarge(c, maxBytes) : next();
    }
    const body = c.req.raw.body;
    if (!body) return next();
    let size = 0;
    let exceeded = false;
    const counted = body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          size += chunk.byteLength;
          if (size > maxBytes) {
            exceeded = true;
            controller.error(new Error('request body over its limit'));
          } else controller.enqueue(chunk);
        },
      }),
    );
    c.req.raw = new Request(c.req.raw, { body: counted, duplex: 'half' } as RequestInit);
    await next();
    // Whatever the reader made of the failed read (a 400 "Malformed JSON", a 500), the answer is 413.
    if (exceeded) c.res = tooLarge(c, maxBytes);
  };
}

/**
 * `Expect: 100-continue` (RFC 9110 §10.1.1; curl sends it for uploads over 1 MiB). As Go's
 * net/http does, `100 Continue` is sent only when the app starts reading the body, so a request
 * answered without its body (a declared size over the route's limit, a wrong webhook secret) is
 * answered before the client sends a byte of it — the answer cannot be lost to a connection reset
 * while the client is still sending.
 */
export function continueOnFirstRead(server: Pick<Server, 'on' | 'emit'>): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const maxBytes = bodyLimitFor(new URL(req.url ?? '/', 'http://x').pathname);
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes && !req.headers['transfer-encoding']) {
      res.writeHead(413, { 'Content-Type': 'application/json', Connection: 'close' });
      res.end(JSON.stringify({ error: 'Payload too large', details: { limitBytes: maxBytes } }));
      return;
    }
    // Reading the body puts the stream in flowing mode ('resume'); after a final answer, never.
    req.once('resume', () => {
      if (!res.headersSent) res.writeContinue();
    });
    server.emit('request', req, res);
  });
}
