/**
 * Provisioning: pending → in_progress. For one batch, in the annotator's Label Studio:
 *
 * 1. the project — found again by its title (`#<assignment id> · <workflow>`) and the key
 *    `[labelfleet:assignment=<id>]` in its description, else created with the workflow's labeling
 *    config XML; its id is recorded at once, so a crash after creating it never makes a second;
 * 2. the webhook to FLEET_CALLBACK_URL/api/webhook with headers X-Annotator-Id and
 *    X-Webhook-Secret (the secret of the annotator's current start), send_for_all_actions false
 *    and the actions in WEBHOOK_ACTIONS — updated in place when it exists (a restarted annotator
 *    has a new secret: see rotateWebhooks);
 * 3. the tasks not imported yet — tasks already in the project are matched by their meta
 *    (`labelfleet.task` = our task id), so a retried import adds only what is missing — with
 *    presigned GET URLs of the images (batches.presignTtlSeconds, ≤ 7 days) and, for chained
 *    items, the upstream annotation as a prediction;
 * 4. status in_progress.
 * Each step is idempotent; a failure leaves the batch pending with its error and provision_attempts
 * counted, and the next pass resumes. Past batches.provisionTimeoutMinutes the batch fails and its
 * images are released for other batches.
 */
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import type { Annotator, Assignment } from '../db/types.ts';
import { configNames, projectKey, taskDataKey } from '../domain/task-data.ts';
import { LabelStudioError, type LabelStudioClient, type LsImportTask, type LsTask } from '../labelstudio/client.ts';
import { currentWebhookSecret, InstanceUnavailable, labelStudioFor } from '../labelstudio/instances.ts';
import { importChunks, importTask, projectPayload } from '../labelstudio/limits.ts';
import { getSetting } from '../settings.ts';
import { predictionsFor } from './consensus.ts';
import { fleetBucket, storageFor } from '../storage/s3.ts';
import { emitBatchFailed } from '../outbound/events.ts';
import { faultPoint } from '../fault-point.ts';

/**
 * Every Label Studio action that can change a batch's annotations or tasks (label-studio 1.23.2,
 * webhooks/models.py WebhookAction): ANNOTATIONS_CREATED is "create annotations from
 * predictions"; TASKS_DELETED is the only word of a task deleted in the Data Manager.
 */
export const WEBHOOK_ACTIONS = [
  'ANNOTATION_CREATED',
  'ANNOTATIONS_CREATED',
  'ANNOTATION_UPDATED',
  'ANNOTATIONS_DELETED',
  'TASKS_CREATED',
  'TASKS_DELETED',
];

export const webhookUrl = (ctx: Pick<AppContext, 'config'>) => `${ctx.config.FLEET_CALLBACK_URL.replace(/\/+$/, '')}/api/webhook`;

/** Our assignment task id from a Label Studio task's meta, if it is one of ours. */
export function fleetTaskId(task: Pick<LsTask, 'meta'>): number | null {
  const v = (task.meta as { labelfleet?: { task?: unknown } } | null | undefined)?.labelfleet?.task;
  return typeof v === 'number' && Number.isInteger(v) ? v : null;
}

/** Creates or updates the batch project's webhook so it carries the annotator's current secret. */
export async function ensureWebhook(
  ctx: AppContext,
  client: LabelStudioClient,
  projectId: number,
  annotator: Pick<Annotator, 'id' | 'startGeneration'>,
): Promise<number> {
  const url = webhookUrl(ctx);
  const desired = {
    project: projectId,
    url,
    send_payload: true,
    send_for_all_actions: false,
    actions: WEBHOOK_ACTIONS,
    headers: { 'X-Annotator-Id': String(annotator.id), 'X-Webhook-Secret': currentWebhookSecret(ctx, annotator) },
    is_active: true,
  };
  const existing = (await client.listWebhooks(projectId)).filter((w) => w.project === projectId && w.url === url);
  const [keep, ...extra] = existing;
  for (const w of extra) await client.deleteWebhook(w.id);
  if (!keep) {
    try {
      return (await client.createWebhook(desired)).id;
    } catch (err) {
      if (err instanceof LabelStudioError && err.status === 403 && /reserved network/i.test(err.message)) {
        throw new Error(
          `Label Studio refuses the webhook URL ${url} (SSRF protection: it resolves to a private or loopback address); ` +
            'run the instance with USE_DEFAULT_BANNED_SUBNETS=false (or SSRF_PROTECTION_ENABLED=false)',
        );
      }
      throw err;
    }
  }
  const same =
    keep.is_active &&
    !keep.send_for_all_actions &&
    keep.send_payload &&
    [...keep.actions].sort().join() === [...WEBHOOK_ACTIONS].sort().join() &&
    keep.headers?.['X-Annotator-Id'] === desired.headers['X-Annotator-Id'] &&
    keep.headers?.['X-Webhook-Secret'] === desired.headers['X-Webhook-Secret'];
  if (!same) await client.updateWebhook(keep.id, desired);
  return keep.id;
}

async function ensureProject(ctx: AppContext, client: LabelStudioClient, a: Assignment, workflowName: string, configXml: string, taskCount: number) {
  if (a.lsProjectId !== null) {
    try {
      const p = await client.getProject(a.lsProjectId);
      if ((p.description ?? '').includes(projectKey(a.id))) return p.id;
    } catch (err) {
      if (!(err instanceof LabelStudioError && err.status === 404)) throw err;
    }
  }
  const found = (await client.findProjects(`#${a.id} ·`)).find((p) => (p.description ?? '').includes(projectKey(a.id)));
  const id =
    found?.id ??
    (
      await client.createProject(projectPayload({ assignmentId: a.id, workflowName, taskCount, configXml }))
    ).id;
  // Chaos suite: the project exists in Label Studio, its id is not recorded yet.
  faultPoint('provision:project-created');
  await ctx.database.db.updateTable('assignments').set({ lsProjectId: id, updatedAt: new Date() }).where('id', '=', a.id).execute();
  return id;
}

export type ProvisionOutcome = 'provisioned' | 'waiting' | 'failed' | 'skipped';

/** Fails a batch and releases its images to the queue, in one transaction. */
export async function failAssignment(ctx: AppContext, assignmentId: number, error: string, from: string[] = ['pending']) {
  await ctx.database.db.transaction().execute(async (trx) => {
    const failed = await trx
      .updateTable('assignments')
      .set({ status: 'failed', error: error.slice(0, 2000), updatedAt: new Date() })
      .where('id', '=', assignmentId)
      .where('status', 'in', from as never[])
      .executeTakeFirst();
    if (!Number(failed.numUpdatedRows)) return;
    await trx
      .updateTable('workItems')
      .set({ status: 'queued', assignmentId: null, updatedAt: new Date() })
      .where('assignmentId', '=', assignmentId)
      .where('status', '=', 'reserved')
      .execute();
    await emitBatchFailed(trx, assignmentId, error);
  });
}

export async function provisionAssignment(ctx: AppContext, assignmentId: number): Promise<{ outcome: ProvisionOutcome; message?: string }> {
  const { db } = ctx.database;
  const a = await db.selectFrom('assignments').selectAll().where('id', '=', assignmentId).executeTakeFirst();
  if (!a || a.status !== 'pending') return { outcome: 'skipped' };
  const [workflow, annotator] = await Promise.all([
    db.selectFrom('workflows').selectAll().where('id', '=', a.workflowId).executeTakeFirstOrThrow(),
    db.selectFrom('annotators').selectAll().where('id', '=', a.annotatorId).executeTakeFirstOrThrow(),
  ]);
  const timeoutMs = Number(await getSetting(db, 'batches.provisionTimeoutMinutes')) * 60_000;
  const expired = Date.now() - a.createdAt.getTime() > timeoutMs;

  if (annotator.status === 'deleted') {
    await failAssignment(ctx, a.id, 'annotator deleted');
    return { outcome: 'failed', message: 'annotator deleted' };
  }
  const config = workflow.labelingConfigId
    ? await db.selectFrom('labelingConfigs').select('configXml').where('id', '=', workflow.labelingConfigId).executeTakeFirst()
    : undefined;
  if (!config) {
    await failAssignment(ctx, a.id, 'workflow has no labeling config');
    return { outcome: 'failed', message: 'workflow has no labeling config' };
  }

  try {
    const client = labelStudioFor(ctx, annotator);
    const projectId = await ensureProject(ctx, client, a, workflow.name, config.configXml, a.taskCount);
    const webhookId = await ensureWebhook(ctx, client, projectId, annotator);
    await db
      .updateTable('assignments')
      .set({ lsWebhookId: webhookId, webhookGeneration: annotator.startGeneration, updatedAt: new Date() })
      .where('id', '=', a.id)
      .execute();
    await importTasks(ctx, client, a.id, projectId, config.configXml);
    // Chaos suite: every task is in Label Studio, the batch is still pending.
    faultPoint('provision:tasks-imported');
    const done = await db
      .updateTable('assignments')
      .set({ status: 'in_progress', startedAt: new Date(), error: null, updatedAt: new Date() })
      .where('id', '=', a.id)
      .where('status', '=', 'pending')
      .executeTakeFirst();
    return { outcome: Number(done.numUpdatedRows) ? 'provisioned' : 'skipped' };
  } catch (err) {
    const message = (err as Error).message;
    await db
      .updateTable('assignments')
      .set({ provisionAttempts: sql`provision_attempts + 1`, error: message.slice(0, 2000), updatedAt: new Date() })
      .where('id', '=', a.id)
      .where('status', '=', 'pending')
      .execute();
    if (expired) {
      await failAssignment(ctx, a.id, `not set up in Label Studio within the provisioning timeout: ${message}`);
      return { outcome: 'failed', message };
    }
    if (err instanceof InstanceUnavailable) return { outcome: 'waiting', message };
    throw err;
  }
}

async function importTasks(ctx: AppContext, client: LabelStudioClient, assignmentId: number, projectId: number, configXml: string) {
  const { db } = ctx.database;
  const tasks = await db
    .selectFrom('assignmentTasks as t')
    .leftJoin('workItems as w', 'w.id', 't.workItemId')
    .select(['t.id', 't.s3ImageKey', 't.lsTaskId', 't.position', 'w.prediction'])
    .where('t.assignmentId', '=', assignmentId)
    .orderBy('t.position')
    .execute();
  let missing = tasks.filter((t) => t.lsTaskId === null);
  if (!missing.length) return;

  // Tasks a previous, interrupted attempt imported: match them by meta, import only the rest.
  const inProject = await client.exportTasks(projectId, { all: true });
  const byFleetId = new Map<number, number>();
  for (const t of inProject) {
    const fid = fleetTaskId(t);
    if (fid !== null) byFleetId.set(fid, t.id);
  }
  const found = missing.filter((t) => byFleetId.has(t.id)).map((t) => ({ id: t.id, lsTaskId: byFleetId.get(t.id)! }));
  await recordLsTaskIds(ctx, found);
  missing = missing.filter((t) => !byFleetId.has(t.id));
  if (!missing.length) return;

  const bucket = await fleetBucket(db, ctx.config);
  const storage = storageFor(ctx.config);
  const ttl = Number(await getSetting(db, 'batches.presignTtlSeconds'));
  const dataKey = taskDataKey(configXml);
  const names = configNames(configXml);
  const payload: LsImportTask[] = [];
  for (const t of missing) {
    payload.push(
      importTask({
        dataKey,
        imageUrl: await storage.presignGet(bucket, t.s3ImageKey, ttl),
        fleetTaskId: t.id,
        // The upstream annotation; for an adjudication item, each annotator's (issue 13, consensus.ts).
        predictions: predictionsFor(t.prediction, names),
      }),
    );
  }
  // In chunks within Label Studio's request limit; each chunk's ids are recorded at once, so a
  // failure in a later chunk leaves the earlier ones found by meta on the retry.
  let sent = 0;
  for (const chunk of importChunks(payload)) {
    const res = await client.importTasks(projectId, chunk);
    const ids = res.task_ids ?? [];
    if (ids.length !== chunk.length) {
      throw new Error(`Label Studio imported ${res.task_count} tasks (ids: ${ids.length}) for ${chunk.length} sent`);
    }
    await recordLsTaskIds(
      ctx,
      missing.slice(sent, sent + chunk.length).map((t, i) => ({ id: t.id, lsTaskId: ids[i]! })),
    );
    sent += chunk.length;
  }
}

async function recordLsTaskIds(ctx: AppContext, rows: { id: number; lsTaskId: number }[]) {
  if (!rows.length) return;
  await sql`
    UPDATE assignment_tasks t SET ls_task_id = v.ls_task_id, updated_at = now()
      FROM unnest(${rows.map((r) => r.id)}::int[], ${rows.map((r) => r.lsTaskId)}::int[]) AS v(id, ls_task_id)
     WHERE t.id = v.id`.execute(ctx.database.db);
}

/**
 * A restarted annotator presents a new webhook secret: the webhooks of its batches in progress
 * are updated to it (webhooks refused meanwhile are found by the comparison with Label Studio).
 */
/** Updates stale webhooks (all, or of the batches `ids`). */
export async function rotateWebhooks(ctx: AppContext, ids?: number[]): Promise<{ updated: number; errors: string[] }> {
  const { db } = ctx.database;
  const stale = await db
    .selectFrom('assignments as a')
    .innerJoin('annotators as n', 'n.id', 'a.annotatorId')
    .selectAll('a')
    .select(['n.startGeneration as generation'])
    .where('a.status', '=', 'in_progress')
    .where('n.status', '=', 'active')
    .where('a.lsProjectId', 'is not', null)
    .where((eb) => eb.or([eb('a.webhookGeneration', 'is', null), eb('a.webhookGeneration', '<>', eb.ref('n.startGeneration'))]))
    .$if(ids !== undefined, (q) => q.where('a.id', 'in', ids!.length ? ids! : [0]))
    .execute();
  let updated = 0;
  const errors: string[] = [];
  for (const a of stale) {
    try {
      const annotator = await db.selectFrom('annotators').selectAll().where('id', '=', a.annotatorId).executeTakeFirstOrThrow();
      const client = labelStudioFor(ctx, annotator);
      const webhookId = await ensureWebhook(ctx, client, a.lsProjectId!, annotator);
      await db
        .updateTable('assignments')
        .set({ lsWebhookId: webhookId, webhookGeneration: annotator.startGeneration, lsCheckedAt: null, updatedAt: new Date() })
        .where('id', '=', a.id)
        .execute();
      updated++;
    } catch (err) {
      errors.push(`assignment ${a.id}: webhook not updated: ${(err as Error).message}`);
    }
  }
  return { updated, errors };
}
