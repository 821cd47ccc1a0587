/** Fixtures for outbound-webhook tests: subscriptions through the API, and facts recorded as the fleet records them. */
import { sql } from 'kysely';
import { emitBatchCompleted } from '../../src/outbound/events.ts';
import { exportKeyFor } from '../../src/workflows/complete.ts';
import { seedAnnotator, seedConfig, seedRole, seedWorkflow } from './batches.ts';
import type { TestService } from './service.ts';

export const TEST_BUCKET = 'lf-outbound';

/** Settings for fast, local deliveries: loopback allowed, 1 s backoff base, 2 s attempt timeout. */
export async function localWebhookSettings(db: TestService['db'], extra: Record<string, unknown> = {}) {
  const values = { 'webhooks.allowedNetworks': ['127.0.0.0/8'], 'webhooks.retryBaseSeconds': 1, 'webhooks.timeoutSeconds': 2, ...extra };
  for (const [key, value] of Object.entries(values)) {
    await db
      .insertInto('settings')
      .values({ key, value: JSON.stringify(value) })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value: JSON.stringify(value) }))
      .execute();
  }
}

/** A workflow and an active annotator to hang batches on. */
export async function seedPipeline(t: TestService) {
  const role = await seedRole(t);
  const config = await seedConfig(t);
  const workflow = await seedWorkflow(t, { labelingConfigId: config.id, roleId: role.id });
  const annotator = await seedAnnotator(t, { roleId: role.id });
  return { role, config, workflow, annotator };
}

/**
 * A batch completed exactly as src/workflows/complete.ts completes one: in one transaction, the
 * assignment becomes completed with its export key and batch.completed is written to the outbox.
 */
export async function completeBatchFact(t: TestService, workflow: { id: number; s3ExportPath: string }, annotatorId: number) {
  const a = await t.db
    .insertInto('assignments')
    .values({ workflowId: workflow.id, annotatorId, status: 'in_progress', taskCount: 3, lsProjectId: 1 })
    .returning('id')
    .executeTakeFirstOrThrow();
  const jsonKey = exportKeyFor(workflow.s3ExportPath, a.id);
  await t.db.transaction().execute(async (trx) => {
    await trx.updateTable('assignments').set({ status: 'completed', exportKey: jsonKey, completedAt: sql<Date>`now()`, completedCount: 3 }).where('id', '=', a.id).execute();
    await emitBatchCompleted(trx, a.id, { bucket: TEST_BUCKET, jsonKey });
  });
  return { assignmentId: a.id, jsonKey };
}
