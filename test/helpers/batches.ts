/**
 * Fixtures for batch tests: a role, a labeling config, workflows, active annotators and queued
 * items, written straight to the database (what the admin API would have written).
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { NewWorkflow } from '../../src/db/types.ts';
import { currentWebhookSecret } from '../../src/labelstudio/instances.ts';
import { assignBatch } from '../../src/workflows/assign.ts';
import { webhookInbox } from '../../src/workflows/inbox.ts';
import type { TestService } from './service.ts';

export const IMAGE_CONFIG = `<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single" required="true">
    <Choice value="cat"/><Choice value="dog"/>
  </Choices>
  <RectangleLabels name="box" toName="image"><Label value="car"/><Label value="person"/></RectangleLabels>
</View>`;

export const REVIEW_CONFIG = `<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image"><Choice value="cat"/><Choice value="dog"/></Choices>
  <RectangleLabels name="box" toName="image"><Label value="car"/><Label value="person"/></RectangleLabels>
  <Choices name="review_decision" toName="image" choice="single" required="true">
    <Choice value="accept"/><Choice value="reject"/>
  </Choices>
  <TextArea name="review_reason" toName="image" editable="true"/>
</View>`;

const suffix = () => randomBytes(4).toString('hex');

export async function seedRole(t: TestService, name = `role-${suffix()}`) {
  return t.db.insertInto('roles').values({ name }).returningAll().executeTakeFirstOrThrow();
}

export async function seedConfig(t: TestService, configXml = IMAGE_CONFIG) {
  return t.db.insertInto('labelingConfigs').values({ name: `config-${suffix()}`, configXml }).returningAll().executeTakeFirstOrThrow();
}

export async function seedWorkflow(t: TestService, values: Partial<NewWorkflow> & { labelingConfigId: number }) {
  return t.db
    .insertInto('workflows')
    .values({ name: `workflow-${suffix()}`, s3SourcePath: `src-${suffix()}/`, s3ExportPath: `exports-${suffix()}/`, ...values })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function seedAnnotator(
  t: TestService,
  values: { roleId: number | null; status?: 'active' | 'created' | 'stopped' | 'deleted'; port?: number; token?: string; name?: string },
) {
  const s = suffix();
  return t.db
    .insertInto('annotators')
    .values({
      name: values.name ?? `Annotator ${s}`,
      email: `a-${s}@example.com`,
      subdomain: `a-${s}`,
      roleId: values.roleId,
      status: values.status ?? 'active',
      containerIp: values.port ? '127.0.0.1' : null,
      containerPort: values.port ?? null,
      apiTokenEnc: values.token ? t.ctx.secrets.encrypt(values.token) : null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Queued catalog items `<prefix>img-00000.png` ... for a workflow, in one statement. */
export async function seedItems(t: TestService, workflowId: number, count: number, prefix = 'img/') {
  await sql`
    INSERT INTO work_items (workflow_id, image_key, source, priority)
    SELECT ${workflowId}, ${prefix} || 'img-' || lpad(g::text, 6, '0') || '.png', 'catalog', 2 FROM generate_series(0, ${count - 1}) g`.execute(t.db);
}

export async function seedGold(t: TestService, labelingConfigId: number, n: number, expected = [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['cat'] } }]) {
  const rows = [];
  for (let i = 0; i < n; i++) {
    rows.push(
      await t.db
        .insertInto('goldTasks')
        .values({ name: `Gold ${i}`, s3ImageKey: `gold/${suffix()}-${i}.png`, expectedLabels: JSON.stringify(expected), labelingConfigId })
        .returningAll()
        .executeTakeFirstOrThrow(),
    );
  }
  return rows;
}

/**
 * Waits until the webhooks acknowledged so far are applied: POST /api/webhook answers once the
 * event is stored in the inbox, and the service's drainer applies it moments later
 * (src/workflows/inbox.ts) — what anyone reading the state right after a webhook waits for. Waits
 * for the drain the webhook started; applies nothing itself.
 */
export async function webhooksApplied(t: Pick<TestService, 'ctx'>): Promise<void> {
  await webhookInbox(t.ctx).idle();
}

export function webhookHeaders(t: TestService, annotator: { id: number; startGeneration: number }) {
  return { 'x-annotator-id': String(annotator.id), 'x-webhook-secret': currentWebhookSecret(t.ctx, annotator) };
}

/**
 * Marks a batch as provisioning would: in progress in Label Studio project `lsProjectId`, task i
 * (by position) with Label Studio id lsProjectId × 100 + i. Returns its tasks in position order.
 */
export async function markProvisioned(t: TestService, assignmentId: number, lsProjectId: number) {
  await t.db.updateTable('assignments').set({ status: 'in_progress', lsProjectId }).where('id', '=', assignmentId).execute();
  const tasks = await t.db.selectFrom('assignmentTasks').selectAll().where('assignmentId', '=', assignmentId).orderBy('position').execute();
  for (const [i, task] of tasks.entries()) {
    await t.db.updateTable('assignmentTasks').set({ lsTaskId: lsProjectId * 100 + i }).where('id', '=', task.id).execute();
  }
  return tasks;
}

/**
 * An in-progress batch for `annotatorId` of `real` queued images and `gold` gold tasks, in a new
 * workflow and config, as if set up in Label Studio project `lsProjectId` (task i gets Label Studio
 * id lsProjectId × 100 + i). Returns the ids a webhook test sends: every task's Label Studio id,
 * the gold and real ones apart, and the fleet's task ids.
 */
export async function seedInProgressBatch(t: TestService, o: { annotatorId: number; lsProjectId: number; real: number; gold?: number; prefix: string }) {
  const gold = o.gold ?? 0;
  const config = await seedConfig(t);
  const wf = await seedWorkflow(t, {
    labelingConfigId: config.id,
    imagesPerProject: o.real + gold,
    goldStandardRate: gold ? gold / (o.real + gold) : 0,
    shuffleImages: false,
  });
  await seedItems(t, wf.id, o.real, `${o.prefix}-${wf.id}/`);
  if (gold) await seedGold(t, config.id, gold);
  const r = await assignBatch(t.db, { workflowId: wf.id, annotatorId: o.annotatorId, seed: 1 });
  if (!r.ok) throw new Error(r.message);
  const { lsProjectId } = o;
  const tasks = await markProvisioned(t, r.assignment.id, lsProjectId);
  return {
    assignmentId: r.assignment.id,
    lsProjectId,
    lsTaskIds: tasks.map((_, i) => lsProjectId * 100 + i),
    taskIds: tasks.map((task) => task.id),
    gold: tasks.flatMap((task, i) => (task.isGold ? [lsProjectId * 100 + i] : [])),
    real: tasks.flatMap((task, i) => (task.isGold ? [] : [lsProjectId * 100 + i])),
  };
}
