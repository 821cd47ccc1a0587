/**
 * API keys: `Authorization: Bearer lf_…` opens every route the session cookie opens, within the
 * key's scopes. The key is 32 random bytes (base64url) after `lf_`; only its sha256 is stored,
 * with its first 11 characters as a prefix to tell keys apart. A request with an unknown, expired
 * or revoked key is a 401; a route outside the key's scopes is a 403.
 *
 * Scopes (README "Using LabelFleet from a pipeline"): `read` opens every GET; `write` adds the
 * changes an operator makes (create, update, delete, start, stop, assign, reconcile); `admin` adds
 * what hands out credentials or changes the service itself (API keys, webhook subscriptions,
 * settings, annotator passwords). Each scope includes the ones before it. ROUTE_SCOPES names the
 * scope of every route, in one table.
 */
import type { Context } from 'hono';
import { matchedRoutes } from 'hono/route';
import { sql } from 'kysely';
import { randomToken, sha256 } from '../crypto.ts';
import type { Executor } from '../db/index.ts';
import type { ApiKeyScope } from '../db/types.ts';
import { AppError } from '../errors.ts';

export const API_KEY_SCOPES = ['read', 'write', 'admin'] as const satisfies readonly ApiKeyScope[];
export const API_KEY_PREFIX = 'lf_';
/** Characters of a key shown in responses (`lf_` and 8 more). */
export const SHOWN_PREFIX_LENGTH = 11;
const KEY_PATTERN = /^lf_[A-Za-z0-9_-]{43}$/;

/** The scope each route needs ('METHOD /path' as Hono registers it). Public routes are not listed. */
export const ROUTE_SCOPES: Record<string, ApiKeyScope> = {
  'GET /api/annotators': 'read',
  'POST /api/annotators': 'write',
  'POST /api/annotators/bulk': 'write',
  'DELETE /api/annotators/bulk': 'write',
  'GET /api/annotators/:id': 'read',
  'PUT /api/annotators/:id': 'write',
  'DELETE /api/annotators/:id': 'write',
  'POST /api/annotators/:id/start': 'write',
  'POST /api/annotators/:id/stop': 'write',
  'GET /api/annotators/:id/status': 'read',
  'GET /api/annotators/:id/progress': 'read',
  'GET /api/changes': 'read',
  'POST /api/annotators/:id/password': 'admin',
  'GET /api/assignments': 'read',
  'GET /api/assignments/:id': 'read',
  'DELETE /api/assignments/:id': 'write',
  'GET /api/events': 'read',
  'GET /api/gold-tasks': 'read',
  'POST /api/gold-tasks': 'write',
  'GET /api/gold-tasks/:id': 'read',
  'PUT /api/gold-tasks/:id': 'write',
  'DELETE /api/gold-tasks/:id': 'write',
  'GET /api/labeling-configs': 'read',
  'POST /api/labeling-configs': 'write',
  'GET /api/labeling-configs/:id': 'read',
  'PUT /api/labeling-configs/:id': 'write',
  'DELETE /api/labeling-configs/:id': 'write',
  'GET /api/monitoring': 'read',
  'GET /api/monitoring/annotator/:id': 'read',
  'GET /api/monitoring/throughput': 'read',
  'GET /api/quality': 'read',
  'POST /api/reconcile': 'write',
  'GET /api/rejections': 'read',
  'GET /api/rejections/:id': 'read',
  'GET /api/roles': 'read',
  'POST /api/roles': 'write',
  'GET /api/roles/:id': 'read',
  'PUT /api/roles/:id': 'write',
  'DELETE /api/roles/:id': 'write',
  'GET /api/settings': 'read',
  'GET /api/settings/:key': 'read',
  'PUT /api/settings/:key': 'admin',
  'GET /api/workflows': 'read',
  'POST /api/workflows': 'write',
  'POST /api/workflows/bulk': 'write',
  'GET /api/workflows/graph': 'read',
  'GET /api/workflows/:id': 'read',
  'GET /api/workflows/:id/agreement': 'read',
  'PUT /api/workflows/:id': 'write',
  'DELETE /api/workflows/:id': 'write',
  'POST /api/workflows/:id/assign': 'write',
  'GET /api/workflows/:id/export': 'read',
  'GET /api/api-keys': 'admin',
  'POST /api/api-keys': 'admin',
  'GET /api/api-keys/:id': 'admin',
  'DELETE /api/api-keys/:id': 'admin',
  'GET /api/webhook-subscriptions': 'admin',
  'POST /api/webhook-subscriptions': 'admin',
  'GET /api/webhook-subscriptions/:id': 'admin',
  'PUT /api/webhook-subscriptions/:id': 'admin',
  'DELETE /api/webhook-subscriptions/:id': 'admin',
  'GET /api/webhook-subscriptions/:id/deliveries': 'admin',
  'GET /api/webhook-subscriptions/:id/deliveries/:deliveryId': 'admin',
  'POST /api/webhook-subscriptions/:id/deliveries/:deliveryId/redeliver': 'admin',
};

/** Whether scopes `granted` allow `required` (each scope includes the ones before it). */
export function allows(granted: readonly ApiKeyScope[], required: ApiKeyScope): boolean {
  const rank = (s: ApiKeyScope) => API_KEY_SCOPES.indexOf(s);
  return granted.some((s) => rank(s) >= rank(required));
}

/**
 * The scope the request's route needs; null when no route matches (it will answer 404/405). A
 * route missing from ROUTE_SCOPES needs admin: new routes are closed to lesser keys until listed.
 */
export function requiredScope(c: Context): ApiKeyScope | null {
  // The first non-middleware route matched is the one that answers.
  const route = matchedRoutes(c).find((r) => r.method !== 'ALL');
  return route ? (ROUTE_SCOPES[`${route.method} ${route.path}`] ?? 'admin') : null;
}

/** How a request was authenticated (context variable `auth`; issue 9's CSRF rule applies to sessions only). */
export type RequestAuth =
  | { kind: 'session'; adminUserId: number }
  | { kind: 'apiKey'; apiKeyId: number; scopes: ApiKeyScope[]; adminUserId: number };

/** A new key: the secret (shown once), its displayed prefix and the hash that is stored. */
export function generateApiKey(): { key: string; prefix: string; keyHash: string } {
  const key = `${API_KEY_PREFIX}${randomToken(32)}`;
  return { key, prefix: key.slice(0, SHOWN_PREFIX_LENGTH), keyHash: sha256(key) };
}

/** The bearer token of an `Authorization: Bearer <token>` header, or null when there is none. */
export function bearerToken(c: Context): string | null {
  const header = c.req.header('authorization');
  const m = header ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
  return m ? m[1]! : null;
}

const invalidKey = (why: string) =>
  new AppError(401, `Unauthorized: ${why}`, undefined, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });

/**
 * Finds the key a bearer token names and records its use (at most once a minute per key).
 * Throws 401 when the token is not a key we know, or the key expired or was revoked.
 */
export async function authenticateApiKey(db: Executor, token: string): Promise<{ id: number; scopes: ApiKeyScope[]; createdBy: number }> {
  if (!KEY_PATTERN.test(token)) throw invalidKey('unknown API key');
  const row = await db
    .selectFrom('apiKeys')
    .select(['id', 'scopes', 'createdBy', 'revokedAt', sql<boolean>`expires_at IS NOT NULL AND expires_at <= now()`.as('expired')])
    .where('keyHash', '=', sha256(token))
    .executeTakeFirst();
  if (!row) throw invalidKey('unknown API key');
  if (row.revokedAt) throw invalidKey('API key revoked');
  if (row.expired) throw invalidKey('API key expired');
  await db
    .updateTable('apiKeys')
    .set({ lastUsedAt: sql<Date>`now()` })
    .where('id', '=', row.id)
    .where((eb) => eb.or([eb('lastUsedAt', 'is', null), eb('lastUsedAt', '<', sql<Date>`now() - interval '1 minute'`)]))
    .execute();
  return { id: row.id, scopes: row.scopes, createdBy: row.createdBy };
}

/** Throws 403 when the key's scopes do not include what the route needs. */
export function checkScope(c: Context, scopes: readonly ApiKeyScope[]): void {
  const required = requiredScope(c);
  if (required && !allows(scopes, required)) {
    throw new AppError(403, `Forbidden: this API key lacks the ${required} scope`, { required, granted: scopes });
  }
}
