/**
 * Annotators: the people, each with their own Label Studio instance. CRUD and bulk here; the
 * lifecycle endpoints (start, stop, status, token) live in annotator-lifecycle.ts and reuse
 * `toAnnotator`, `findAnnotator` and `transitionAnnotator` from here.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { secretPrefix, type SecretBox } from '../crypto.ts';
import { annotatorPage, filterAnnotators, type AnnotatorApiRow, type AnnotatorPageRow } from '../db/annotator-list.ts';
import { annotatorTotal, type AnnotatorCountFilter } from '../db/counts.ts';
import type { Page } from '../db/list-page.ts';
import type { Db, Executor } from '../db/index.ts';
import { precompiled } from '../db/precompiled.ts';
import { sessionAdminId } from '../auth/sessions.ts';
import type { JsonText } from '../db/json-text.ts';
import { ANNOTATOR_STATUSES } from '../domain/annotator-status.ts';
import {
  createAnnotators,
  deleteAnnotator,
  deleteAnnotators,
  findAnnotator,
  selectAnnotators,
  updateAnnotator,
} from '../workflows/annotators.ts';
import { AssignmentSchema, RoleRefSchema, toAssignment } from './assignments.ts';
import {
  EntityRef,
  errors,
  idField,
  idString,
  IdParam,
  iso,
  isoRequired,
  jsonBody,
  jsonContent,
  jsonText,
  nonEmpty,
  PaginationQuery,
  setTotal,
  SuccessSchema,
  Timestamp,
} from './common.ts';
import { createRouter } from './router.ts';

export { findAnnotator, transitionAnnotator, writeContainerEvent, type AnnotatorRow } from '../workflows/annotators.ts';

/** How many of an annotator's assignments GET /api/annotators/:id nests (newest first). */
export const NESTED_ASSIGNMENTS_LIMIT = 100;
export const BULK_MAX = 100;

export const AnnotatorSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    email: z.string(),
    roleId: z.number().int().nullable(),
    status: z.enum(ANNOTATOR_STATUSES),
    containerId: z.string().nullable(),
    containerIp: z.string().nullable(),
    containerPort: z.number().int().nullable(),
    subdomain: z.string(),
    databaseName: z.string().nullable(),
    apiToken: z.string().nullable().openapi({ description: 'A short prefix of the instance API token, never the token' }),
    lsUserId: z.number().int().nullable(),
    notes: z.string().nullable(),
    lastActiveAt: Timestamp.nullable(),
    rejectionCount: z.number().int(),
    reviewedCount: z.number().int(),
    autoAssignPaused: z.boolean(),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    role: RoleRefSchema.nullable(),
  })
  .openapi('Annotator');

const AnnotatorDetailSchema = AnnotatorSchema.extend({
  assignments: z.array(AssignmentSchema.extend({ workflow: EntityRef })),
}).openapi('AnnotatorDetail');

/** Shows a prefix of the sealed API token; a token that no longer opens (key rotated) shows as null. */
function tokenPrefix(secrets: SecretBox, sealed: string | null): string | null {
  if (!sealed) return null;
  try {
    return secretPrefix(secrets.decrypt(sealed));
  } catch {
    return null;
  }
}

export const toAnnotator = (a: AnnotatorApiRow, secrets: SecretBox) => ({
  id: a.id,
  name: a.name,
  email: a.email,
  roleId: a.roleId,
  status: a.status,
  containerId: a.containerId,
  containerIp: a.containerIp,
  containerPort: a.containerPort,
  subdomain: a.subdomain,
  databaseName: a.databaseName,
  apiToken: tokenPrefix(secrets, a.apiTokenEnc),
  lsUserId: a.lsUserId,
  notes: a.notes,
  lastActiveAt: iso(a.lastActiveAt),
  rejectionCount: a.rejectionCount,
  reviewedCount: a.reviewedCount,
  autoAssignPaused: a.autoAssignPaused,
  createdAt: isoRequired(a.createdAt),
  updatedAt: isoRequired(a.updatedAt),
  role: a.roleId !== null && a.roleName !== null ? { id: a.roleId, name: a.roleName, color: a.roleColor } : null,
});

type AnnotatorJson = ReturnType<typeof toAnnotator>;

/**
 * The page's JSON as the API sends it (annotatorPage's row): PostgreSQL's text as it is, or, when
 * annotators of the page hold a sealed token, with their `apiToken` set to its prefix (as
 * toAnnotator shows it).
 */
function annotatorPageJson(row: AnnotatorPageRow, secrets: SecretBox): JsonText<AnnotatorJson[]> {
  if (row.sealed === null) return row.json as JsonText<AnnotatorJson[]>;
  const sealed = new Map(row.sealed);
  const page = JSON.parse(row.json) as AnnotatorJson[];
  for (const a of page) {
    const token = sealed.get(a.id);
    if (token !== undefined) a.apiToken = tokenPrefix(secrets, token);
  }
  return JSON.stringify(page);
}

const Fields = {
  name: z.string().trim().min(1).max(255),
  email: z.email().max(255),
  roleId: idField.nullable().optional(),
  notes: z.string().max(2000).nullable().optional(),
};
const CreateAnnotator = z.strictObject(Fields).openapi('CreateAnnotator');
const UpdateAnnotator = nonEmpty(
  z.strictObject({
    ...Fields,
    name: Fields.name.optional(),
    email: Fields.email.optional(),
    autoAssignPaused: z.boolean().optional(),
  }),
).openapi('UpdateAnnotator');
const BulkCreate = z
  .strictObject({ annotators: z.array(CreateAnnotator).min(1).max(BULK_MAX) })
  .openapi('BulkCreateAnnotators');
const BulkDelete = z.strictObject({ ids: z.array(idField).min(1).max(BULK_MAX) }).openapi('BulkDeleteAnnotators');

const ListQuery = PaginationQuery.extend({
  status: z
    .enum(ANNOTATOR_STATUSES)
    .optional()
    .openapi({ description: 'Filter by status; deleted annotators are listed only with status=deleted' }),
  roleId: idString.optional().openapi({ type: 'integer', description: 'Filter by role' }),
});

/**
 * GET /api/annotators' statement: the page as one row (annotatorPage), its total from the counter
 * and, for a session cookie, the session's check (SessionCheck, src/auth/sessions.ts), compiled
 * once per shape (src/db/precompiled.ts).
 */
export const annotatorPageStatement = precompiled((db: Db, v: AnnotatorCountFilter & Page & { tokenHash?: string }) =>
  annotatorPage(db, filterAnnotators(db, v), v, annotatorTotal(db, v), v.tokenHash === undefined ? undefined : sessionAdminId(db, v.tokenHash)),
);

async function loadAnnotators(db: Executor, ids: number[], secrets: SecretBox) {
  if (ids.length === 0) return [];
  const rows = await selectAnnotators(db).where('annotators.id', 'in', ids).execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  return ids.map((id) => toAnnotator(byId.get(id)!, secrets));
}

export function annotatorRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;
  const { secrets } = ctx;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/annotators',
      tags: ['annotators'],
      summary: 'List annotators (bare array; total in X-Total-Count). Deleted ones only with status=deleted',
      request: { query: ListQuery },
      responses: { 200: jsonContent(z.array(AnnotatorSchema), 'Annotators'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const filter = { status: q.status, roleId: q.roleId };
      // A session cookie is checked by the page's own statement (app.ts SESSION_IN_STATEMENT).
      const session = c.get('sessionCheck');
      const [page] = await annotatorPageStatement(db, { ...filter, limit: q.limit, offset: q.offset, tokenHash: session?.tokenHash });
      session?.confirm(page!.listAdmit);
      setTotal(c, page!.listTotal);
      return jsonText(c, annotatorPageJson(page!, secrets));
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/annotators',
      tags: ['annotators'],
      summary: 'Create an annotator (status created; subdomain derived from the name)',
      request: jsonBody(CreateAnnotator),
      responses: { 201: jsonContent(AnnotatorSchema, 'Created'), 400: errors[400], 401: errors[401], 409: errors[409] },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const created = await db.transaction().execute(async (trx) => {
        const [row] = await createAnnotators(trx, [body]);
        return findAnnotator(trx, row!.id);
      });
      // The reconciler makes the new annotator's database ahead of its first start.
      ctx.wake(`annotator ${created.id} created`);
      return c.json(toAnnotator(created, secrets), 201);
    },
  );

  // The bulk routes come before /annotators/{id} so "bulk" is never read as an id.
  app.openapi(
    createRoute({
      method: 'post',
      path: '/annotators/bulk',
      tags: ['annotators'],
      summary: `Create up to ${BULK_MAX} annotators, all or nothing`,
      request: jsonBody(BulkCreate),
      responses: {
        201: jsonContent(z.object({ created: z.number().int(), annotators: z.array(AnnotatorSchema) }), 'Created'),
        400: errors[400],
        401: errors[401],
        409: errors[409],
      },
    }),
    async (c) => {
      const { annotators } = c.req.valid('json');
      const out = await db.transaction().execute(async (trx) => {
        const rows = await createAnnotators(trx, annotators);
        return loadAnnotators(
          trx,
          rows.map((r) => r.id),
          secrets,
        );
      });
      ctx.wake(`${out.length} annotator(s) created`);
      return c.json({ created: out.length, annotators: out }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/annotators/bulk',
      tags: ['annotators'],
      summary: `Soft-delete up to ${BULK_MAX} annotators (unknown or already deleted ids are skipped)`,
      request: jsonBody(BulkDelete),
      responses: {
        200: jsonContent(z.object({ deleted: z.number().int() }), 'Number of annotators moved to deleted'),
        400: errors[400],
        401: errors[401],
      },
    }),
    async (c) => {
      const { ids } = c.req.valid('json');
      const deleted = await db
        .transaction()
        .execute((trx) => deleteAnnotators(trx, ids, 'deleted by admin (bulk)', { adminUserId: c.get('adminUserId') }));
      if (deleted > 0) ctx.wake(`${deleted} annotator(s) deleted`);
      return c.json({ deleted }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/annotators/{id}',
      tags: ['annotators'],
      summary: `Get an annotator with its role and its ${NESTED_ASSIGNMENTS_LIMIT} most recent assignments`,
      request: { params: IdParam },
      responses: { 200: jsonContent(AnnotatorDetailSchema, 'Annotator'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const annotator = await findAnnotator(db, id);
      const assignments = await db
        .selectFrom('assignments')
        .innerJoin('workflows', 'workflows.id', 'assignments.workflowId')
        .selectAll('assignments')
        .select('workflows.name as workflowName')
        .where('assignments.annotatorId', '=', id)
        .orderBy('assignments.createdAt', 'desc')
        .orderBy('assignments.id', 'desc')
        .limit(NESTED_ASSIGNMENTS_LIMIT)
        .execute();
      return c.json(
        {
          ...toAnnotator(annotator, secrets),
          assignments: assignments.map((a) => ({ ...toAssignment(a), workflow: { id: a.workflowId, name: a.workflowName } })),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/annotators/{id}',
      tags: ['annotators'],
      summary: 'Update an annotator (the subdomain stays as it is)',
      request: { params: IdParam, ...jsonBody(UpdateAnnotator) },
      responses: {
        200: jsonContent(AnnotatorSchema, 'Updated'),
        400: errors[400],
        401: errors[401],
        404: errors[404],
        409: errors[409],
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const patch = c.req.valid('json');
      const updated = await db.transaction().execute(async (trx) => {
        await updateAnnotator(trx, id, patch);
        return findAnnotator(trx, id);
      });
      // Resuming auto-assignment or changing the role can make new work assignable.
      if (patch.autoAssignPaused !== undefined || patch.roleId !== undefined) ctx.wake(`annotator ${id} updated`);
      return c.json(toAnnotator(updated, secrets), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/annotators/{id}',
      tags: ['annotators'],
      summary: 'Soft-delete an annotator: status deleted, open assignments cancelled, instance removed by the reconciler',
      request: { params: IdParam },
      responses: { 200: jsonContent(SuccessSchema, 'Deleted'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const moved = await db
        .transaction()
        .execute((trx) => deleteAnnotator(trx, id, 'deleted by admin', { adminUserId: c.get('adminUserId') }));
      if (moved) ctx.wake(`annotator ${id} deleted`);
      return c.json({ success: true as const }, 200);
    },
  );

  return app;
}
