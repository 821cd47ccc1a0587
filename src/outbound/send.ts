/**
 * One delivery attempt of a signed webhook: an HTTP(S) POST that connects only to an address the
 * policy allows (src/domain/address-policy.ts).
 *
 * The host name is resolved once, every address it resolves to is checked (one refused address
 * refuses the attempt), and the socket connects to a checked address (Node's `lookup` hook), so a
 * DNS answer that changes between check and connect (rebinding) cannot redirect it. An IP-literal
 * URL is checked before any socket opens. A refused attempt sends nothing.
 *
 * Signing follows the Standard Webhooks specification via the `standardwebhooks` package:
 * `webhook-id` (the event's id, the same on every retry), `webhook-timestamp` (this attempt, Unix
 * seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`).
 * Redirects are not followed (a 3xx is a failed attempt); the whole attempt is bounded by
 * `timeoutMs`; at most 1 KB of the answer is kept for the delivery log.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { refusal, type NetworkPolicy } from '../domain/address-policy.ts';
import { VERSION } from '../version.ts';

export interface SendRequest {
  url: string;
  /** The subscription's extra headers (names already validated, never the signature headers). */
  headers: Record<string, string>;
  msgId: string;
  body: string;
  /** The subscription's signing secret (`whsec_…`). */
  secret: string;
  policy: NetworkPolicy;
  timeoutMs: number;
  now?: Date;
}

export interface SendResult {
  /** The HTTP status, or null when no answer came back. */
  statusCode: number | null;
  error: string | null;
  /** True when the destination was refused (nothing was sent). */
  refused: boolean;
  durationMs: number;
  responseExcerpt: string | null;
}

class Refused extends Error {}

const EXCERPT_BYTES = 1024;

/** A `lookup` for http.request that resolves, refuses any disallowed answer, and hands back only checked addresses. */
function checkedLookup(policy: NetworkPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const why = addresses.map((a) => refusal(a.address, policy)).find((r) => r !== null);
      if (why) return callback(new Refused(`${hostname} resolves to ${why}`), '', 0);
      if (!addresses.length) return callback(new Error(`${hostname} has no address`), '', 0);
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      return callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

/** The headers Standard Webhooks requires, for `body` sent as message `msgId` at `now`. */
export function signatureHeaders(secret: string, msgId: string, now: Date, body: string): Record<string, string> {
  const timestamp = new Date(Math.floor(now.getTime() / 1000) * 1000);
  return {
    'webhook-id': msgId,
    'webhook-timestamp': String(timestamp.getTime() / 1000),
    'webhook-signature': new Webhook(secret).sign(msgId, timestamp, body),
  };
}

/** Sends one attempt; never throws (every failure is in the result). */
export async function sendWebhook(req: SendRequest): Promise<SendResult> {
  const started = performance.now();
  const done = (r: Omit<SendResult, 'durationMs'>): SendResult => ({ ...r, durationMs: Math.round(performance.now() - started) });
  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    return done({ statusCode: null, error: 'invalid URL', refused: true, responseExcerpt: null });
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host)) {
    const why = refusal(host, req.policy);
    if (why) return done({ statusCode: null, error: `refused: ${why}`, refused: true, responseExcerpt: null });
  }
  const headers = {
    ...req.headers,
    'content-type': 'application/json',
    'user-agent': `LabelFleet-Webhooks/${VERSION}`,
    ...signatureHeaders(req.secret, req.msgId, req.now ?? new Date(), req.body),
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<SendResult>((resolve) => {
    const signal = AbortSignal.timeout(req.timeoutMs);
    const request = client.request(
      url,
      { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(req.body)) }, lookup: checkedLookup(req.policy), signal, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size < EXCERPT_BYTES) chunks.push(chunk.subarray(0, EXCERPT_BYTES - size));
          size += chunk.length;
        });
        const finish = () =>
          resolve(
            done({
              statusCode: res.statusCode ?? null,
              error: res.statusCode && res.statusCode >= 200 && res.statusCode < 300 ? null : `HTTP ${res.statusCode}`,
              refused: false,
              responseExcerpt: Buffer.concat(chunks).toString('utf8') || null,
            }),
          );
        res.on('end', finish);
        res.on('error', finish);
        res.on('aborted', finish);
      },
    );
    request.on('error', (err) => {
      if (err instanceof Refused) return resolve(done({ statusCode: null, error: `refused: ${err.message}`, refused: true, responseExcerpt: null }));
      const message = signal.aborted ? `timed out after ${req.timeoutMs} ms` : err.message;
      resolve(done({ statusCode: null, error: message, refused: false, responseExcerpt: null }));
    });
    request.end(req.body);
  });
}
