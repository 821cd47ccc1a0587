/**
 * Schemas of the webhook subscription routes (they feed /api/openapi.json) and the row → API
 * mappings: subscriptions, deliveries, attempts.
 */
import { z } from '@hono/zod-openapi';
import { EVENT_TYPES } from '../outbound/events.ts';
import type { SubscriptionRow } from '../outbound/subscriptions.ts';
import { idField, idString, iso, isoRequired, nonEmpty, PaginationQuery, Timestamp } from './common.ts';

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
export const CreateSubscription = z.strictObject(Fields).openapi('CreateWebhookSubscription');
export const UpdateSubscription = nonEmpty(z.strictObject({ ...Fields, url: Fields.url.optional(), eventTypes: Fields.eventTypes.optional() })).openapi(
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
export const CreatedSubscription = SubscriptionSchema.extend({
  secret: z.string().openapi({ description: 'Standard Webhooks signing secret: shown in this response only', example: 'whsec_…' }),
}).openapi('CreatedWebhookSubscription');

export const DeliverySchema = z
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
export const DeliveryDetail = DeliverySchema.extend({ payload: z.unknown().openapi({ description: 'The body sent' }), attempts: z.array(AttemptSchema) }).openapi(
  'WebhookDeliveryDetail',
);

export const DeliveryParams = z.object({
  id: idString.openapi({ param: { name: 'id', in: 'path' }, example: 1 }),
  deliveryId: idString.openapi({ param: { name: 'deliveryId', in: 'path' }, example: 1 }),
});
export const DeliveryQuery = PaginationQuery.extend({ status: z.enum(['pending', 'delivered', 'failed']).optional() });


export const toSubscription = (r: SubscriptionRow) => ({
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

export const toDelivery = (d: {
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
