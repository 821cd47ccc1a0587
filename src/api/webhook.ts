/**
 * POST /api/webhook: annotation events from the annotators' Label Studio instances.
 *
 * Label Studio sends each webhook once, with a 1 s timeout, from inside the annotator's own
 * submit, and never retries: this handler authenticates, validates, stores a created or updated
 * annotation in the durable inbox in one INSERT (workflows/inbox.ts) and answers; the inbox's
 * drainer applies it moments later (workflows/ingest.ts) and wakes the reconciler, where
 * exporting, chaining and review effects run. A deletion is applied here, once the inbox has
 * drained. What a webhook never delivered, reconciliation finds.
 *
 * Mounted ahead of the app's middleware chain (app.ts), after the request id only: no session,
 * key, cross-site or rate-limit rule applies to a request that authenticates by its own secret,
 * so their work is spared on the hot path (`npm run bench -- webhooks`). The route
 * applies its own body limit (body-limits.ts), and errors still become `{error, details}` through
 * the app's one error handler; answers carry X-Request-Id but not the browser-hardening headers
 * (Label Studio is not a browser) and are not logged one line per request (the webhook metrics
 * count them: metrics.ts).
 *
 * Auth: X-Annotator-Id and X-Webhook-Secret, compared in constant time with the secret of the
 * annotator's current start (derived from FLEET_SECRET_KEY, never stored). Missing, unknown or
 * wrong → 401 (checked before the body is read). A verified secret is remembered for 5 s, so a
 * restart's new secret or a deletion applies to webhooks within 5 s. A body that is not JSON, lacks what its action
 * needs, or carries a value PostgreSQL would refuse (domain/ls-input.ts: timestamps, ids, seconds,
 * result text) → 400 whose details name the field; nothing is written. ANNOTATIONS_CREATED,
 * TASKS_CREATED and TASKS_DELETED make the project's batches due for comparison with Label Studio at
 * once (compare.ts). Other actions besides ANNOTATION_CREATED, ANNOTATION_UPDATED and
 * ANNOTATIONS_DELETED (or ANNOTATION_DELETED) are acknowledged and ignored. Duplicates → 200, nothing changes.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { canonicalTimestamp, INT4, intProblem, resultProblem, secondsProblem, timestampProblem } from '../domain/ls-input.ts';
import { AppError, badRequest } from '../errors.ts';
import { currentWebhookSecret } from '../labelstudio/instances.ts';
import { metrics, type WebhookAction } from '../metrics.ts';
import { COMPARE_ACTIONS, markForComparison } from '../workflows/compare.ts';
import { webhookInbox } from '../workflows/inbox.ts';
import { fastArgs, ingestEvent, type IngestEvent } from '../workflows/ingest.ts';
import { lingerOnUnreadBody, limitBodies } from './body-limits.ts';
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

/*
 * Strict-shaped (z.object): validated after readPayload has picked the fields read, so there is
 * nothing else to keep, and zod compiles a plain object schema into one fast check (a loose one
 * walks every key).
 */
const AnnotationPayload = z.object({
  id: lsId,
  result: result.nullish(),
  created_at: timestamp.nullish(),
  updated_at: timestamp.nullish(),
  lead_time: seconds.nullish(),
  was_cancelled: z.boolean().nullish(),
  task: lsId.nullish(),
  project: lsId.nullish(),
});

const WebhookPayload = z.object({
  action: z.string().min(1).max(64),
  annotation: AnnotationPayload.nullish(),
  annotations: z.array(z.object({ id: lsId })).max(10_000).nullish(),
  project: z.object({ id: lsId }).nullish(),
  task: z.object({ id: lsId }).nullish(),
});
type Payload = z.infer<typeof WebhookPayload>;
/** ANNOTATIONS_CREATED, TASKS_CREATED, TASKS_DELETED: only the project is read (compare.ts COMPARE_ACTIONS). */
const OtherAction = z.looseObject({ action: z.string(), project: z.looseObject({ id: lsId }).nullish() });

const ANNOTATION_FIELDS = ['id', 'result', 'created_at', 'updated_at', 'lead_time', 'was_cancelled', 'task', 'project'] as const;

/** The named fields of `v` when it is a plain object; anything else as it is (the schema refuses it). */
function pick(v: unknown, keys: readonly string[]): unknown {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return v;
  const out: Record<string, unknown> = {};
  for (const k of keys) if (k in v) out[k] = (v as Record<string, unknown>)[k];
  return out;
}

/**
 * Only what LabelFleet reads of a Label Studio payload, before validation: LS sends the project
 * (its label config, parsed) and the task (its data) with every event, and validating or copying
 * them would cost CPU per event for nothing. What is read is validated in full.
 */
export function readPayload(raw: unknown): unknown {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const r = raw as Record<string, unknown>;
  return {
    action: r.action,
    annotation: pick(r.annotation, ANNOTATION_FIELDS),
    annotations: Array.isArray(r.annotations) ? r.annotations.map((a) => pick(a, ['id'])) : r.annotations,
    project: pick(r.project, ['id']),
    task: pick(r.task, ['id']),
  };
}

const OkSchema = z.object({ ok: z.literal(true) }).openapi('WebhookAck');

/**
 * The one dispatch table: each Label Studio action LabelFleet acts on → what it ingests as. Any
 * other action is acknowledged (200) and ignored, before the rest of its body is validated.
 */
export const ACTIONS: Readonly<Record<string, IngestEvent['action']>> = {
  ANNOTATION_CREATED: 'ANNOTATION_CREATED',
  ANNOTATION_UPDATED: 'ANNOTATION_UPDATED',
  ANNOTATIONS_DELETED: 'ANNOTATIONS_DELETED',
  ANNOTATION_DELETED: 'ANNOTATIONS_DELETED',
};
const handled = (action: unknown): action is string => typeof action === 'string' && Object.hasOwn(ACTIONS, action);

const digest = (s: string) => createHash('sha256').update(s).digest();
const DUMMY = digest('labelfleet:no-such-annotator');
export const AUTH_CACHE_MS = 5_000;

/** Turns a validated payload into the event to ingest, or a 400. */
export function toIngestEvent(annotatorId: number, p: Payload): IngestEvent {
  const lsProjectId = p.annotation?.project ?? p.project?.id ?? null;
  const kind = ACTIONS[p.action];
  if (!kind) throw badRequest('Validation failed', [{ path: ['action'], message: 'not an action LabelFleet ingests' }]);
  if (kind === 'ANNOTATIONS_DELETED') {
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
    action: kind,
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

/**
 * The body as text. With a declared Content-Length (what Label Studio sends; body-limits.ts has
 * checked it) straight from the Node request: the web Request/stream the adapter would build for
 * c.req.json() costs more CPU than the rest of a webhook. Otherwise (chunked, counted by
 * body-limits.ts; or no Node request) through the web Request.
 */
async function readBodyText(c: Context): Promise<string> {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (!incoming || c.req.header('transfer-encoding') !== undefined || incoming.readableEnded || incoming.readableFlowing !== null) return c.req.text();
  const chunks: Buffer[] = [];
  for await (const chunk of incoming) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  // As TextDecoder (c.req.text) does: a byte order mark is not part of the JSON.
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export function webhookRoutes(ctx: AppContext) {
  const app = createRouter();
  // Mounted ahead of the app's chain (app.ts), so the body rules are the route's own to apply.
  app.use('/webhook', lingerOnUnreadBody(), limitBodies());
  const { db } = ctx.database;
  const inbox = webhookInbox(ctx);
  // What a previous process acknowledged and did not apply (a crash, a restart).
  void inbox.drain().catch(() => {});

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
        'Body: the Label Studio webhook payload {action, annotation{id, result, created_at, updated_at, lead_time, was_cancelled, task, project}, project{id}, task{id}}; ANNOTATIONS_DELETED carries annotations[{id}]. Idempotent: a duplicate changes nothing. A created or updated annotation is stored durably before the 200 and applied moments later, in arrival order.',
      responses: {
        200: jsonContent(OkSchema, 'Stored (applied moments later), or a duplicate, or an action LabelFleet ignores'),
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
          raw = JSON.parse(await readBodyText(c));
        } catch {
          throw badRequest('Malformed JSON body');
        }
        const rawAction = (raw as { action?: unknown } | null)?.action;
        // Actions that change tasks or annotations without a payload we ingest: compare now.
        if (typeof rawAction === 'string' && COMPARE_ACTIONS.has(rawAction)) {
          const other = OtherAction.safeParse(raw);
          if (!other.success) throw badRequest('Validation failed', other.error.issues);
          const due = await markForComparison(db, annotatorId, other.data.project?.id ?? null);
          if (due) ctx.wake(`webhook: ${other.data.action}, compare with Label Studio`);
          return c.json({ ok: true as const }, 200);
        }
        // Actions LabelFleet does not handle are acknowledged and ignored, whatever else they carry.
        if (typeof rawAction === 'string' && rawAction.length >= 1 && rawAction.length <= 64 && !handled(rawAction)) {
          return c.json({ ok: true as const }, 200);
        }
        const parsed = WebhookPayload.safeParse(readPayload(raw));
        if (!parsed.success) throw badRequest('Validation failed', parsed.error.issues);
        const p = parsed.data;
        action = p.action as WebhookAction;
        const ev = toIngestEvent(annotatorId, p);
        if (ev.annotation) {
          // Durable before the 200; applied (and counted in the metrics) by the drainer.
          await inbox.append(fastArgs(ev, ev.annotation));
          return c.json({ ok: true as const }, 200);
        }
        // A deletion is applied here, after every event acknowledged before it.
        await inbox.drain();
        const out = await ingestEvent(db, ev);
        metrics.webhookEvents.inc({ action, result: out.recorded ? 'recorded' : 'duplicate' });
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
