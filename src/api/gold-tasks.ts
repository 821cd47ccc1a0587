/** Gold tasks: known-good labeled images mixed into batches to score annotators. */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { EXPECTED_LABELS_TEXT, findGoldTaskRow, GOLD_TASK_COLUMNS, listGoldTasks } from '../db/catalog.ts';
import type { Executor } from '../db/index.ts';
import type { GoldTask } from '../db/types.ts';
import { jsonValueProblem } from '../domain/json-value.ts';
import { checkExpectedLabels, checkLabelingConfig, type ExpectedLabel } from '../domain/labeling-config.ts';
import { badRequest, notFound } from '../errors.ts';
import {
  errors,
  idField,
  IdParam,
  idString,
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

const DIFFICULTIES = ['easy', 'medium', 'hard'] as const;

/** Limits for expectedLabels: generous for brush masks and polygons, bounded for the database. */
export const EXPECTED_LABELS_LIMITS = { maxDepth: 32, maxLength: 5_000_000 };

const noNul = (s: string) => !s.includes('\u0000');

/** One Label Studio result: {from_name, to_name, type, value} (relations: {type: "relation", from_id, to_id}). */
const LabelStudioResult = z
  .looseObject({
    type: z.string().min(1).openapi({ example: 'choices' }),
    from_name: z.string().min(1).optional().openapi({ example: 'label' }),
    to_name: z.string().min(1).optional().openapi({ example: 'image' }),
    value: z.record(z.string(), z.unknown()).optional().openapi({ example: { choices: ['cat'] } }),
  })
  .superRefine((r, ctx) => {
    const required = r.type === 'relation' ? (['from_id', 'to_id'] as const) : (['from_name', 'to_name', 'value'] as const);
    for (const key of required) {
      if ((r as Record<string, unknown>)[key] === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message:
            r.type === 'relation'
              ? `is required (a relation result needs from_id and to_id)`
              : `is required (a Label Studio result needs from_name, to_name, type and value)`,
        });
      }
    }
  })
  .openapi('LabelStudioResult');

const ExpectedLabels = z
  .array(LabelStudioResult)
  .min(1)
  .superRefine((labels, ctx) => {
    const problem = jsonValueProblem(labels, EXPECTED_LABELS_LIMITS);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .openapi({ description: 'Expected Label Studio annotation result (array of result objects, at least one)' });

export const GoldTaskSchema = z
  .object({
    id: z.number().int(),
    name: z.string().nullable(),
    s3ImageKey: z.string(),
    expectedLabels: z.array(z.record(z.string(), z.unknown())),
    labelingConfigId: z.number().int(),
    category: z.string().nullable(),
    difficulty: z.enum(DIFFICULTIES).nullable(),
    createdAt: Timestamp,
  })
  .openapi('GoldTask');

const GoldTaskFields = {
  name: z.string().max(255).refine(noNul, 'must not contain U+0000').nullable().optional(),
  s3ImageKey: z
    .string()
    .min(1)
    .max(1024)
    .regex(/\S/, 'must not be blank')
    .refine(noNul, 'must not contain U+0000')
    .openapi({ example: 'gold/cat_001.jpg' }),
  expectedLabels: ExpectedLabels,
  labelingConfigId: idField,
  category: z.string().max(100).refine(noNul, 'must not contain U+0000').nullable().optional(),
  difficulty: z.enum(DIFFICULTIES).nullable().optional(),
};
const CreateGoldTask = z.strictObject(GoldTaskFields).openapi('CreateGoldTask');
const UpdateGoldTask = nonEmpty(
  z.strictObject({
    ...GoldTaskFields,
    s3ImageKey: GoldTaskFields.s3ImageKey.optional(),
    expectedLabels: GoldTaskFields.expectedLabels.optional(),
    labelingConfigId: GoldTaskFields.labelingConfigId.optional(),
  }),
).openapi('UpdateGoldTask');

const GoldTaskQuery = PaginationQuery.extend({
  labelingConfigId: idString.optional().openapi({ type: 'integer', description: 'Filter by labeling config' }),
  category: z.string().optional().openapi({ description: 'Filter by category (exact match)' }),
});

/** Columns read (src/db/catalog.ts): the labels as JSON text. */
const COLUMNS = GOLD_TASK_COLUMNS;
type GoldTaskRow = Pick<GoldTask, (typeof COLUMNS)[number]> & { expectedLabelsText: string };

const parseLabels = (r: GoldTaskRow) => JSON.parse(r.expectedLabelsText) as Record<string, unknown>[];

export const toGoldTask = (r: GoldTaskRow) => ({
  id: r.id,
  name: r.name,
  s3ImageKey: r.s3ImageKey,
  expectedLabels: parseLabels(r),
  labelingConfigId: r.labelingConfigId,
  category: r.category,
  difficulty: r.difficulty,
  createdAt: isoRequired(r.createdAt),
});

export async function findGoldTask(db: Executor, id: number): Promise<GoldTaskRow> {
  const row = await findGoldTaskRow(db, id);
  if (!row) throw notFound('Gold task');
  return row;
}

/**
 * Holds the labeling config (FOR SHARE: its XML cannot change and it cannot be deleted until the
 * transaction ends) and checks the expected labels against it. A missing config is a 400: it is a
 * field of the request, not the resource addressed.
 */
async function checkAgainstConfig(trx: Executor, labelingConfigId: number, labels: readonly ExpectedLabel[]) {
  const config = await trx
    .selectFrom('labelingConfigs')
    .select(['id', 'configXml'])
    .where('id', '=', labelingConfigId)
    .forShare()
    .executeTakeFirst();
  if (!config) {
    throw badRequest('Labeling config not found', [{ path: ['labelingConfigId'], message: `no labeling config has id ${labelingConfigId}` }]);
  }
  const parsed = checkLabelingConfig(config.configXml);
  // A stored config always passed this check; one written around the API is not checked against.
  if (!parsed.ok) return;
  const issues = checkExpectedLabels(parsed.config, labels);
  if (issues.length > 0) {
    throw badRequest(
      `expectedLabels do not match labeling config ${labelingConfigId}: ${issues[0]!.message}`,
      issues.map((i) => ({ path: ['expectedLabels', ...i.path], message: i.message })),
    );
  }
}

export function goldTaskRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/gold-tasks',
      tags: ['gold-tasks'],
      summary: 'List gold tasks (bare array; total in X-Total-Count)',
      request: { query: GoldTaskQuery },
      responses: { 200: jsonContent(z.array(GoldTaskSchema), 'Gold tasks'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const { limit, offset, labelingConfigId, category } = c.req.valid('query');
      const { rows, total } = await listGoldTasks(db, { labelingConfigId, category }, { limit, offset });
      setTotal(c, total);
      return c.json(rows.map(toGoldTask), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/gold-tasks',
      tags: ['gold-tasks'],
      summary: 'Create a gold task (400 when the labeling config does not exist or the labels do not fit it)',
      request: jsonBody(CreateGoldTask),
      responses: { 201: jsonContent(GoldTaskSchema, 'Created'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const { expectedLabels, ...body } = c.req.valid('json');
      const row = await db.transaction().execute(async (trx) => {
        await checkAgainstConfig(trx, body.labelingConfigId, expectedLabels);
        return trx
          .insertInto('goldTasks')
          .values({ ...body, expectedLabels: JSON.stringify(expectedLabels) })
          .returning([...COLUMNS, EXPECTED_LABELS_TEXT])
          .executeTakeFirstOrThrow();
      });
      return c.json(toGoldTask(row), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/gold-tasks/{id}',
      tags: ['gold-tasks'],
      summary: 'Get a gold task',
      request: { params: IdParam },
      responses: { 200: jsonContent(GoldTaskSchema, 'Gold task'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => c.json(toGoldTask(await findGoldTask(db, c.req.valid('param').id)), 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/gold-tasks/{id}',
      tags: ['gold-tasks'],
      summary: 'Update a gold task (400 when the labeling config does not exist or the labels do not fit it)',
      request: { params: IdParam, ...jsonBody(UpdateGoldTask) },
      responses: { 200: jsonContent(GoldTaskSchema, 'Updated'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { expectedLabels, ...body } = c.req.valid('json');
      const row = await db.transaction().execute(async (trx) => {
        const current = await trx
          .selectFrom('goldTasks')
          .select([...COLUMNS, EXPECTED_LABELS_TEXT])
          .where('id', '=', id)
          .forUpdate()
          .executeTakeFirst();
        if (!current) throw notFound('Gold task');
        if (expectedLabels !== undefined || body.labelingConfigId !== undefined) {
          await checkAgainstConfig(
            trx,
            body.labelingConfigId ?? current.labelingConfigId,
            expectedLabels ?? (parseLabels(current) as unknown as ExpectedLabel[]),
          );
        }
        return trx
          .updateTable('goldTasks')
          .set({
            ...body,
            ...(expectedLabels === undefined ? {} : { expectedLabels: JSON.stringify(expectedLabels) }),
            updatedAt: new Date(),
          })
          .where('id', '=', id)
          .returning([...COLUMNS, EXPECTED_LABELS_TEXT])
          .executeTakeFirstOrThrow();
      });
      return c.json(toGoldTask(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/gold-tasks/{id}',
      tags: ['gold-tasks'],
      summary: 'Delete a gold task (batches that used it keep their results)',
      request: { params: IdParam },
      responses: { 200: jsonContent(SuccessSchema, 'Deleted'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const deleted = await db.deleteFrom('goldTasks').where('id', '=', id).returning('id').executeTakeFirst();
      if (!deleted) throw notFound('Gold task');
      return c.json({ success: true as const }, 200);
    },
  );

  return app;
}
