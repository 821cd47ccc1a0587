/**
 * Delivering the outbox (the reconciler's `outbound` step, orchestrator/outbound-step.ts).
 *
 * Due deliveries (pending, next_attempt_at ≤ now, subscription active) are claimed in bounded
 * batches with FOR UPDATE SKIP LOCKED by pushing next_attempt_at out by a lease (twice the attempt
 * timeout plus 10 s; an attempt never outlasts its timeout):
 * a process that dies mid-send leaves the delivery due again once the lease ends, and it is sent
 * again with the same webhook-id (receivers deduplicate on it, as Standard Webhooks asks). Each
 * attempt is logged (webhook_attempts: time, duration, status code, error, start of the answer)
 * and decides the delivery's fate (src/domain/retry-schedule.ts): delivered, a retry with
 * exponential backoff, or failed (refused destination, or the retry window is over).
 */
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import type { Db, Executor } from '../db/index.ts';
import { parseNetworkPolicy, type NetworkPolicy } from '../domain/address-policy.ts';
import { decideAfterAttempt } from '../domain/retry-schedule.ts';
import { SETTING_DEFAULTS } from '../settings.ts';
import { sendWebhook, type SendResult } from './send.ts';

export interface WebhookSettings {
  policy: NetworkPolicy;
  timeoutSeconds: number;
  retryBaseSeconds: number;
  retryWindowHours: number;
  logRetentionDays: number;
}

const KEYS = ['webhooks.allowedNetworks', 'webhooks.timeoutSeconds', 'webhooks.retryBaseSeconds', 'webhooks.retryWindowHours', 'webhooks.logRetentionDays'] as const;

/** The webhook settings, each validated (a stored value of the wrong type or range falls back to its default). */
export async function readWebhookSettings(db: Executor): Promise<WebhookSettings> {
  const rows = await db.selectFrom('settings').select(['key', 'value']).where('key', 'in', [...KEYS]).execute();
  const stored = new Map(rows.map((r) => [r.key, r.value]));
  const num = (key: (typeof KEYS)[number], min: number, max: number) => {
    const v = stored.get(key);
    return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? v : (SETTING_DEFAULTS[key] as number);
  };
  return {
    policy: parseNetworkPolicy(stored.get('webhooks.allowedNetworks')) ?? parseNetworkPolicy(SETTING_DEFAULTS['webhooks.allowedNetworks'])!,
    timeoutSeconds: num('webhooks.timeoutSeconds', 1, 60),
    retryBaseSeconds: num('webhooks.retryBaseSeconds', 0.1, 3600),
    retryWindowHours: num('webhooks.retryWindowHours', 0.001, 24 * 30),
    logRetentionDays: num('webhooks.logRetentionDays', 1, 3650),
  };
}

interface Claimed {
  id: number;
  subscriptionId: number;
  eventId: string;
  attemptCount: number;
  windowStartedAt: Date;
}

/** Claims up to `limit` due deliveries for `leaseSeconds`. */
export async function claimDueDeliveries(db: Db, limit: number, leaseSeconds: number): Promise<Claimed[]> {
  const { rows } = await sql<Claimed>`
    UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => ${leaseSeconds})
      FROM (SELECT d2.id FROM webhook_deliveries d2
              JOIN webhook_subscriptions s ON s.id = d2.subscription_id AND s.is_active
             WHERE d2.status = 'pending' AND d2.next_attempt_at <= now()
             ORDER BY d2.next_attempt_at, d2.id
             LIMIT ${limit}
               FOR UPDATE OF d2 SKIP LOCKED) due
     WHERE d.id = due.id
    RETURNING d.id, d.subscription_id, d.event_id, d.attempt_count, d.window_started_at`.execute(db);
  return rows;
}

/** Logs one attempt and moves the delivery on (unless a redelivery or deletion changed it meanwhile). */
export async function recordAttempt(db: Db, d: Claimed, result: SendResult, attemptedAt: Date, s: WebhookSettings): Promise<'delivered' | 'failed' | 'pending'> {
  const now = new Date();
  const decision = decideAfterAttempt(result, {
    failures: d.attemptCount + 1,
    windowStartedAt: new Date(d.windowStartedAt),
    now,
    baseSeconds: s.retryBaseSeconds,
    windowHours: s.retryWindowHours,
  });
  await db.transaction().execute(async (trx) => {
    const current = await trx.selectFrom('webhookDeliveries').select(['windowStartedAt', 'status']).where('id', '=', d.id).forUpdate().executeTakeFirst();
    if (!current) return;
    await trx
      .insertInto('webhookAttempts')
      .values({
        deliveryId: d.id,
        attemptedAt,
        durationMs: result.durationMs,
        statusCode: result.statusCode,
        error: result.error?.slice(0, 2000) ?? null,
        responseExcerpt: result.responseExcerpt?.slice(0, 1024) ?? null,
      })
      .execute();
    // A redelivery asked while this attempt ran restarted the window: it keeps its own schedule.
    const redelivered = new Date(current.windowStartedAt).getTime() !== new Date(d.windowStartedAt).getTime();
    await trx
      .updateTable('webhookDeliveries')
      .set({
        attemptCount: sql`attempt_count + 1`,
        lastAttemptAt: attemptedAt,
        lastStatusCode: result.statusCode,
        lastError: result.error?.slice(0, 2000) ?? null,
        ...(redelivered
          ? {}
          : decision.status === 'delivered'
            ? { status: 'delivered', deliveredAt: now, nextAttemptAt: null }
            : decision.status === 'failed'
              ? { status: 'failed', nextAttemptAt: null }
              : { nextAttemptAt: decision.nextAttemptAt }),
      })
      .where('id', '=', d.id)
      .execute();
  });
  return decision.status;
}

export interface DeliveryReport {
  actions: string[];
  errors: string[];
  counts: { attempted: number; delivered: number; failed: number; retrying: number };
}

const CLAIM_BATCH = 50;
const MAX_PER_PASS = 500;
const PARALLEL = 8;

/** Sends every due delivery (at most MAX_PER_PASS per call), PARALLEL at a time. */
export async function deliverDue(ctx: Pick<AppContext, 'database' | 'secrets' | 'logger'>): Promise<DeliveryReport> {
  const { db } = ctx.database;
  const report: DeliveryReport = { actions: [], errors: [], counts: { attempted: 0, delivered: 0, failed: 0, retrying: 0 } };
  const settings = await readWebhookSettings(db);
  const lease = 2 * settings.timeoutSeconds + 10;
  while (report.counts.attempted < MAX_PER_PASS) {
    const batch = await claimDueDeliveries(db, Math.min(CLAIM_BATCH, MAX_PER_PASS - report.counts.attempted), lease);
    if (!batch.length) break;
    const subs = await db
      .selectFrom('webhookSubscriptions')
      .select(['id', 'url', 'headersEnc', 'secretEnc'])
      .where('id', 'in', [...new Set(batch.map((d) => d.subscriptionId))])
      .execute();
    const events = await db
      .selectFrom('webhookEvents')
      .select(['id', 'type', 'payload'])
      .where('id', 'in', [...new Set(batch.map((d) => d.eventId))])
      .execute();
    const subById = new Map(subs.map((s) => [s.id, s]));
    const eventById = new Map(events.map((e) => [e.id, e]));
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(PARALLEL, batch.length) }, async () => {
        while (next < batch.length) {
          const d = batch[next++]!;
          const sub = subById.get(d.subscriptionId);
          const event = eventById.get(d.eventId);
          if (!sub || !event) continue;
          try {
            const attemptedAt = new Date();
            const result = await sendWebhook({
              url: sub.url,
              headers: sub.headersEnc ? (JSON.parse(ctx.secrets.decrypt(sub.headersEnc)) as Record<string, string>) : {},
              msgId: event.id,
              body: JSON.stringify(event.payload),
              secret: ctx.secrets.decrypt(sub.secretEnc),
              policy: settings.policy,
              timeoutMs: settings.timeoutSeconds * 1000,
              now: attemptedAt,
            });
            const status = await recordAttempt(db, d, result, attemptedAt, settings);
            report.counts.attempted++;
            const what = `webhook ${event.type} ${event.id} to subscription ${sub.id}`;
            if (status === 'delivered') {
              report.counts.delivered++;
              report.actions.push(`${what}: delivered (${result.statusCode}, ${result.durationMs} ms)`);
            } else if (status === 'failed') {
              report.counts.failed++;
              report.actions.push(`${what}: failed for good (${result.error})`);
            } else {
              report.counts.retrying++;
              report.actions.push(`${what}: will retry (${result.error})`);
            }
          } catch (err) {
            report.errors.push(`webhook delivery ${d.id}: ${(err as Error).message}`);
          }
        }
      }),
    );
  }
  return report;
}

/** Milliseconds until the next pending delivery is due (0 when one is due now), or null when none is pending. */
export async function nextDeliveryDueInMs(db: Db): Promise<number | null> {
  const row = await db
    .selectFrom('webhookDeliveries')
    .select(sql<number | null>`(extract(epoch from min(next_attempt_at) - now()) * 1000)::float8`.as('ms'))
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return row?.ms == null ? null : Math.max(0, row.ms);
}

/** Sends a delivery again as soon as possible, with a new retry window (same webhook-id). False when there is no such delivery. */
export async function redeliver(db: Executor, subscriptionId: number, deliveryId: number): Promise<boolean> {
  const r = await db
    .updateTable('webhookDeliveries')
    .set({ status: 'pending', nextAttemptAt: sql<Date>`now()`, windowStartedAt: sql<Date>`now()`, deliveredAt: null })
    .where('id', '=', deliveryId)
    .where('subscriptionId', '=', subscriptionId)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/**
 * Deletes events (with their deliveries and attempts) older than the retention that have nothing
 * pending, at most `limit` per call; returns how many.
 */
export async function purgeOldEvents(db: Db, retentionDays: number, limit = 1000): Promise<number> {
  const r = await sql`
    DELETE FROM webhook_events WHERE id IN (
      SELECT e.id FROM webhook_events e
       WHERE e.created_at < now() - make_interval(days => ${Math.floor(retentionDays)})
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
       LIMIT ${limit})`.execute(db);
  return Number(r.numAffectedRows ?? 0);
}
