/**
 * `Idempotency-Key` on POST, PUT, PATCH and DELETE (draft-ietf-httpapi-idempotency-key-header;
 * the value may be sent bare or as a quoted string, 1–255 visible ASCII characters).
 *
 * Keys belong to a credential (an API key, or the signed-in admin) and live 24 hours:
 * - the first request with a key runs; its response (status, body, content headers) is kept,
 *   unless it is a 5xx (then the key is released: nothing was done that a retry would repeat);
 * - the same key, credential, method, path, query and body within 24 h replays that response with
 *   `Idempotent-Replayed: true` (and the replaying request's own X-Request-Id);
 * - the same key with a different request is 422;
 * - while the first request is still running, 409 with Retry-After.
 * A process that dies mid-request holds the key for IN_FLIGHT_LOCK_MINUTES, after which a retry
 * with the same request runs again. Expired keys are purged by the reconciler (purgeIdempotencyKeys).
 */
import type { MiddlewareHandler } from 'hono';
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import { createHash } from 'node:crypto';
import { sha256 } from '../crypto.ts';
import type { Executor } from '../db/index.ts';
import { AppError, badRequest } from '../errors.ts';
import type { AppEnv } from './router.ts';

export const IDEMPOTENCY_WINDOW_HOURS = 24;
export const IN_FLIGHT_LOCK_MINUTES = 10;
const METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Response headers that belong to the result (kept and replayed); the rest belong to each request. */
const KEPT_HEADERS = ['content-type', 'location', 'x-total-count'];
export const REPLAYED_HEADER = 'Idempotent-Replayed';

/** The key of an Idempotency-Key header value, or a 400 when it is malformed. */
export function parseIdempotencyKey(value: string): string {
  const key = /^"(.*)"$/.exec(value)?.[1] ?? value;
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw badRequest('Idempotency-Key must be 1-255 visible ASCII characters', { header: 'Idempotency-Key' });
  }
  return key;
}

/** What makes two requests "the same": method, path and query, and the body's bytes. */
export function requestFingerprint(method: string, pathAndQuery: string, body: Buffer): string {
  return sha256(`${method}\n${pathAndQuery}\n${createHash('sha256').update(body).digest('hex')}`);
}

type Claim = { owned: true; id: number } | { owned: false; state: 'in_flight' | 'done'; sameRequest: boolean; row: StoredResponse; lockedUntil: Date | null };
interface StoredResponse {
  responseStatus: number | null;
  responseHeaders: unknown;
  responseBody: string | null;
}

/** Takes the key for this request, or reports who holds it. */
async function claim(db: Executor, credential: string, key: string, fingerprint: string): Promise<Claim> {
  const owned = await sql<{ id: number }>`
    INSERT INTO idempotency_keys (credential, key, fingerprint, locked_until)
    VALUES (${credential}, ${key}, ${fingerprint}, now() + make_interval(mins => ${IN_FLIGHT_LOCK_MINUTES}))
    ON CONFLICT (credential, key) DO UPDATE SET
      fingerprint = EXCLUDED.fingerprint, state = 'in_flight', locked_until = EXCLUDED.locked_until,
      response_status = NULL, response_headers = NULL, response_body = NULL, created_at = now()
    WHERE idempotency_keys.created_at < now() - make_interval(hours => ${IDEMPOTENCY_WINDOW_HOURS})
       OR (idempotency_keys.state = 'in_flight' AND idempotency_keys.locked_until < now()
           AND idempotency_keys.fingerprint = EXCLUDED.fingerprint)
    RETURNING id`.execute(db);
  if (owned.rows[0]) return { owned: true, id: owned.rows[0].id };
  const row = await db
    .selectFrom('idempotencyKeys')
    .select(['state', 'fingerprint', 'lockedUntil', 'responseStatus', 'responseHeaders', 'responseBody'])
    .where('credential', '=', credential)
    .where('key', '=', key)
    .executeTakeFirst();
  // Purged between the two statements: take it now.
  if (!row) return claim(db, credential, key, fingerprint);
  return { owned: false, state: row.state, sameRequest: row.fingerprint === fingerprint, row, lockedUntil: row.lockedUntil };
}

/** Keeps a finished request's response under its key (a 5xx releases the key instead). */
async function settle(db: Executor, id: number, res: Response): Promise<void> {
  if (res.status >= 500) {
    await db.deleteFrom('idempotencyKeys').where('id', '=', id).execute();
    return;
  }
  const headers = Object.fromEntries(KEPT_HEADERS.flatMap((h) => (res.headers.has(h) ? [[h, res.headers.get(h)!]] : [])));
  await db
    .updateTable('idempotencyKeys')
    .set({
      state: 'done',
      lockedUntil: null,
      responseStatus: res.status,
      responseHeaders: JSON.stringify(headers),
      responseBody: await res.clone().text(),
    })
    .where('id', '=', id)
    .execute();
}

/** The middleware (mounted after authentication: it needs the credential). */
export function idempotency(ctx: Pick<AppContext, 'database'>): MiddlewareHandler<AppEnv> {
  const { db } = ctx.database;
  return async (c, next) => {
    if (!METHODS.has(c.req.method)) return next();
    const header = c.req.header('idempotency-key');
    const auth = c.get('auth');
    if (header === undefined || !auth) return next();
    const key = parseIdempotencyKey(header);
    const credential = auth.kind === 'apiKey' ? `key:${auth.apiKeyId}` : `admin:${auth.adminUserId}`;
    const url = new URL(c.req.url);
    const fingerprint = requestFingerprint(c.req.method, `${url.pathname}${url.search}`, Buffer.from(await c.req.arrayBuffer()));

    const claimed = await claim(db, credential, key, fingerprint);
    if (!claimed.owned) {
      if (!claimed.sameRequest) {
        throw new AppError(422, 'Idempotency-Key was already used with a different request (method, path or body)', { header: 'Idempotency-Key' });
      }
      if (claimed.state === 'in_flight') {
        const wait = claimed.lockedUntil ? Math.max(1, Math.ceil((new Date(claimed.lockedUntil).getTime() - Date.now()) / 1000)) : 1;
        throw new AppError(409, 'A request with this Idempotency-Key is still in progress', { header: 'Idempotency-Key' }, { 'Retry-After': String(Math.min(wait, 5)) });
      }
      const stored = claimed.row;
      const headers = { ...(stored.responseHeaders as Record<string, string>), [REPLAYED_HEADER]: 'true' };
      return c.body(stored.responseBody ?? '', stored.responseStatus as 200, headers);
    }

    try {
      await next();
    } catch (err) {
      await db.deleteFrom('idempotencyKeys').where('id', '=', claimed.id).execute();
      throw err;
    }
    await settle(db, claimed.id, c.res);
  };
}

/** Deletes keys older than the window; returns how many. */
export async function purgeIdempotencyKeys(db: Executor): Promise<number> {
  const r = await db
    .deleteFrom('idempotencyKeys')
    .where('createdAt', '<', sql<Date>`now() - make_interval(hours => ${IDEMPOTENCY_WINDOW_HOURS})`)
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}
