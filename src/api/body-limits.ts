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
 * Out: 413 `{error, details: {limitBytes}}`. The unread rest of the body is @hono/node-server's
 * to deal with: it drains at most 64 MB or 500 ms, then closes the connection (closing at once
 * would reset it, and a reset can destroy the 413 before the client has read it). That holds for
 * a keep-alive request; to one that sent `Connection: close`, Node's server closes as soon as the
 * 413 is written (it does no lingering close), so a client still sending may get the reset.
 */
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
    const encoding = c.req.header('content-encoding')?.trim();
    if (encoding && encoding.toLowerCase() !== 'identity') {
      return c.json(
        { error: 'Unsupported Content-Encoding: send the body uncompressed', details: { contentEncoding: encoding.slice(0, 100), accepted: ['identity'] } },
        415,
        { 'Accept-Encoding': 'identity' },
      );
    }
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
