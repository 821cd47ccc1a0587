/**
 * Request body limits, applied to every request before anything reads or parses its body.
 *
 * In: the request path (which picks the limit, `BODY_LIMITS`) and the body as it arrives. A body
 * whose Content-Length is over the limit is answered 413 without reading a byte; a body without
 * one (chunked) is counted as the handler reads it and the read fails past the limit, so no more
 * than the limit is ever held, and the answer is the same 413. Nothing is buffered here: a route
 * that authenticates first (the webhook's secret) still does so before the body is read.
 *
 * Out: 413 `{error, details: {limitBytes}}`. The unread rest of the body is @hono/node-server's
 * to deal with: it drains at most 64 MB or 500 ms, then closes the connection (closing at once
 * would reset it, and a reset can destroy the 413 before the client has read it).
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

export function limitBodies(): MiddlewareHandler {
  return async (c, next) => {
    const body = c.req.raw.body;
    if (!body) return next();
    const maxBytes = bodyLimitFor(c.req.path);
    const declared = c.req.header('content-length');
    if (declared !== undefined && !c.req.header('transfer-encoding')) {
      // Node's HTTP parser holds the body to exactly Content-Length bytes, so the header is enough.
      return Number(declared) > maxBytes ? tooLarge(c, maxBytes) : next();
    }
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
 * `Expect: 100-continue` (RFC 9110 §10.1.1; curl sends it for uploads over 1 MiB): a declared body
 * over the route's limit is refused with the same 413 before the client sends a byte of it, so
 * the answer cannot be lost to a connection reset while the client is still sending. Any other
 * request gets `100 Continue` and goes to the app as usual (`request` event).
 */
export function refuseOversizeBeforeContinue(server: Pick<Server, 'on' | 'emit'>): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const maxBytes = bodyLimitFor(new URL(req.url ?? '/', 'http://x').pathname);
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes && !req.headers['transfer-encoding']) {
      res.writeHead(413, { 'Content-Type': 'application/json', Connection: 'close' });
      res.end(JSON.stringify({ error: 'Payload too large', details: { limitBytes: maxBytes } }));
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });
}
