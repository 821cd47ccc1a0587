/** API keys (admin scope): create (the secret is in that response only), list, read, revoke. */
import { createRoute, z } from '@hono/zod-openapi';
import { sql } from 'kysely';
import { API_KEY_SCOPES, generateApiKey } from '../auth/api-keys.ts';
import type { AppContext } from '../context.ts';
import type { Executor } from '../db/index.ts';
import type { ApiKeysTable } from '../db/types.ts';
import { badRequest, notFound } from '../errors.ts';
import type { Selectable } from 'kysely';
import { errors, IdParam, iso, isoRequired, jsonBody, jsonContent, PaginationQuery, setTotal, SuccessSchema, Timestamp } from './common.ts';
import { createRouter } from './router.ts';

const Scope = z.enum(API_KEY_SCOPES).openapi({ description: 'read: every GET; write: + changes; admin: + keys, webhooks, settings, passwords' });

export const ApiKeySchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    prefix: z.string().openapi({ example: 'lf_Zx81Qp0a', description: 'The first characters of the key' }),
    scopes: z.array(Scope),
    status: z.enum(['active', 'expired', 'revoked']),
    expiresAt: Timestamp.nullable(),
    revokedAt: Timestamp.nullable(),
    lastUsedAt: Timestamp.nullable().openapi({ description: 'Recorded at most once a minute' }),
    createdBy: z.number().int().openapi({ description: 'The admin who created it; the key acts in their name' }),
    createdAt: Timestamp,
  })
  .openapi('ApiKey');

const CreatedApiKey = ApiKeySchema.extend({
  key: z.string().openapi({ description: 'The secret: shown in this response only', example: 'lf_Zx81Qp0a…' }),
}).openapi('CreatedApiKey');

const CreateApiKey = z
  .strictObject({
    name: z.string().trim().min(1).max(255),
    scopes: z
      .array(Scope)
      .min(1)
      .max(3)
      .refine((s) => new Set(s).size === s.length, 'must not repeat a scope'),
    expiresAt: z.iso.datetime({ offset: true }).nullable().optional().openapi({ description: 'When the key stops working (none: never)' }),
  })
  .openapi('CreateApiKey');

type ApiKeyRow = Selectable<ApiKeysTable>;

export const toApiKey = (r: ApiKeyRow) => ({
  id: r.id,
  name: r.name,
  prefix: r.prefix,
  scopes: r.scopes,
  status: r.revokedAt ? ('revoked' as const) : r.expiresAt && r.expiresAt.getTime() <= Date.now() ? ('expired' as const) : ('active' as const),
  expiresAt: iso(r.expiresAt),
  revokedAt: iso(r.revokedAt),
  lastUsedAt: iso(r.lastUsedAt),
  createdBy: r.createdBy,
  createdAt: isoRequired(r.createdAt),
});

async function findApiKey(db: Executor, id: number) {
  const row = await db.selectFrom('apiKeys').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound('API key');
  return row;
}

export function apiKeyRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api-keys',
      tags: ['api-keys'],
      summary: 'List API keys, revoked and expired ones included (bare array; total in X-Total-Count)',
      request: { query: PaginationQuery },
      responses: { 200: jsonContent(z.array(ApiKeySchema), 'API keys'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const { limit, offset } = c.req.valid('query');
      const [rows, total] = await Promise.all([
        db.selectFrom('apiKeys').selectAll().orderBy('id').limit(limit).offset(offset).execute(),
        db.selectFrom('apiKeys').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
      ]);
      setTotal(c, total.n);
      return c.json(rows.map(toApiKey), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api-keys',
      tags: ['api-keys'],
      summary: 'Create an API key (the secret is returned once, in `key`)',
      request: jsonBody(CreateApiKey),
      responses: { 201: jsonContent(CreatedApiKey, 'Created'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const expiresAt = body.expiresAt ? new Date(body.expiresAt) : null;
      if (expiresAt && expiresAt.getTime() <= Date.now()) throw badRequest('expiresAt: must be in the future');
      const { key, prefix, keyHash } = generateApiKey();
      const row = await db
        .insertInto('apiKeys')
        .values({ name: body.name, prefix, keyHash, scopes: sql`${body.scopes}::text[]` as never, expiresAt, createdBy: c.get('adminUserId') })
        .returningAll()
        .executeTakeFirstOrThrow();
      c.get('log').info({ apiKeyId: row.id, prefix, scopes: row.scopes }, 'API key created');
      return c.json({ ...toApiKey(row), key }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api-keys/{id}',
      tags: ['api-keys'],
      summary: 'Get an API key (never its secret)',
      request: { params: IdParam },
      responses: { 200: jsonContent(ApiKeySchema, 'API key'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => c.json(toApiKey(await findApiKey(db, c.req.valid('param').id)), 200),
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api-keys/{id}',
      tags: ['api-keys'],
      summary: 'Revoke an API key: refused (401) from the next request on; revoking again changes nothing',
      request: { params: IdParam },
      responses: { 200: jsonContent(SuccessSchema, 'Revoked'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await findApiKey(db, id);
      await db.updateTable('apiKeys').set({ revokedAt: sql<Date>`now()`, updatedAt: sql<Date>`now()` }).where('id', '=', id).where('revokedAt', 'is', null).execute();
      c.get('log').info({ apiKeyId: id }, 'API key revoked');
      return c.json({ success: true as const }, 200);
    },
  );

  return app;
}
