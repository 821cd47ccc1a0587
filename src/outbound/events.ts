/**
 * Outbound webhook events: their types and payloads (which feed the OpenAPI `webhooks`), and the
 * outbox. A fact's code calls one `emit…(trx, …)` inside the transaction that records the fact:
 * the event row (webhook_events) and one delivery per matching active subscription
 * (webhook_deliveries) commit or roll back with it, so no event is lost when the process dies and
 * none exists for a fact that did not happen. The reconciler delivers them (deliveries.ts).
 *
 * A subscription matches an event when it lists the event's type and either has no workflow
 * filter, or the event concerns that workflow, or the event concerns no workflow (annotator
 * events). When no subscription matches, nothing is written. Each event's id (`msg_…`) is the
 * `webhook-id` of every delivery and retry of it; events with a dedupe key (the fact's own key,
 * e.g. the batch id) are written once per fact however often the fact's code runs.
 *
 * Body (Standard Webhooks): `{"type": "<event type>", "timestamp": "<ISO 8601>", "data": {…}}`.
 */
import { randomUUID } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import { sql } from 'kysely';
import type { Executor } from '../db/index.ts';
import { jsonlExportKeyFor } from '../workflows/export.ts';

export const EVENT_TYPES = [
  'batch.completed',
  'batch.failed',
  'item.rejected',
  'item.adjudication_needed',
  'annotator.flagged',
  'annotator.error',
  'catalog.keys_skipped',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

const Ts = z.string().openapi({ format: 'date-time' });

/** The `data` of each event type. */
export const EVENT_DATA = {
  'batch.completed': z
    .object({
      batchId: z.number().int().openapi({ description: 'The assignment id' }),
      workflowId: z.number().int(),
      workflowName: z.string(),
      annotatorId: z.number().int(),
      taskCount: z.number().int(),
      goldTaskCount: z.number().int(),
      completedAt: Ts,
      export: z.object({
        bucket: z.string(),
        jsonKey: z.string().openapi({ description: "Label Studio's JSON export of the batch's real tasks" }),
        jsonlKey: z.string().openapi({ description: 'One line per item (README "Exports")' }),
      }),
    })
    .openapi('BatchCompletedData'),
  'batch.failed': z
    .object({
      batchId: z.number().int(),
      workflowId: z.number().int(),
      annotatorId: z.number().int(),
      error: z.string(),
      failedAt: Ts,
    })
    .openapi('BatchFailedData'),
  'item.rejected': z
    .object({
      rejectionId: z.number().int().nullable(),
      workflowId: z.number().int().openapi({ description: "The reviewer's workflow" }),
      imageKey: z.string(),
      reason: z.string().nullable(),
      actionTaken: z.enum(['none', 'archive', 'route_to_workflow']),
      escalated: z.boolean(),
      reworkIteration: z.number().int(),
      originalAnnotatorId: z.number().int().nullable(),
      originalBatchId: z.number().int().nullable(),
      reviewerAnnotatorId: z.number().int(),
      reviewerBatchId: z.number().int(),
      routedToWorkflowId: z.number().int().nullable(),
    })
    .openapi('ItemRejectedData'),
  'item.adjudication_needed': z
    .object({
      workflowId: z.number().int(),
      imageKey: z.string(),
      itemId: z.number().int(),
      batchIds: z.array(z.number().int()),
      annotatorIds: z.array(z.number().int()),
      agreement: z.number().nullable().openapi({ description: 'Agreement between the overlapping annotations, 0..1' }),
    })
    .openapi('ItemAdjudicationNeededData', {
      description: 'Declared for overlap/consensus (issue 13): sent once items are labeled by several annotators and disagree',
    }),
  'annotator.flagged': z
    .object({
      annotatorId: z.number().int(),
      accuracy: z.number().nullable(),
      evaluationCount: z.number().int(),
      threshold: z.number(),
      minEvaluations: z.number().int(),
      autoAssignPaused: z.boolean(),
    })
    .openapi('AnnotatorFlaggedData'),
  'annotator.error': z
    .object({
      annotatorId: z.number().int(),
      fromStatus: z.string(),
      reason: z.string(),
      at: Ts,
    })
    .openapi('AnnotatorErrorData'),
  'catalog.keys_skipped': z
    .object({
      workflowId: z.number().int(),
      bucket: z.string(),
      prefix: z.string(),
      listing: z.enum(['full', 'incremental']),
      skippedInListing: z.number().int().openapi({ description: 'Keys this listing skipped' }),
      skippedTotal: z.number().int().openapi({ description: "The workflow's catalogSkippedKeys.count after it" }),
      examples: z
        .array(z.object({ key: z.string(), problem: z.enum(['dot_segment', 'control_character']) }))
        .openapi({ description: 'Up to 10 of the keys this listing skipped' }),
    })
    .openapi('CatalogKeysSkippedData', {
      description:
        'A catalog listing found keys a presigned URL cannot address byte-for-byte (README "Batches"); they are not queued. ' +
        'Sent once per distinct set of skipped keys.',
    }),
} satisfies Record<EventType, z.ZodType>;

export type EventData<T extends EventType> = z.input<(typeof EVENT_DATA)[T]>;

/** The webhook body of an event type, for the OpenAPI document. */
export const eventBodySchema = (type: EventType) =>
  z.object({ type: z.literal(type), timestamp: Ts, data: EVENT_DATA[type] }).openapi({ title: type });

export interface OutboundEvent<T extends EventType = EventType> {
  type: T;
  data: EventData<T>;
  /** The workflow the event concerns (subscriptions may filter on it). */
  workflowId?: number | null;
  /** The fact's own key: one event per key, ever. */
  dedupeKey?: string;
  occurredAt?: Date;
}

export const newEventId = () => `msg_${randomUUID().replaceAll('-', '')}`;

/**
 * Writes the event and its deliveries in `trx` (call it in the fact's transaction). Returns the
 * event id, or null when no active subscription wants it (or the dedupe key was seen before).
 */
export async function enqueueOutbound<T extends EventType>(trx: Executor, event: OutboundEvent<T>): Promise<string | null> {
  const id = newEventId();
  const workflowId = event.workflowId ?? null;
  const body = { type: event.type, timestamp: (event.occurredAt ?? new Date()).toISOString(), data: event.data };
  const { rows } = await sql<{ id: string }>`
    WITH subscribers AS (
      SELECT s.id FROM webhook_subscriptions s
       WHERE s.is_active AND ${event.type} = ANY (s.event_types)
         AND (s.workflow_id IS NULL OR ${workflowId}::int IS NULL OR s.workflow_id = ${workflowId}::int)
    ), ev AS (
      INSERT INTO webhook_events (id, type, workflow_id, dedupe_key, payload)
      SELECT ${id}, ${event.type}, ${workflowId}::int, ${event.dedupeKey ?? null}, ${JSON.stringify(body)}::jsonb
       WHERE EXISTS (SELECT 1 FROM subscribers)
      ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
      RETURNING id
    )
    INSERT INTO webhook_deliveries (subscription_id, event_id, next_attempt_at)
    SELECT subscribers.id, ev.id, now() FROM subscribers CROSS JOIN ev
    RETURNING event_id AS id`.execute(trx);
  return rows[0]?.id ?? null;
}

/** batch.completed, in the transaction that completes the batch (src/workflows/complete.ts). */
export async function emitBatchCompleted(trx: Executor, assignmentId: number, exported: { bucket: string; jsonKey: string }) {
  const a = await trx
    .selectFrom('assignments as a')
    .innerJoin('workflows as w', 'w.id', 'a.workflowId')
    .select(['a.id', 'a.workflowId', 'a.annotatorId', 'a.taskCount', 'a.goldTaskCount', 'a.completedAt', 'w.name', 'w.s3ExportPath'])
    .where('a.id', '=', assignmentId)
    .executeTakeFirstOrThrow();
  return enqueueOutbound(trx, {
    type: 'batch.completed',
    workflowId: a.workflowId,
    dedupeKey: `batch.completed:${a.id}`,
    occurredAt: a.completedAt ?? undefined,
    data: {
      batchId: a.id,
      workflowId: a.workflowId,
      workflowName: a.name,
      annotatorId: a.annotatorId,
      taskCount: a.taskCount,
      goldTaskCount: a.goldTaskCount,
      completedAt: (a.completedAt ?? new Date()).toISOString(),
      export: { bucket: exported.bucket, jsonKey: exported.jsonKey, jsonlKey: jsonlExportKeyFor(a.s3ExportPath, a.id) },
    },
  });
}

/** batch.failed, in the transaction that fails the batch (src/workflows/provision.ts failAssignment). */
export async function emitBatchFailed(trx: Executor, assignmentId: number, error: string) {
  const a = await trx.selectFrom('assignments').select(['id', 'workflowId', 'annotatorId', 'updatedAt']).where('id', '=', assignmentId).executeTakeFirstOrThrow();
  return enqueueOutbound(trx, {
    type: 'batch.failed',
    workflowId: a.workflowId,
    dedupeKey: `batch.failed:${a.id}`,
    data: { batchId: a.id, workflowId: a.workflowId, annotatorId: a.annotatorId, error: error.slice(0, 2000), failedAt: new Date(a.updatedAt).toISOString() },
  });
}

/** item.rejected, in the transaction that records the rejection (src/workflows/review.ts), keyed by the reviewer's task. */
export async function emitItemRejected(
  trx: Executor,
  r: {
    review: { taskId: number; assignmentId: number; reviewerAnnotatorId: number; reason: string | null };
    plan: { actionTaken: 'none' | 'archive' | 'route_to_workflow'; escalated: boolean; reworkIteration: number; route: { workflowId: number } | null };
    origin?: { annotatorId: number; assignmentId: number } | undefined;
    workflowId: number;
    imageKey: string;
  },
) {
  const rejection = await trx.selectFrom('rejections').select('id').where('reviewerTaskId', '=', r.review.taskId).executeTakeFirst();
  return enqueueOutbound(trx, {
    type: 'item.rejected',
    workflowId: r.workflowId,
    dedupeKey: `item.rejected:${r.review.taskId}`,
    data: {
      rejectionId: rejection?.id ?? null,
      workflowId: r.workflowId,
      imageKey: r.imageKey,
      reason: r.review.reason,
      actionTaken: r.plan.actionTaken,
      escalated: r.plan.escalated,
      reworkIteration: r.plan.reworkIteration,
      originalAnnotatorId: r.origin?.annotatorId ?? null,
      originalBatchId: r.origin?.assignmentId ?? null,
      reviewerAnnotatorId: r.review.reviewerAnnotatorId,
      reviewerBatchId: r.review.assignmentId,
      routedToWorkflowId: r.plan.route?.workflowId ?? null,
    },
  });
}

/** annotator.flagged, in the transaction that flags the annotator (src/workflows/quality.ts). */
export async function emitAnnotatorFlagged(trx: Executor, data: EventData<'annotator.flagged'>) {
  return enqueueOutbound(trx, { type: 'annotator.flagged', data });
}

/** annotator.error, in the transaction that moves the annotator to `error` (src/workflows/annotators.ts). */
export async function emitAnnotatorError(trx: Executor, annotatorId: number, fromStatus: string, reason: string) {
  return enqueueOutbound(trx, { type: 'annotator.error', data: { annotatorId, fromStatus, reason, at: new Date().toISOString() } });
}

/** catalog.keys_skipped, in the transaction that records the catalog listing (src/workflows/catalog.ts). */
export async function emitCatalogKeysSkipped(trx: Executor, e: { dedupeKey: string; data: EventData<'catalog.keys_skipped'> }) {
  return enqueueOutbound(trx, { type: 'catalog.keys_skipped', workflowId: e.data.workflowId, dedupeKey: e.dedupeKey, data: e.data });
}
