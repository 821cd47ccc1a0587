/**
 * Outbound webhook subscriptions (admin scope): a URL, optional extra headers, the event types
 * wanted and an optional workflow filter. The Standard Webhooks signing secret (`whsec_…`) is
 * returned once, on create; responses show its prefix and the extra headers' names only. Each
 * subscription has a delivery log (deliveries, each with its attempts) and a redeliver action.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { createRoute, z } from '@hono/zod-openapi';
import { sql, type Selectable } from 'kysely';
import type { AppContext } from '../context.ts';
import type { Executor } from '../db/index.ts';
import type { WebhookSubscriptionsTable } from '../db/types.ts';
import { refusal } from '../domain/address-policy.ts';
import { AppError, badRequest, notFound } from '../errors.ts';
import { EVENT_TYPES } from '../outbound/events.ts';
import { readWebhookSettings, redeliver } from '../outbound/deliveries.ts';
import {
  Envelope,
  envelope,
  errors,
  idString,
  IdParam,
  idField,
  iso,
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

/** Header names a subscription may not set: the signature, framing and hop-by-hop headers. */
const RESERVED_HEADERS = new Set([
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'content-type',
  'content-length',
  'transfer-encoding',
  'host',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'proxy-authorization',
  'proxy-connection',
  'user-agent',
]);

const HeaderMap = z
  .record(
    z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/, 'must be an HTTP header name'),
    z.string().max(4096).regex(/^[\t\x20-\x7e\x80-\xff]*$/, 'must not contain control characters or line breaks'),
  )
  .refine((h) => Object.keys(h).length <= 20, 'at most 20 headers')
  .refine((h) => Object.keys(h).every((k) => !RESERVED_HEADERS.has(k.toLowerCase())), 'must not set webhook-*, content-*, host, user-agent or hop-by-hop headers')
  .refine((h) => new Set(Object.keys(h).map((k) => k.toLowerCase())).size === Object.keys(h).length, 'must not repeat a header name')
  .openapi({ description: 'Extra request headers sent with every delivery (e.g. Authorization); stored encrypted, never shown again', example: { Authorization: 'Bearer …' } });

const WebhookUrl = z
  .string()
  .max(2048)
  .refine((u) => {
    try {
      const url = new URL(u);
      return (url.protocol === 'http:' || url.protocol === 'https:') && !url.username && !url.password && url.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be an http(s) URL without credentials (send those as headers)')
  .openapi({ format: 'uri', example: 'https://pipeline.example.com/labelfleet' });

const EventTypes = z
  .array(z.enum(EVENT_TYPES))
  .min(1)
  .refine((t) => new Set(t).size === t.length, 'must not repeat an event type');

const Fields = {
  url: WebhookUrl,
  eventTypes: EventTypes,
  workflowId: idField.nullable().optional().openapi({ description: 'Only events of this workflow (annotator events, which concern no workflow, still come)' }),
  headers: HeaderMap.optional(),
  description: z.string().max(500).nullable().optional(),
  isActive: z.boolean().optional(),
};
const CreateSubscription = z.strictObject(Fields).openapi('CreateWebhookSubscription');
const UpdateSubscription = nonEmpty(z.strictObject({ ...Fields, url: Fields.url.optional(), eventTypes: Fields.eventTypes.optional() })).openapi(
  'UpdateWebhookSubscription',
);

const DeliveryCounts = z.object({ pending: z.number().int(), delivered: z.number().int(), failed: z.number().int() });
export const SubscriptionSchema = z
  .object({
    id: z.number().int(),
    url: z.string(),
    description: z.string().nullable(),
    eventTypes: z.array(z.enum(EVENT_TYPES)),
    workflowId: z.number().int().nullable(),
    headerNames: z.array(z.string()),
    secretPrefix: z.string().openapi({ example: 'whsec_Ab3d' }),
    isActive: z.boolean(),
    deliveryCounts: DeliveryCounts,
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .openapi('WebhookSubscription');
const CreatedSubscription = SubscriptionSchema.extend({
  secret: z.string().openapi({ description: 'Standard Webhooks signing secret: shown in this response only', example: 'whsec_…' }),
}).openapi('CreatedWebhookSubscription');

const DeliverySchema = z
  .object({
    id: z.number().int(),
    subscriptionId: z.number().int(),
    eventId: z.string().openapi({ description: 'The webhook-id header of every attempt' }),
    eventType: z.enum(EVENT_TYPES),
    status: z.enum(['pending', 'delivered', 'failed']),
    attemptCount: z.number().int(),
    nextAttemptAt: Timestamp.nullable(),
    lastAttemptAt: Timestamp.nullable(),
    lastStatusCode: z.number().int().nullable(),
    lastError: z.string().nullable(),
    deliveredAt: Timestamp.nullable(),
    createdAt: Timestamp,
  })
  .openapi('WebhookDelivery');
const AttemptSchema = z
  .object({
    attemptedAt: Timestamp,
    durationMs: z.number().int(),
    statusCode: z.number().int().nullable().openapi({ description: 'null: no HTTP answer (refused, connection error, timeout)' }),
    error: z.string().nullable(),
    responseExcerpt: z.string().nullable().openapi({ description: 'The first 1 KB of the answer' }),
  })
  .openapi('WebhookAttempt');
const DeliveryDetail = DeliverySchema.extend({ payload: z.unknown().openapi({ description: 'The body sent' }), attempts: z.array(AttemptSchema) }).openapi(
  'WebhookDeliveryDetail',
);

const DeliveryParams = z.object({
  id: idString.openapi({ param: { name: 'id', in: 'path' }, example: 1 }),
  deliveryId: idString.openapi({ param: { name: 'deliveryId', in: 'path' }, example: 1 }),
});
const DeliveryQuery = PaginationQuery.extend({ status: z.enum(['pending', 'delivered', 'failed']).optional() });

type SubscriptionRow = Selectable<WebhookSubscriptionsTable> & { pending: number; delivered: number; failed: number };

const toSubscription = (r: SubscriptionRow) => ({
  id: r.id,
  url: r.url,
  description: r.description,
  eventTypes: r.eventTypes as (typeof EVENT_TYPES)[number][],
  workflowId: r.workflowId,
  headerNames: r.headerNames,
  secretPrefix: r.secretPrefix,
  isActive: r.isActive,
  deliveryCounts: { pending: r.pending, delivered: r.delivered, failed: r.failed },
  createdAt: isoRequired(r.createdAt),
  updatedAt: isoRequired(r.updatedAt),
});

function selectSubscriptions(db: Executor) {
  const count = (status: string) =>
    sql<number>`(SELECT count(*)::int FROM webhook_deliveries d WHERE d.subscription_id = webhook_subscriptions.id AND d.status = ${status})`;
  return db.selectFrom('webhookSubscriptions').selectAll().select([count('pending').as('pending'), count('delivered').as('delivered'), count('failed').as('failed')]);
}

async function findSubscription(db: Executor, id: number): Promise<SubscriptionRow> {
  const row = await selectSubscriptions(db).where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound('Webhook subscription');
  return row;
}

/** 400 when the workflow filter names no workflow, or the URL is an IP address deliveries would refuse. */
async function checkReferences(db: Executor, body: { url?: string; workflowId?: number | null }) {
  if (body.workflowId != null) {
    const wf = await db.selectFrom('workflows').select('id').where('id', '=', body.workflowId).executeTakeFirst();
    if (!wf) throw badRequest(`workflowId: workflow ${body.workflowId} does not exist`);
  }
  if (body.url) {
    const host = new URL(body.url).hostname.replace(/^\[(.*)\]$/, '$1');
    if (/^[0-9.]+$|:/.test(host)) {
      const why = refusal(host, (await readWebhookSettings(db)).policy);
      if (why) throw badRequest(`url: ${why}`);
    }
  }
}

const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

const toDelivery = (d: {
  id: number;
  subscriptionId: number;
  eventId: string;
  eventType: string;
  status: 'pending' | 'delivered' | 'failed';
  attemptCount: number;
  nextAttemptAt: Date | null;
  lastAttemptAt: Date | null;
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: Date | null;
  createdAt: Date;
}) => ({
  id: d.id,
  subscriptionId: d.subscriptionId,
  eventId: d.eventId,
  eventType: d.eventType as (typeof EVENT_TYPES)[number],
  status: d.status,
  attemptCount: d.attemptCount,
  nextAttemptAt: d.status === 'pending' ? iso(d.nextAttemptAt) : null,
  lastAttemptAt: iso(d.lastAttemptAt),
  lastStatusCode: d.lastStatusCode,
  lastError: d.lastError,
  deliveredAt: iso(d.deliveredAt),
  createdAt: isoRequired(d.createdAt),
});

function selectDeliveries(db: Executor) {
  return db
    .selectFrom('webhookDeliveries as d')
    .innerJoin('webhookEvents as e', 'e.id', 'd.eventId')
    .select([
      'd.id',
      'd.subscriptionId',
      'd.eventId',
      'e.type as eventType',
      'd.status',
      'd.attemptCount',
      'd.nextAttemptAt',
      'd.lastAttemptAt',
      'd.lastStatusCode',
      'd.lastError',
      'd.deliveredAt',
      'd.createdAt',
    ]);
}

async function findDelivery(db: Executor, subscriptionId: number, deliveryId: number) {
  await findSubscription(db, subscriptionId);
  const d = await selectDeliveries(db).select('e.payload').where('d.id', '=', deliveryId).where('d.subscriptionId', '=', subscriptionId).executeTakeFirst();
  if (!d) throw notFound('Delivery');
  return d;
}

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
      let list = selectDeliveries(db).where('d.subscriptionId', '=', id);
      let count = db.selectFrom('webhookDeliveries').select(sql<number>`count(*)::int`.as('n')).where('subscriptionId', '=', id);
      if (q.status) {
        list = list.where('d.status', '=', q.status);
        count = count.where('status', '=', q.status);
      }
      const [rows, total] = await Promise.all([
        list.orderBy('d.createdAt', 'desc').orderBy('d.id', 'desc').limit(q.limit).offset(q.offset).execute(),
        count.executeTakeFirstOrThrow(),
      ]);
      return c.json(envelope(rows.map(toDelivery), total.n, q), 200);
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
