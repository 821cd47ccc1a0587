/** Settings: the run-time key-value store (values are any JSON), read through src/settings.ts. */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { findStoredSetting, listStoredSettings, SETTING_COLUMNS, VALUE_TEXT } from '../db/catalog.ts';
import type { Setting } from '../db/types.ts';
import { jsonValueProblem } from '../domain/json-value.ts';
import { notFound } from '../errors.ts';
import { errors, isoRequired, jsonBody, jsonContent, PaginationQuery, setTotal, Timestamp } from './common.ts';
import { createRouter } from './router.ts';

/** Limits for a setting's value: configuration, not data. */
export const SETTING_VALUE_LIMITS = { maxDepth: 32, maxLength: 65_536 };

export const SETTING_KEY_PATTERN = /^[A-Za-z0-9._-]{1,255}$/;

/**
 * Keys whose last dot-separated segment names a credential: their values are stored as given (the
 * service reads them back) but every API response shows MASK instead.
 */
const SECRET_KEY = /(?:^|\.)[A-Za-z0-9_-]*(?:secret|password|passwd|token|apikey|api_key|accesskey|secretkey|privatekey|private_key)$/i;
export const MASK = '********';
export const isSecretSettingKey = (key: string) => SECRET_KEY.test(key);

export const SettingSchema = z
  .object({
    id: z.number().int(),
    key: z.string(),
    value: z.unknown().openapi({ description: `Any JSON value; "${MASK}" for secret keys (…secret, …password, …token, …apiKey)` }),
    description: z.string().nullable(),
    updatedAt: Timestamp,
  })
  .openapi('Setting');

const KeyParam = z.object({
  key: z
    .string()
    .regex(SETTING_KEY_PATTERN, 'must be 1-255 characters of A-Z a-z 0-9 . _ -')
    .openapi({ param: { name: 'key', in: 'path' }, example: 's3.bucket' }),
});

const PutSetting = z
  .strictObject({
    value: z
      .unknown()
      .refine((v) => v !== undefined, 'is required (any JSON value, null included)')
      .superRefine((v, ctx) => {
        if (v === undefined) return;
        const problem = jsonValueProblem(v, SETTING_VALUE_LIMITS);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .openapi({ description: 'Setting value (any valid JSON)', example: 'my-annotation-bucket' }),
    description: z
      .string()
      .max(500)
      .refine((s) => !s.includes('\u0000'), 'must not contain U+0000')
      .nullable()
      .optional()
      .openapi({ description: 'Description (max 500 chars); omitted keeps the current one' }),
  })
  .openapi('PutSetting');

/** Columns read (src/db/catalog.ts): the value as JSON text. */
const COLUMNS = SETTING_COLUMNS;
type SettingRow = Pick<Setting, (typeof COLUMNS)[number]> & { valueText: string };

export const toSetting = (r: SettingRow) => ({
  id: r.id,
  key: r.key,
  value: isSecretSettingKey(r.key) && r.valueText !== 'null' ? MASK : (JSON.parse(r.valueText) as unknown),
  description: r.description,
  updatedAt: isoRequired(r.updatedAt),
});

export function settingRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/settings',
      tags: ['settings'],
      summary: 'List settings ordered by key, bytewise (bare array; total in X-Total-Count)',
      request: { query: PaginationQuery },
      responses: { 200: jsonContent(z.array(SettingSchema), 'Settings'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const { rows, total } = await listStoredSettings(db, c.req.valid('query'));
      setTotal(c, total);
      return c.json(rows.map(toSetting), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/settings/{key}',
      tags: ['settings'],
      summary: 'Get a setting',
      request: { params: KeyParam },
      responses: { 200: jsonContent(SettingSchema, 'Setting'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      const row = await findStoredSetting(db, key);
      if (!row) throw notFound('Setting');
      return c.json(toSetting(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/settings/{key}',
      tags: ['settings'],
      summary: 'Create or update a setting',
      request: { params: KeyParam, ...jsonBody(PutSetting) },
      responses: { 200: jsonContent(SettingSchema, 'Created or updated'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      const { value, description } = c.req.valid('json');
      const now = new Date();
      const row = await db
        .insertInto('settings')
        .values({ key, value: JSON.stringify(value), description: description ?? null, updatedAt: now })
        .onConflict((oc) =>
          oc.column('key').doUpdateSet((eb) => ({
            value: eb.ref('excluded.value'),
            // An omitted description keeps the current one; null clears it.
            ...(description === undefined ? {} : { description: eb.ref('excluded.description') }),
            updatedAt: now,
          })),
        )
        .returning([...COLUMNS, VALUE_TEXT])
        .executeTakeFirstOrThrow();
      ctx.wake(`setting ${key}`);
      return c.json(toSetting(row), 200);
    },
  );

  return app;
}
