/** Labeling configs: Label Studio XML interfaces that workflows and gold tasks use. */
import { createRoute, z } from '@hono/zod-openapi';
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import { findLabelingConfigWithUsage, listLabelingConfigs } from '../db/catalog.ts';
import type { Executor } from '../db/index.ts';
import type { LabelingConfig } from '../db/types.ts';
import { checkLabelingConfig, MAX_CONFIG_XML_LENGTH, OBJECT_TAGS, type ParsedLabelingConfig } from '../domain/labeling-config.ts';
import { badRequest, conflict, notFound } from '../errors.ts';
import {
  errors,
  IdParam,
  isoRequired,
  jsonBody,
  jsonContent,
  nonEmpty,
  PaginationQuery,
  setTotal,
  SuccessSchema,
  Timestamp,
} from './common.ts';
import { createRouter } from './router.ts';

export const LabelingConfigSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    description: z.string().nullable(),
    configXml: z.string(),
    createdAt: Timestamp,
    workflowCount: z.number().int().openapi({ description: 'Workflows that use this config' }),
    goldTaskCount: z.number().int().openapi({ description: 'Gold tasks that use this config' }),
    isLocked: z.boolean().openapi({ description: 'True while gold tasks reference the config: configXml cannot change' }),
  })
  .openapi('LabelingConfig');

/** PostgreSQL cannot store U+0000 in text. */
const noNul = (s: string) => !s.includes('\u0000');

const LabelingConfigFields = {
  name: z.string().trim().min(1).max(100).refine(noNul, 'must not contain U+0000'),
  description: z.string().max(500).refine(noNul, 'must not contain U+0000').nullable().optional(),
  configXml: z
    .string()
    .max(MAX_CONFIG_XML_LENGTH, `configXml: must be at most ${MAX_CONFIG_XML_LENGTH} characters`)
    .openapi({
      description:
        `Label Studio XML: well-formed, <View> root, at least one object tag (${OBJECT_TAGS.join(', ')}); ` +
        'no DOCTYPE/ENTITY declarations; unique names; every toName names a tag',
      example: '<View><Image name="image" value="$image"/><Choices name="label" toName="image"><Choice value="cat"/></Choices></View>',
    }),
};
const CreateLabelingConfig = z.strictObject(LabelingConfigFields).openapi('CreateLabelingConfig');
const UpdateLabelingConfig = nonEmpty(
  z.strictObject({
    ...LabelingConfigFields,
    name: LabelingConfigFields.name.optional(),
    configXml: LabelingConfigFields.configXml.optional(),
  }),
).openapi('UpdateLabelingConfig');

type LabelingConfigRow = LabelingConfig & { workflowCount: number; goldTaskCount: number };

export const toLabelingConfig = (r: LabelingConfigRow) => ({
  id: r.id,
  name: r.name,
  description: r.description,
  configXml: r.configXml,
  createdAt: isoRequired(r.createdAt),
  workflowCount: r.workflowCount,
  goldTaskCount: r.goldTaskCount,
  isLocked: r.goldTaskCount > 0,
});

/** Validates configXml for the API: a 400 that says what is wrong, and where. */
export function parseConfigXml(xml: string): ParsedLabelingConfig {
  const check = checkLabelingConfig(xml);
  if (check.ok) return check.config;
  const { message, line, column } = check.error;
  const detail = line === undefined ? { path: ['configXml'], message } : { path: ['configXml'], message, line, column };
  throw badRequest(`configXml: ${message}${line === undefined ? '' : ` (line ${line}, column ${column})`}`, [detail]);
}

export async function findLabelingConfig(db: Executor, id: number): Promise<LabelingConfigRow> {
  const row = await findLabelingConfigWithUsage(db, id);
  if (!row) throw notFound('Labeling config');
  return row;
}

/** Locks a config row against concurrent edits and deletion for the rest of the transaction. */
export async function lockLabelingConfig(trx: Executor, id: number, mode: 'update' | 'share') {
  const q = trx.selectFrom('labelingConfigs').selectAll().where('id', '=', id);
  const row = await (mode === 'update' ? q.forUpdate() : q.forShare()).executeTakeFirst();
  if (!row) throw notFound('Labeling config');
  return row;
}

export function labelingConfigRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/labeling-configs',
      tags: ['labeling-configs'],
      summary: 'List labeling configs (bare array; total in X-Total-Count)',
      request: { query: PaginationQuery },
      responses: { 200: jsonContent(z.array(LabelingConfigSchema), 'Labeling configs'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const { rows, total } = await listLabelingConfigs(db, c.req.valid('query'));
      setTotal(c, total);
      return c.json(rows.map(toLabelingConfig), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/labeling-configs',
      tags: ['labeling-configs'],
      summary: 'Create a labeling config (400 for invalid XML)',
      request: jsonBody(CreateLabelingConfig),
      responses: { 201: jsonContent(LabelingConfigSchema, 'Created'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const body = c.req.valid('json');
      parseConfigXml(body.configXml);
      const row = await db.insertInto('labelingConfigs').values(body).returningAll().executeTakeFirstOrThrow();
      return c.json(toLabelingConfig({ ...row, workflowCount: 0, goldTaskCount: 0 }), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/labeling-configs/{id}',
      tags: ['labeling-configs'],
      summary: 'Get a labeling config with its usage counts',
      request: { params: IdParam },
      responses: { 200: jsonContent(LabelingConfigSchema, 'Labeling config'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => c.json(toLabelingConfig(await findLabelingConfig(db, c.req.valid('param').id)), 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/labeling-configs/{id}',
      tags: ['labeling-configs'],
      summary: 'Update a labeling config (409 when configXml changes while gold tasks reference it)',
      request: { params: IdParam, ...jsonBody(UpdateLabelingConfig) },
      responses: {
        200: jsonContent(LabelingConfigSchema, 'Updated'),
        400: errors[400],
        401: errors[401],
        404: errors[404],
        409: errors[409],
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const body = c.req.valid('json');
      if (body.configXml !== undefined) parseConfigXml(body.configXml);
      const row = await db.transaction().execute(async (trx) => {
        const current = await lockLabelingConfig(trx, id, 'update');
        if (body.configXml !== undefined && body.configXml !== current.configXml) {
          const { n } = await trx
            .selectFrom('goldTasks')
            .select(sql<number>`count(*)::int`.as('n'))
            .where('labelingConfigId', '=', id)
            .executeTakeFirstOrThrow();
          if (n > 0) {
            throw conflict('Cannot update configXml: gold tasks reference this labeling config', { goldTaskCount: n });
          }
        }
        await trx
          .updateTable('labelingConfigs')
          .set({ ...body, updatedAt: new Date() })
          .where('id', '=', id)
          .execute();
        return findLabelingConfig(trx, id);
      });
      return c.json(toLabelingConfig(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/labeling-configs/{id}',
      tags: ['labeling-configs'],
      summary: 'Delete a labeling config (409 while workflows or gold tasks reference it)',
      request: { params: IdParam },
      responses: { 200: jsonContent(SuccessSchema, 'Deleted'), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await db.transaction().execute(async (trx) => {
        await lockLabelingConfig(trx, id, 'update');
        const { workflowCount, goldTaskCount } = await findLabelingConfig(trx, id);
        if (workflowCount > 0 || goldTaskCount > 0) {
          throw conflict('Cannot delete: labeling config is referenced by workflows or gold tasks', { workflowCount, goldTaskCount });
        }
        await trx.deleteFrom('labelingConfigs').where('id', '=', id).execute();
      });
      return c.json({ success: true as const }, 200);
    },
  );

  return app;
}
