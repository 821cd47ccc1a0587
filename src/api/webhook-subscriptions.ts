/**
 * Outbound webhook subscriptions (admin scope): a URL, optional extra headers, the event types
 * wanted and an optional workflow filter. The Standard Webhooks signing secret (`whsec_…`) is
 * returned once, on create; responses show its prefix and the extra headers' names only. Each
 * subscription has a delivery log (deliveries, each with its attempts) and a redeliver action.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import { AppError, notFound } from '../errors.ts';
import { redeliver } from '../outbound/deliveries.ts';
import { checkReferences, findDelivery, findSubscription, listDeliveries, newSecret, selectSubscriptions } from '../outbound/subscriptions.ts';
import { Envelope, envelope, errors, IdParam, isoRequired, jsonBody, jsonContent, PaginationQuery, setTotal, SuccessSchema } from './common.ts';
import { createRouter } from './router.ts';
import {
  CreatedSubscription,
  CreateSubscription,
  DeliveryDetail,
  DeliveryParams,
  DeliveryQuery,
  DeliverySchema,
  SubscriptionSchema,
  toDelivery,
  toSubscription,
  UpdateSubscription,
} from './webhook-subscription-schemas.ts';

export function webhookSubscriptionRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;
  const tags = ['webhook-subscriptions'];

  app.openapi(
    createRoute({
      method: 'get',
      path: '/webhook-subscriptions',
      tags,
      summary: 'List outbound webhook subscriptions (bare array; total in X-Total-Count)',
      request: { query: PaginationQuery },
      responses: { 200: jsonContent(z.array(SubscriptionSchema), 'Subscriptions'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const { limit, offset } = c.req.valid('query');
      const [rows, total] = await Promise.all([
        selectSubscriptions(db).orderBy('id').limit(limit).offset(offset).execute(),
        db.selectFrom('webhookSubscriptions').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
      ]);
      setTotal(c, total.n);
      return c.json(rows.map(toSubscription), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/webhook-subscriptions',
      tags,
      summary: 'Subscribe a URL to events (the signing secret is returned once, in `secret`)',
      request: jsonBody(CreateSubscription),
      responses: { 201: jsonContent(CreatedSubscription, 'Created'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const body = c.req.valid('json');
      await checkReferences(db, body);
      const secret = newSecret();
      const headers = body.headers ?? {};
      const { id } = await db
        .insertInto('webhookSubscriptions')
        .values({
          url: body.url,
          description: body.description ?? null,
          eventTypes: sql`${body.eventTypes}::text[]` as never,
          workflowId: body.workflowId ?? null,
          headerNames: sql`${Object.keys(headers)}::text[]` as never,
          headersEnc: Object.keys(headers).length ? ctx.secrets.encrypt(JSON.stringify(headers)) : null,
          secretEnc: ctx.secrets.encrypt(secret),
          secretPrefix: secret.slice(0, 10),
          isActive: body.isActive ?? true,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return c.json({ ...toSubscription(await findSubscription(db, id)), secret }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/webhook-subscriptions/{id}',
      tags,
      summary: 'Get a subscription (with its delivery counts)',
      request: { params: IdParam },
      responses: { 200: jsonContent(SubscriptionSchema, 'Subscription'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => c.json(toSubscription(await findSubscription(db, c.req.valid('param').id)), 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/webhook-subscriptions/{id}',
      tags,
      summary: 'Update a subscription (headers, when given, replace the stored ones)',
      request: { params: IdParam, ...jsonBody(UpdateSubscription) },
      responses: { 200: jsonContent(SubscriptionSchema, 'Updated'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const body = c.req.valid('json');
      await findSubscription(db, id);
      await checkReferences(db, body);
      await db
        .updateTable('webhookSubscriptions')
        .set({
          ...(body.url !== undefined ? { url: body.url } : {}),
          ...(body.description !== undefined ? { description: body.description } : {}),
          ...(body.eventTypes !== undefined ? { eventTypes: sql`${body.eventTypes}::text[]` as never } : {}),
          ...(body.workflowId !== undefined ? { workflowId: body.workflowId } : {}),
          ...(body.isActive !== undefined ? { isActive: body.isActive } : {}),
          ...(body.headers !== undefined
            ? {
                headerNames: sql`${Object.keys(body.headers)}::text[]` as never,
                headersEnc: Object.keys(body.headers).length ? ctx.secrets.encrypt(JSON.stringify(body.headers)) : null,
              }
            : {}),
          updatedAt: sql<Date>`now()`,
        })
        .where('id', '=', id)
        .execute();
      if (body.isActive) ctx.wake('webhook subscription resumed');
      return c.json(toSubscription(await findSubscription(db, id)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/webhook-subscriptions/{id}',
      tags,
      summary: 'Delete a subscription with its delivery log (pending deliveries are dropped)',
      request: { params: IdParam },
      responses: { 200: jsonContent(SuccessSchema, 'Deleted'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const r = await db.deleteFrom('webhookSubscriptions').where('id', '=', c.req.valid('param').id).executeTakeFirst();
      if (!Number(r.numDeletedRows)) throw notFound('Webhook subscription');
      return c.json({ success: true as const }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/webhook-subscriptions/{id}/deliveries',
      tags,
      summary: "A subscription's delivery log, newest first (paginated; filter by status)",
      request: { params: IdParam, query: DeliveryQuery },
      responses: { 200: jsonContent(Envelope(DeliverySchema), 'Deliveries'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const q = c.req.valid('query');
      await findSubscription(db, id);
      const { rows, total } = await listDeliveries(db, id, q.status, q);
      return c.json(envelope(rows.map(toDelivery), total, q), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/webhook-subscriptions/{id}/deliveries/{deliveryId}',
      tags,
      summary: 'One delivery: the body sent and every attempt (time, duration, status code, error)',
      request: { params: DeliveryParams },
      responses: { 200: jsonContent(DeliveryDetail, 'Delivery'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id, deliveryId } = c.req.valid('param');
      const d = await findDelivery(db, id, deliveryId);
      const attempts = await db
        .selectFrom('webhookAttempts')
        .select(['attemptedAt', 'durationMs', 'statusCode', 'error', 'responseExcerpt'])
        .where('deliveryId', '=', deliveryId)
        .orderBy('attemptedAt')
        .orderBy('id')
        .execute();
      return c.json(
        {
          ...toDelivery(d),
          payload: d.payload,
          attempts: attempts.map((a) => ({ ...a, attemptedAt: isoRequired(a.attemptedAt) })),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/webhook-subscriptions/{id}/deliveries/{deliveryId}/redeliver',
      tags,
      summary: 'Send a delivery again now (same webhook-id, a fresh retry window)',
      request: { params: DeliveryParams },
      responses: { 202: jsonContent(DeliverySchema, 'Queued'), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409] },
    }),
    async (c) => {
      const { id, deliveryId } = c.req.valid('param');
      const sub = await findSubscription(db, id);
      if (!sub.isActive) throw new AppError(409, 'The subscription is paused (isActive false): resume it to redeliver');
      if (!(await redeliver(db, id, deliveryId))) throw notFound('Delivery');
      ctx.wake('webhook redelivery');
      return c.json(toDelivery(await findDelivery(db, id, deliveryId)), 202);
    },
  );

  return app;
}
