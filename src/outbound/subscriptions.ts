/**
 * Webhook subscriptions and their delivery log in the database (repository functions taking
 * `db | trx` first), and the checks a subscription's references must pass.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { sql, type Selectable, type SelectQueryBuilder } from 'kysely';
import type { Executor } from '../db/index.ts';
import { refusal } from '../domain/address-policy.ts';
import { badRequest, notFound } from '../errors.ts';
import type { Database, DeliveryStatus, WebhookDeliveriesTable, WebhookSubscriptionsTable } from '../db/types.ts';
import { listPage, type Page } from '../db/list-page.ts';
import { readWebhookSettings } from './deliveries.ts';

/** A subscription row with its deliveries counted by status. */
export type SubscriptionRow = Selectable<WebhookSubscriptionsTable> & { pending: number; delivered: number; failed: number };

/** A new Standard Webhooks signing secret: `whsec_` + base64 of 24 random bytes. */
export const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

/** Subscriptions with their delivery counts. */
export function selectSubscriptions(db: Executor) {
  const count = (status: string) =>
    sql<number>`(SELECT count(*)::int FROM webhook_deliveries d WHERE d.subscription_id = webhook_subscriptions.id AND d.status = ${status})`;
  return db.selectFrom('webhookSubscriptions').selectAll().select([count('pending').as('pending'), count('delivered').as('delivered'), count('failed').as('failed')]);
}

/** One subscription, or a 404. */
export async function findSubscription(db: Executor, id: number): Promise<SubscriptionRow> {
  const row = await selectSubscriptions(db).where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound('Webhook subscription');
  return row;
}

/** 400 when the workflow filter names no workflow, or the URL is an IP address deliveries would refuse. */
export async function checkReferences(db: Executor, body: { url?: string; workflowId?: number | null }) {
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

/** Deliveries with their event's type. */
export function selectDeliveries(db: Executor) {
  return deliveryColumns(db.selectFrom('webhookDeliveries as d'));
}

/**
 * One page of a subscription's deliveries, newest first, optionally of one status, with the number
 * matching (one statement, src/db/list-page.ts).
 */
export function listDeliveries(db: Executor, subscriptionId: number, status: DeliveryStatus | undefined, page: Page) {
  let filtered = db.selectFrom('webhookDeliveries as d').where('d.subscriptionId', '=', subscriptionId);
  if (status) filtered = filtered.where('d.status', '=', status);
  return listPage(db, filtered, (q) => deliveryColumns(q).orderBy('d.createdAt', 'desc').orderBy('d.id', 'desc'), page);
}

function deliveryColumns(q: SelectQueryBuilder<Database & { d: WebhookDeliveriesTable }, 'd', {}>) {
  return q
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

/** One delivery of a subscription with the body sent, or a 404 (for the subscription or the delivery). */
export async function findDelivery(db: Executor, subscriptionId: number, deliveryId: number) {
  await findSubscription(db, subscriptionId);
  const d = await selectDeliveries(db).select('e.payload').where('d.id', '=', deliveryId).where('d.subscriptionId', '=', subscriptionId).executeTakeFirst();
  if (!d) throw notFound('Delivery');
  return d;
}
