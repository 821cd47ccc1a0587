/** Roles: which annotators receive which workflows. */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { findRoleRow, listRoles, roleUsage } from '../db/catalog.ts';
import type { Executor } from '../db/index.ts';
import type { Role } from '../db/types.ts';
import { conflict, notFound, PG, pgCode } from '../errors.ts';
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

export const RoleSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    description: z.string().nullable(),
    color: z.string().nullable(),
    createdAt: Timestamp,
  })
  .openapi('Role');

const RoleFields = {
  name: z.string().trim().min(1).max(100),
  description: z.string().max(500).nullable().optional(),
  color: z
    .string()
    .regex(/^#[0-9A-Fa-f]{6}$/, 'must be a hex colour like #3B82F6')
    .nullable()
    .optional(),
};
const CreateRole = z.strictObject(RoleFields).openapi('CreateRole');
const UpdateRole = nonEmpty(z.strictObject({ ...RoleFields, name: RoleFields.name.optional() })).openapi('UpdateRole');

export const toRole = (r: Role) => ({
  id: r.id,
  name: r.name,
  description: r.description,
  color: r.color,
  createdAt: isoRequired(r.createdAt),
});

export async function findRole(db: Executor, id: number) {
  const row = await findRoleRow(db, id);
  if (!row) throw notFound('Role');
  return row;
}

function nameTaken(err: unknown): never {
  if (pgCode(err) === PG.uniqueViolation) throw conflict('A role with this name already exists');
  throw err;
}

export function roleRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/roles',
      tags: ['roles'],
      summary: 'List roles (bare array; total in X-Total-Count)',
      request: { query: PaginationQuery },
      responses: { 200: jsonContent(z.array(RoleSchema), 'Roles'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const { rows, total } = await listRoles(db, c.req.valid('query'));
      setTotal(c, total);
      return c.json(rows.map(toRole), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/roles',
      tags: ['roles'],
      summary: 'Create a role',
      request: jsonBody(CreateRole),
      responses: { 201: jsonContent(RoleSchema, 'Created'), 400: errors[400], 401: errors[401], 409: errors[409] },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const row = await db.insertInto('roles').values(body).returningAll().executeTakeFirstOrThrow().catch(nameTaken);
      return c.json(toRole(row), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/roles/{id}',
      tags: ['roles'],
      summary: 'Get a role',
      request: { params: IdParam },
      responses: { 200: jsonContent(RoleSchema, 'Role'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => c.json(toRole(await findRole(db, c.req.valid('param').id)), 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/roles/{id}',
      tags: ['roles'],
      summary: 'Update a role',
      request: { params: IdParam, ...jsonBody(UpdateRole) },
      responses: {
        200: jsonContent(RoleSchema, 'Updated'),
        400: errors[400],
        401: errors[401],
        404: errors[404],
        409: errors[409],
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const row = await db
        .updateTable('roles')
        .set({ ...c.req.valid('json'), updatedAt: new Date() })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst()
        .catch(nameTaken);
      if (!row) throw notFound('Role');
      return c.json(toRole(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/roles/{id}',
      tags: ['roles'],
      summary: 'Delete a role (409 while annotators or workflows use it)',
      request: { params: IdParam },
      responses: { 200: jsonContent(SuccessSchema, 'Deleted'), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await db.transaction().execute(async (trx) => {
        await findRole(trx, id);
        const usage = await roleUsage(trx, id);
        if (usage.annotators > 0 || usage.workflows > 0) {
          throw conflict('Cannot delete: role is in use', usage);
        }
        // Deleted annotators keep their history but let go of the role.
        await trx.updateTable('annotators').set({ roleId: null }).where('roleId', '=', id).execute();
        await trx.deleteFrom('roles').where('id', '=', id).execute();
      });
      return c.json({ success: true as const }, 200);
    },
  );

  return app;
}
