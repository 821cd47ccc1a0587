/**
 * Workflows: how data flows to annotators (S3 source, batch size, gold rate), chained through
 * previousWorkflowId and with optional rejection routing. The chain rules live in
 * `domain/workflow-graph.ts`; POST /workflows/{id}/assign lives in its own file.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import { currentGraph } from '../db/graph-stats.ts';
import type { Executor } from '../db/index.ts';
import {
  findWorkflow,
  listWorkflows,
  selectWorkflows,
  workflowAncestors,
  workflowLineage,
  workflowUsage,
  type WorkflowRow,
} from '../db/workflows.ts';
import {
  findChainCycle,
  traceChain,
  workflowRuleIssues,
  type RejectionMode,
} from '../domain/workflow-graph.ts';
import { badRequest, conflict, notFound } from '../errors.ts';
import {
  errors,
  idField,
  IdParam,
  idString,
  isoRequired,
  jsonBody,
  jsonContent,
  jsonText,
  MAX_INT,
  nonEmpty,
  PaginationQuery,
  setTotal,
  SuccessSchema,
  Timestamp,
} from './common.ts';
import { createRouter } from './router.ts';
import { workflowAgreement } from '../workflows/consensus.ts';

export const MAX_BULK_WORKFLOWS = 50;
const REJECTION_MODES = ['none', 'archive', 'route_to_workflow'] as const;

// ---------------------------------------------------------------------------------------------
// Schemas

export const WorkflowSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    roleId: z.number().int().nullable(),
    labelingConfigId: z.number().int().nullable(),
    previousWorkflowId: z.number().int().nullable(),
    s3SourcePath: z.string(),
    s3ExportPath: z.string(),
    imagesPerProject: z.number().int(),
    maxProjects: z.number().int().nullable(),
    estimatedTimeMinutes: z.number().int().nullable(),
    autoAssign: z.boolean(),
    goldStandardRate: z.number(),
    shuffleImages: z.boolean(),
    isActive: z.boolean(),
    totalImagesAvailable: z.number().int(),
    totalImagesAssigned: z.number().int(),
    rejectionMode: z.enum(REJECTION_MODES),
    rejectionArchiveBucket: z.string().nullable(),
    rejectionRouteWorkflowId: z.number().int().nullable(),
    rejectionReturnToOriginal: z.boolean(),
    rejectionFlagAnnotator: z.boolean(),
    maxReworkIterations: z.number().int().nullable(),
    overlap: z.number().int().openapi({ description: 'Distinct annotators who label each item (1: one, as before)' }),
    consensusThreshold: z
      .number()
      .nullable()
      .openapi({ description: 'Overlap: minimum item agreement (0..1) to accept the consensus; below it the item is adjudicated' }),
    adjudicationWorkflowId: z
      .number()
      .int()
      .nullable()
      .openapi({ description: 'Overlap: the workflow that adjudicates items below consensusThreshold' }),
    expiryHours: z
      .number()
      .int()
      .nullable()
      .openapi({ description: 'A batch untouched by its annotator this many hours is reclaimed (cancelled, images released); null: never' }),
    createdAt: Timestamp,
    role: z.object({ id: z.number().int(), name: z.string(), color: z.string().nullable() }).nullable(),
    labelingConfig: z.object({ id: z.number().int(), name: z.string() }).nullable(),
    catalogSkippedKeys: z
      .object({
        count: z.number().int(),
        examples: z.array(z.object({ key: z.string(), problem: z.enum(['dot_segment', 'control_character']) })),
      })
      .openapi({
        description:
          'S3 keys under s3SourcePath that are not queued because a presigned URL cannot address them byte-for-byte ' +
          '(`dot_segment`: a "." or ".." path segment; `control_character`): counted by the last full listing plus ' +
          'later incremental ones, up to 10 examples. 0 and [] for chained workflows and before the first listing.',
      }),
  })
  .openapi('Workflow');

const ChainEntrySchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    previousWorkflowId: z.number().int().nullable(),
    isActive: z.boolean(),
    depth: z.number().int().openapi({ description: 'Distance from the origin (0)' }),
    relation: z.enum(['ancestor', 'self', 'descendant']),
    isTerminal: z.boolean().openapi({ description: 'No workflow names this one as its previous' }),
  })
  .openapi('WorkflowChainEntry');

const WorkflowWithChainSchema = WorkflowSchema.extend({
  chain: z.array(ChainEntrySchema).openapi({
    description:
      'Origin → this workflow → every downstream workflow (breadth-first, siblings by id). ' +
      'Branches are told apart by previousWorkflowId; other branches off an ancestor are not included.',
  }),
}).openapi('WorkflowWithChain');

const AgreementSchema = z
  .object({
    workflowId: z.number().int(),
    overlap: z.number().int(),
    itemsScored: z.number().int().openapi({ description: 'Finished items with two or more answers' }),
    meanAgreement: z.number().nullable().openapi({ description: 'Mean item agreement (0..1) over the items scored' }),
    controls: z.array(
      z.object({
        fromName: z.string(),
        type: z.string(),
        kind: z.string(),
        itemsScored: z.number().int(),
        meanAgreement: z.number().nullable(),
        alpha: z.object({
          value: z.number().nullable(),
          metric: z.enum(['nominal', 'ordinal', 'interval', 'ratio', 'distance']),
          observedDisagreement: z.number(),
          expectedDisagreement: z.number(),
          pairableValues: z.number(),
        }),
        labels: z.array(
          z.object({
            label: z.string(),
            with: z.record(z.string(), z.number()).optional().openapi({ description: 'Coincidences with each label (the confusion between annotators)' }),
            alpha: z.number().nullable().optional(),
          }),
        ),
        pairs: z.array(
          z.object({ a: z.number().int(), b: z.number().int(), items: z.number().int(), agreement: z.number(), kappa: z.number().nullable() }),
        ),
      }),
    ),
    annotators: z.array(z.object({ annotatorId: z.number().int(), items: z.number().int(), agreementWithConsensus: z.number().nullable() })),
  })
  .openapi('WorkflowAgreement');

const GraphSchema = z
  .object({
    nodes: z.array(
      z.union([
        z.object({
          id: z.number().int(),
          name: z.string(),
          type: z.literal('workflow'),
          roleId: z.number().int().nullable(),
          roleName: z.string().nullable(),
          roleColor: z.string().nullable(),
          isActive: z.boolean(),
          rejectionMode: z.enum(REJECTION_MODES),
          stats: z.object({
            totalAssignments: z.number().int(),
            completedAssignments: z.number().int(),
            activeAnnotators: z.number().int(),
            rejectionRate: z.number(),
          }),
        }),
        z.object({ id: z.string(), name: z.literal('Archive'), type: z.literal('terminal') }),
      ]),
    ),
    edges: z.array(
      z.object({
        source: z.number().int(),
        target: z.union([z.number().int(), z.string()]),
        type: z.enum(['chain', 'rejection', 'adjudication']),
        label: z.enum(['accept', 'reject', 'adjudicate']),
      }),
    ),
  })
  .openapi('WorkflowGraph');

const S3_URL = /^s3:\/\//i;
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * A key prefix inside the configured bucket (setting s3.bucket): surrounding whitespace and
 * leading slashes are dropped; an s3:// URL is refused because the bucket is not chosen here.
 */
const s3Prefix = z
  .string()
  .trim()
  .refine((v) => !S3_URL.test(v), 'must be a key prefix inside the configured bucket (setting s3.bucket), not an s3:// URL')
  .transform((v) => v.replace(/^\/+/, ''))
  .pipe(
    z
      .string()
      .min(1, 'must not be empty')
      .max(1024)
      .refine((v) => !CONTROL_CHARS.test(v), 'must not contain control characters'),
  )
  .openapi({ type: 'string', minLength: 1, maxLength: 1024, example: 'images/classification/' });

/** `s3://bucket/prefix` (another bucket) or a key prefix in the configured bucket. */
const archiveLocation = z
  .string()
  .trim()
  .transform((v) => (S3_URL.test(v) ? `s3://${v.slice(5)}` : v.replace(/^\/+/, '')))
  .pipe(
    z
      .string()
      .min(1, 'must not be empty')
      .max(1024)
      .refine((v) => !CONTROL_CHARS.test(v), 'must not contain control characters')
      .refine(
        (v) => !v.startsWith('s3://') || BUCKET_NAME.test(v.slice(5).split('/')[0]!),
        'must be s3://<bucket>/<prefix> with a valid bucket name, or a key prefix in the configured bucket',
      ),
  )
  .openapi({ type: 'string', maxLength: 1024, example: 's3://rejected-bucket/archive/' });
/** The type override above would otherwise hide `null` from the document. */
const nullableArchiveLocation = archiveLocation.nullable().openapi({ type: ['string', 'null'] });

const fields = {
  name: z.string().trim().min(1).max(255),
  ref: idField.nullable(),
  imagesPerProject: z.number().int().min(1).max(10_000),
  maxProjects: z.number().int().min(1).max(MAX_INT).nullable(),
  estimatedTimeMinutes: z.number().int().min(0).max(MAX_INT).nullable(),
  goldStandardRate: z.number().min(0).max(1),
  rejectionMode: z.enum(REJECTION_MODES),
  maxReworkIterations: z.number().int().min(0).max(MAX_INT).nullable(),
  overlap: z.number().int().min(1).max(10),
  consensusThreshold: z.number().min(0).max(1).nullable(),
  /** 1 hour to 1 year (the column's CHECK). */
  expiryHours: z.number().int().min(1).max(8760).nullable(),
};

const CreateWorkflowFields = {
  name: fields.name,
  roleId: fields.ref.default(null),
  labelingConfigId: fields.ref.default(null),
  previousWorkflowId: fields.ref.default(null),
  s3SourcePath: s3Prefix,
  s3ExportPath: s3Prefix,
  imagesPerProject: fields.imagesPerProject.default(100),
  maxProjects: fields.maxProjects.default(null),
  estimatedTimeMinutes: fields.estimatedTimeMinutes.default(null),
  autoAssign: z.boolean().default(true),
  goldStandardRate: fields.goldStandardRate.default(0),
  shuffleImages: z.boolean().default(true),
  rejectionMode: fields.rejectionMode.default('none'),
  rejectionArchiveBucket: nullableArchiveLocation.default(null),
  rejectionRouteWorkflowId: fields.ref.default(null),
  rejectionReturnToOriginal: z.boolean().default(false),
  rejectionFlagAnnotator: z.boolean().default(true),
  maxReworkIterations: fields.maxReworkIterations.default(null),
  overlap: fields.overlap.default(1),
  consensusThreshold: fields.consensusThreshold.default(null),
  adjudicationWorkflowId: fields.ref.default(null),
  expiryHours: fields.expiryHours.default(null),
};
const CreateWorkflow = z.strictObject(CreateWorkflowFields).openapi('CreateWorkflow');
type CreateWorkflowInput = z.output<typeof CreateWorkflow>;

const UpdateWorkflow = nonEmpty(
  z.strictObject({
    name: fields.name.optional(),
    roleId: fields.ref.optional(),
    labelingConfigId: fields.ref.optional(),
    previousWorkflowId: fields.ref.optional(),
    s3SourcePath: s3Prefix.optional(),
    s3ExportPath: s3Prefix.optional(),
    imagesPerProject: fields.imagesPerProject.optional(),
    maxProjects: fields.maxProjects.optional(),
    estimatedTimeMinutes: fields.estimatedTimeMinutes.optional(),
    autoAssign: z.boolean().optional(),
    goldStandardRate: fields.goldStandardRate.optional(),
    shuffleImages: z.boolean().optional(),
    isActive: z.boolean().optional().openapi({ description: 'false pauses the workflow, true resumes it' }),
    rejectionMode: fields.rejectionMode.optional(),
    rejectionArchiveBucket: nullableArchiveLocation.optional(),
    rejectionRouteWorkflowId: fields.ref.optional(),
    rejectionReturnToOriginal: z.boolean().optional(),
    rejectionFlagAnnotator: z.boolean().optional(),
    maxReworkIterations: fields.maxReworkIterations.optional(),
    overlap: fields.overlap.optional(),
    consensusThreshold: fields.consensusThreshold.optional(),
    adjudicationWorkflowId: fields.ref.optional(),
    expiryHours: fields.expiryHours.optional(),
  }),
).openapi('UpdateWorkflow');
type UpdateWorkflowInput = z.output<typeof UpdateWorkflow>;

const BulkCreateWorkflows = z
  .strictObject({ workflows: z.array(CreateWorkflow).min(1).max(MAX_BULK_WORKFLOWS) })
  .openapi('BulkCreateWorkflows');

const ListQuery = PaginationQuery.extend({
  roleId: idString.optional().openapi({ type: 'integer', description: 'Only workflows for this role' }),
  labelingConfigId: idString.optional().openapi({ type: 'integer', description: 'Only workflows using this config' }),
  previousWorkflowId: idString
    .optional()
    .openapi({ type: 'integer', description: 'Only the workflows directly downstream of this one' }),
  isActive: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional()
    .openapi({ type: 'boolean', description: 'true: running workflows; false: paused ones' }),
});

// ---------------------------------------------------------------------------------------------
// Mapping

/** A workflow row as the API returns it. */
export const toWorkflow = (r: WorkflowRow) => ({
  id: r.id,
  name: r.name,
  roleId: r.roleId,
  labelingConfigId: r.labelingConfigId,
  previousWorkflowId: r.previousWorkflowId,
  s3SourcePath: r.s3SourcePath,
  s3ExportPath: r.s3ExportPath,
  imagesPerProject: r.imagesPerProject,
  maxProjects: r.maxProjects,
  estimatedTimeMinutes: r.estimatedTimeMinutes,
  autoAssign: r.autoAssign,
  goldStandardRate: r.goldStandardRate,
  shuffleImages: r.shuffleImages,
  isActive: r.isActive,
  totalImagesAvailable: r.totalImagesAvailable,
  totalImagesAssigned: r.totalImagesAssigned,
  rejectionMode: r.rejectionMode,
  rejectionArchiveBucket: r.rejectionArchiveBucket,
  rejectionRouteWorkflowId: r.rejectionRouteWorkflowId,
  rejectionReturnToOriginal: r.rejectionReturnToOriginal,
  rejectionFlagAnnotator: r.rejectionFlagAnnotator,
  maxReworkIterations: r.maxReworkIterations,
  overlap: r.overlap,
  consensusThreshold: r.consensusThreshold,
  adjudicationWorkflowId: r.adjudicationWorkflowId,
  expiryHours: r.expiryHours,
  createdAt: isoRequired(r.createdAt),
  role: r.roleId !== null && r.roleName !== null ? { id: r.roleId, name: r.roleName, color: r.roleColor } : null,
  labelingConfig:
    r.labelingConfigId !== null && r.labelingConfigName !== null
      ? { id: r.labelingConfigId, name: r.labelingConfigName }
      : null,
  catalogSkippedKeys: { count: r.skippedCount ?? 0, examples: r.skippedExamples ?? [] },
});

/** Where rejected items are archived when rejectionMode is 'archive' and no location is given. */
export const defaultArchiveLocation = (s3ExportPath: string) => `${s3ExportPath.replace(/\/+$/, '')}/rejected/`;

// ---------------------------------------------------------------------------------------------
// Validation against the database

type Path = (string | number)[];
interface Issue {
  code: 'custom';
  path: Path;
  message: string;
}

const pathText = (path: Path) =>
  path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');

/** A 400 whose message names the failing fields and whose details list every issue. */
function invalid(issues: Issue[]) {
  const shown = issues.slice(0, 3).map((i) => `${pathText(i.path)}: ${i.message}`);
  const more = issues.length > 3 ? `; and ${issues.length - 3} more` : '';
  return badRequest(`Validation failed: ${shown.join('; ')}${more}`, issues);
}

const REFERENCES = [
  { field: 'roleId', table: 'roles', what: 'role' },
  { field: 'labelingConfigId', table: 'labeling_configs', what: 'labeling config' },
  { field: 'previousWorkflowId', table: 'workflows', what: 'workflow' },
  { field: 'rejectionRouteWorkflowId', table: 'workflows', what: 'workflow' },
  { field: 'adjudicationWorkflowId', table: 'workflows', what: 'workflow' },
] as const;
type ReferenceField = (typeof REFERENCES)[number]['field'];

/** Every id the body names must exist (one query). Only fields present and non-null are checked. */
async function referenceIssues(db: Executor, body: Partial<Record<ReferenceField, number | null>>, path: Path) {
  const wanted = REFERENCES.filter((r) => typeof body[r.field] === 'number');
  if (wanted.length === 0) return [];
  const row = await db
    .selectNoFrom(
      wanted.map((r) =>
        sql<boolean>`EXISTS (SELECT 1 FROM ${sql.table(r.table)} WHERE id = ${body[r.field]!})`.as(r.field),
      ),
    )
    .executeTakeFirstOrThrow();
  const found = row as Record<string, boolean>;
  return wanted
    .filter((r) => !found[r.field])
    .map((r): Issue => ({ code: 'custom', path: [...path, r.field], message: `${r.what} ${body[r.field]} does not exist` }));
}

const ruleIssues = (
  w: { previousWorkflowId: number | null; rejectionMode: RejectionMode; rejectionRouteWorkflowId: number | null; adjudicationWorkflowId?: number | null; consensusThreshold?: number | null },
  id: number | null,
  path: Path,
): Issue[] => workflowRuleIssues(w, id).map((i) => ({ code: 'custom', path: [...path, i.field], message: i.message }));

/** Would `workflow.previousWorkflowId = previous` close a loop? Reads previous's ancestors. */
async function cycleIssue(db: Executor, id: number, previous: number): Promise<Issue | null> {
  const rows = await workflowAncestors(db, previous);
  const cycle = findChainCycle(new Map(rows.map((r) => [r.id, r.prev])), id, previous);
  if (!cycle) return null;
  return {
    code: 'custom',
    path: ['previousWorkflowId'],
    message: `workflow ${previous} is downstream of workflow ${id}, so the chain would become a cycle (${cycle.join(' → ')})`,
  };
}

/** The stored columns of a new workflow, with the archive location defaulted. */
function insertValues(body: CreateWorkflowInput) {
  return {
    ...body,
    rejectionArchiveBucket:
      body.rejectionMode === 'archive' && body.rejectionArchiveBucket === null
        ? defaultArchiveLocation(body.s3ExportPath)
        : body.rejectionArchiveBucket,
  };
}

async function createOne(trx: Executor, body: CreateWorkflowInput, path: Path): Promise<{ id: number } | Issue[]> {
  const issues = [...ruleIssues(body, null, path), ...(await referenceIssues(trx, body, path))];
  if (issues.length) return issues;
  return trx.insertInto('workflows').values(insertValues(body)).returning('id').executeTakeFirstOrThrow();
}

// ---------------------------------------------------------------------------------------------
// Routes

export function workflowRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/workflows',
      tags: ['workflows'],
      summary: 'List workflows (bare array; total in X-Total-Count)',
      request: { query: ListQuery },
      responses: { 200: jsonContent(z.array(WorkflowSchema), 'Workflows'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const { rows, total } = await listWorkflows(
        db,
        { roleId: q.roleId, labelingConfigId: q.labelingConfigId, previousWorkflowId: q.previousWorkflowId, isActive: q.isActive },
        q,
      );
      setTotal(c, total);
      return c.json(rows.map(toWorkflow), 200);
    },
  );

  // Registered before /workflows/{id} so that "graph" is never read as an id.
  app.openapi(
    createRoute({
      method: 'get',
      path: '/workflows/graph',
      tags: ['workflows'],
      summary: 'The workflow DAG: workflow and archive nodes, chain and rejection edges, per-node stats',
      description:
        'stats.activeAnnotators: distinct annotators with a pending or in_progress assignment in the workflow. ' +
        "stats.rejectionRate: rejections recorded by the workflow's reviewers ÷ tasks annotated in its assignments " +
        '(0 when none, at most 1, 4 decimals).',
      responses: { 200: jsonContent(GraphSchema, 'Graph'), 401: errors[401] },
    }),
    async (c) => jsonText(c, (await currentGraph(db, ctx.logger)).json),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/workflows/bulk',
      tags: ['workflows'],
      summary: `Create up to ${MAX_BULK_WORKFLOWS} workflows, all or nothing`,
      description:
        'Items are created in order in one transaction, so an item may name a workflow created by an earlier ' +
        'item as its previousWorkflowId or rejectionRouteWorkflowId. On any error nothing is created and ' +
        'the 400 details name each failing item by its index (path ["workflows", index, field]).',
      request: jsonBody(BulkCreateWorkflows),
      responses: {
        201: jsonContent(z.object({ created: z.number().int(), workflows: z.array(WorkflowSchema) }), 'Created'),
        400: errors[400],
        401: errors[401],
      },
    }),
    async (c) => {
      const { workflows } = c.req.valid('json');
      const rows = await db.transaction().execute(async (trx) => {
        const ids: number[] = [];
        const issues: Issue[] = [];
        for (const [index, body] of workflows.entries()) {
          const result = await createOne(trx, body, ['workflows', index]);
          if (Array.isArray(result)) issues.push(...result);
          else ids.push(result.id);
        }
        if (issues.length) throw invalid(issues);
        return selectWorkflows(trx).where('w.id', 'in', ids).orderBy('w.id').execute();
      });
      ctx.wake(`workflows ${rows.map((r) => r.id).join(', ')} created`);
      return c.json({ created: rows.length, workflows: rows.map(toWorkflow) }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/workflows',
      tags: ['workflows'],
      summary: 'Create a workflow',
      description:
        "Referenced ids must exist. rejectionMode 'route_to_workflow' needs rejectionRouteWorkflowId; " +
        "rejectionMode 'archive' without rejectionArchiveBucket archives under <s3ExportPath>/rejected/.",
      request: jsonBody(CreateWorkflow),
      responses: { 201: jsonContent(WorkflowSchema, 'Created'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const row = await db.transaction().execute(async (trx) => {
        const result = await createOne(trx, body, []);
        if (Array.isArray(result)) throw invalid(result);
        return findWorkflow(trx, result.id);
      });
      ctx.wake(`workflow ${row.id} created`);
      return c.json(toWorkflow(row), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/workflows/{id}',
      tags: ['workflows'],
      summary: 'Get a workflow with its chain traced from origin to terminal workflows',
      request: { params: IdParam },
      responses: {
        200: jsonContent(WorkflowWithChainSchema, 'Workflow'),
        400: errors[400],
        401: errors[401],
        404: errors[404],
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const row = await findWorkflow(db, id);
      // The workflow's lineage only: its ancestors and everything downstream of it.
      const lineage = await workflowLineage(db, id);
      const chain = (traceChain(lineage, id) ?? []).map((e) => ({
        id: e.node.id,
        name: e.node.name,
        previousWorkflowId: e.node.previousWorkflowId,
        isActive: e.node.isActive,
        depth: e.depth,
        relation: e.relation,
        isTerminal: e.isTerminal,
      }));
      return c.json({ ...toWorkflow(row), chain }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/workflows/{id}/agreement',
      tags: ['workflows'],
      summary: 'Agreement of an overlap workflow, read from rollups kept as items finish',
      description:
        "Per control: Krippendorff's alpha (nominal for choices, interval for ratings and numbers; null with metric " +
        "'distance' for regions and text), items scored, mean item agreement, per-label coincidences (single choice) or " +
        "per-label alpha (multi-choice), and each pair of annotators who shared items with their mean agreement and Cohen's " +
        'kappa (single choice). Per annotator: agreement with the consensus. README "Overlap and consensus" has the formulas.',
      request: { params: IdParam },
      responses: { 200: jsonContent(AgreementSchema, 'Agreement'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const report = await workflowAgreement(db, id);
      if (!report) throw notFound('Workflow');
      return c.json({ workflowId: id, ...report }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/workflows/{id}',
      tags: ['workflows'],
      summary: 'Update a workflow (isActive pauses or resumes it)',
      description:
        'Cross-field rules are checked on the workflow as it would be after the change. A previousWorkflowId ' +
        'equal to the workflow itself or to one of its downstream workflows (a cycle) is a 400.',
      request: { params: IdParam, ...jsonBody(UpdateWorkflow) },
      responses: {
        200: jsonContent(WorkflowSchema, 'Updated'),
        400: errors[400],
        401: errors[401],
        404: errors[404],
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const body: UpdateWorkflowInput = c.req.valid('json');
      const { row, before } = await db.transaction().execute(async (trx) => {
        const relinks = typeof body.previousWorkflowId === 'number';
        // Two concurrent relinks could each look fine alone and close a loop together: relinks
        // take turns (readers and other writes are not blocked by this mode).
        if (relinks) await sql`LOCK TABLE workflows IN SHARE ROW EXCLUSIVE MODE`.execute(trx);
        const current = await trx.selectFrom('workflows').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
        if (!current) throw notFound('Workflow');
        const merged = { ...current, ...body };
        const issues = [...ruleIssues(merged, id, []), ...(await referenceIssues(trx, body, []))];
        if (
          issues.length === 0 &&
          relinks &&
          body.previousWorkflowId !== current.previousWorkflowId
        ) {
          const cycle = await cycleIssue(trx, id, body.previousWorkflowId!);
          if (cycle) issues.push(cycle);
        }
        if (issues.length) throw invalid(issues);
        const archive =
          merged.rejectionMode === 'archive' && merged.rejectionArchiveBucket === null
            ? { rejectionArchiveBucket: defaultArchiveLocation(merged.s3ExportPath) }
            : {};
        await trx
          .updateTable('workflows')
          .set({ ...body, ...archive, updatedAt: new Date() })
          .where('id', '=', id)
          .execute();
        return { row: await findWorkflow(trx, id), before: current };
      });
      const what = before.isActive !== row.isActive ? (row.isActive ? 'resumed' : 'paused') : 'updated';
      ctx.wake(`workflow ${id} ${what}`);
      return c.json(toWorkflow(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/workflows/{id}',
      tags: ['workflows'],
      summary: 'Delete a workflow (409 while other workflows link to it or it has assignments)',
      request: { params: IdParam },
      responses: {
        200: jsonContent(SuccessSchema, 'Deleted'),
        400: errors[400],
        401: errors[401],
        404: errors[404],
        409: errors[409],
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await db.transaction().execute(async (trx) => {
        const found = await trx.selectFrom('workflows').select('id').where('id', '=', id).forUpdate().executeTakeFirst();
        if (!found) throw notFound('Workflow');
        const usage = await workflowUsage(trx, id);
        const reasons: string[] = [];
        if (usage.downstreamWorkflowIds.length) {
          reasons.push(`it is the previous workflow of workflow(s) ${usage.downstreamWorkflowIds.join(', ')}`);
        }
        if (usage.routingWorkflowIds.length) {
          reasons.push(`workflow(s) ${usage.routingWorkflowIds.join(', ')} route rejections to it`);
        }
        if (usage.assignments) reasons.push(`it has ${usage.assignments} assignment(s)`);
        if (usage.rejections) reasons.push(`it has ${usage.rejections} recorded rejection(s)`);
        if (reasons.length) throw conflict(`Cannot delete: ${reasons.join('; ')}`, usage);
        await trx.deleteFrom('workflows').where('id', '=', id).execute();
      });
      ctx.wake(`workflow ${id} deleted`);
      return c.json({ success: true as const }, 200);
    },
  );

  return app;
}
