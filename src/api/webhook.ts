/**
 * POST /api/webhook: annotation events from the annotators' Label Studio instances.
 *
 * Label Studio sends each webhook once, with a 1 s timeout, from inside the annotator's own
 * submit, and never retries: this handler authenticates, records the fact in one short
 * transaction (workflows/ingest.ts) and answers; exporting, chaining and review effects run in
 * the reconciler, woken here. What a webhook never delivered, reconciliation finds.
 *
 * Auth: X-Annotator-Id and X-Webhook-Secret, compared in constant time with the secret of the
 * annotator's current start (derived from FLEET_SECRET_KEY, never stored). Missing, unknown or
 * wrong → 401 (checked before the body is read). A verified secret is remembered for 5 s, so a
 * restart's new secret or a deletion applies to webhooks within 5 s. A body that is not JSON, lacks what its action
 * needs, or carries a value PostgreSQL would refuse (domain/ls-input.ts: timestamps, ids, seconds,
 * result text) → 400 whose details name the field; nothing is written. Actions other than ANNOTATION_CREATED, ANNOTATION_UPDATED and ANNOTATIONS_DELETED
 * (or ANNOTATION_DELETED) are acknowledged and ignored. Duplicates → 200, nothing changes.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { canonicalTimestamp, INT4, intProblem, resultProblem, secondsProblem, timestampProblem } from '../domain/ls-input.ts';
import { AppError, badRequest } from '../errors.ts';
import { currentWebhookSecret } from '../labelstudio/instances.ts';
import { metrics, type WebhookAction } from '../metrics.ts';
import { ingestEvent, type IngestEvent } from '../workflows/ingest.ts';
import { errors, jsonContent } from './common.ts';
import { createRouter } from './router.ts';

/*
 * Every value that reaches the database goes through one checker per kind (domain/ls-input.ts),
 * so what PostgreSQL would refuse is a 400 naming the field, never a 500.
 */
const checked = <T extends z.ZodType>(schema: T, problem: (v: unknown) => string | null) =>
  schema.superRefine((v, ctx) => {
    const p = problem(v);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  });
/** Label Studio ids (annotation, task, project): PostgreSQL integer columns, positive. */
const lsId = checked(z.number(), (v) => intProblem(v, { min: 1, max: INT4.max }));
const timestamp = checked(z.string(), timestampProblem).transform(canonicalTimestamp);
const seconds = checked(z.number(), secondsProblem);
const result = z.array(z.looseObject({})).superRefine((v, ctx) => {
  const p = resultProblem(v);
  if (p) ctx.addIssue({ code: 'custom', message: p });
});

const AnnotationPayload = z.looseObject({
  id: lsId,
  result: result.nullish(),
  created_at: timestamp.nullish(),
  updated_at: timestamp.nullish(),
  lead_time: seconds.nullish(),
  was_cancelled: z.boolean().nullish(),
  task: lsId.nullish(),
  project: lsId.nullish(),
});

const WebhookPayload = z.looseObject({
  action: z.string().min(1).max(64),
  annotation: AnnotationPayload.nullish(),
  annotations: z.array(z.looseObject({ id: lsId })).max(10_000).nullish(),
  project: z.looseObject({ id: lsId }).nullish(),
  task: z.looseObject({ id: lsId }).nullish(),
});
type Payload = z.infer<typeof WebhookPayload>;

const OkSchema = z.object({ ok: z.literal(true) }).openapi('WebhookAck');

const HANDLED = new Set(['ANNOTATION_CREATED', 'ANNOTATION_UPDATED', 'ANNOTATIONS_DELETED', 'ANNOTATION_DELETED']);

const digest = (s: string) => createHash('sha256').update(s).digest();
const DUMMY = digest('labelfleet:no-such-annotator');
export const AUTH_CACHE_MS = 5_000;

/** Turns a validated payload into the event to ingest, or a 400. */
export function toIngestEvent(annotatorId: number, p: Payload): IngestEvent {
  const lsProjectId = p.annotation?.project ?? p.project?.id ?? null;
  if (p.action === 'ANNOTATIONS_DELETED' || p.action === 'ANNOTATION_DELETED') {
    const ids = p.annotations?.map((a) => a.id) ?? (p.annotation ? [p.annotation.id] : []);
    if (!ids.length) throw badRequest('Validation failed', [{ path: ['annotations'], message: 'deleted annotation ids are required' }]);
    return { annotatorId, action: 'ANNOTATIONS_DELETED', source: 'webhook', lsProjectId, lsTaskId: p.task?.id ?? null, deletedIds: ids };
  }
  const a = p.annotation;
  if (!a) throw badRequest('Validation failed', [{ path: ['annotation'], message: 'annotation is required' }]);
  const lsTaskId = a.task ?? p.task?.id ?? null;
  if (lsTaskId === null) throw badRequest('Validation failed', [{ path: ['annotation', 'task'], message: 'task id is required' }]);
  if (lsProjectId === null) throw badRequest('Validation failed', [{ path: ['project', 'id'], message: 'project id is required' }]);
  return {
    annotatorId,
    action: p.action as 'ANNOTATION_CREATED' | 'ANNOTATION_UPDATED',
    source: 'webhook',
    lsProjectId,
    lsTaskId,
    annotation: {
      id: a.id,
      result: a.result ?? [],
      updatedAt: a.updated_at ?? a.created_at ?? null,
      leadTime: a.lead_time ?? null,
      wasCancelled: a.was_cancelled ?? false,
    },
  };
}

export function webhookRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  /**
   * Verified secrets, briefly: a hit spares the annotator lookup on the hot path. Only successes
   * are cached, for AUTH_CACHE_MS; a mismatch always re-reads the annotator, so a restart (new
   * secret) or a deletion takes effect within that time at most.
   */
  const verified = new Map<number, { digest: Buffer; until: number }>();

  /** The annotator id whose current secret the request presents, or a 401. Constant time. */
  async function authenticate(idHeader: string | undefined, secret: string | undefined): Promise<number> {
    const id = idHeader && /^[1-9][0-9]{0,9}$/.test(idHeader) && Number(idHeader) <= 2_147_483_647 ? Number(idHeader) : null;
    const presentedDigest = digest(secret ?? '');
    const cached = id === null ? undefined : verified.get(id);
    if (cached && cached.until > Date.now() && secret && timingSafeEqual(cached.digest, presentedDigest)) return id!;
    const annotator =
      id === null
        ? undefined
        : await db.selectFrom('annotators').select(['id', 'status', 'startGeneration']).where('id', '=', id).executeTakeFirst();
    const expected = annotator && annotator.status !== 'deleted' ? digest(currentWebhookSecret(ctx, annotator)) : DUMMY;
    const matches = timingSafeEqual(expected, presentedDigest);
    if (!matches || !annotator || annotator.status === 'deleted' || !secret) throw new AppError(401, 'Unauthorized');
    if (verified.size >= 10_000) verified.clear();
    verified.set(annotator.id, { digest: expected, until: Date.now() + AUTH_CACHE_MS });
    return annotator.id;
  }

  app.openapi(
    createRoute({
      method: 'post',
      path: '/webhook',
      tags: ['webhook'],
      summary: 'Label Studio annotation events (X-Annotator-Id + X-Webhook-Secret; no session)',
      description:
        'Body: the Label Studio webhook payload {action, annotation{id, result, created_at, updated_at, lead_time, was_cancelled, task, project}, project{id}, task{id}}; ANNOTATIONS_DELETED carries annotations[{id}]. Idempotent: a duplicate changes nothing.',
      responses: {
        200: jsonContent(OkSchema, 'Recorded (or a duplicate, or an action LabelFleet ignores)'),
        400: errors[400],
        401: errors[401],
      },
    }),
    async (c) => {
      const started = performance.now();
      let action: WebhookAction = 'other';
      try {
        const annotatorId = await authenticate(c.req.header('x-annotator-id'), c.req.header('x-webhook-secret'));
        let raw: unknown;
        try {
          raw = await c.req.json();
        } catch {
          throw badRequest('Malformed JSON body');
        }
        const parsed = WebhookPayload.safeParse(raw);
        if (!parsed.success) throw badRequest('Validation failed', parsed.error.issues);
        const p = parsed.data;
        if (HANDLED.has(p.action)) action = p.action as WebhookAction;
        // Actions LabelFleet does not handle are acknowledged and ignored.
        if (!HANDLED.has(p.action)) return c.json({ ok: true as const }, 200);
        const out = await ingestEvent(db, toIngestEvent(annotatorId, p));
        metrics.webhookEvents.inc({ action, result: out.recorded ? 'recorded' : 'duplicate' });
        if (out.readyAssignmentIds.length || out.reviewRecorded) {
          ctx.wake(`webhook: ${out.readyAssignmentIds.length ? `batch ${out.readyAssignmentIds.join(',')} annotated` : 'review decision'}`);
        }
        return c.json({ ok: true as const }, 200);
      } catch (err) {
        const status = err instanceof AppError ? err.status : 500;
        metrics.webhookEvents.inc({ action, result: status === 401 ? 'unauthorized' : status < 500 ? 'invalid' : 'error' });
        if (status >= 500) metrics.errors.inc({ source: 'webhook' });
        throw err;
      } finally {
        metrics.webhookLatency.observe((performance.now() - started) / 1000);
      }
    },
  );

  return app;
}
