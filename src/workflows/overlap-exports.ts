/**
 * Overlap batches' JSONL exports, written again once their items' consensus is settled (issue 13).
 *
 * A batch's JSONL (export.ts, `<s3ExportPath>/assignment-<id>.jsonl`) is written when the batch
 * completes, before its items can have a consensus: the item finishes in the transaction that
 * completes its last batch, and an adjudicated result comes with a later batch of the adjudication
 * workflow. Those transactions list every completed batch holding a seat of the item in
 * batch_export_refresh (consensus.ts); this step writes each listed batch's JSONL again (the same
 * records, now with `consensus`), then clears the request unless a newer one came meanwhile
 * (`version`). The JSONL carries its content's sha256, so a write repeated after a crash or a
 * request that changes nothing leaves S3 as it is. The batch's JSON (Label Studio's own export)
 * is not rewritten.
 */
import type { AppContext } from '../context.ts';
import { fleetBucket, storageFor } from '../storage/s3.ts';
import { writeBatchJsonl } from './export.ts';

/** Requests handled per pass, at most; the rest wait for the next pass. */
export const EXPORT_REFRESH_BATCH = 100;

/** The reconciler step: rewrites the listed batches' JSONL exports. Reports one line per batch. */
export async function refreshOverlapExports(ctx: AppContext): Promise<{ actions: string[]; errors: string[]; counts: Record<string, number> }> {
  const { db } = ctx.database;
  const due = await db
    .selectFrom('batchExportRefresh as r')
    .innerJoin('assignments as a', 'a.id', 'r.assignmentId')
    .innerJoin('workflows as w', 'w.id', 'a.workflowId')
    .select(['r.assignmentId', 'r.version', 'a.workflowId', 'a.status', 'w.s3ExportPath'])
    .orderBy('r.assignmentId')
    .limit(EXPORT_REFRESH_BATCH)
    .execute();
  const actions: string[] = [];
  const errors: string[] = [];
  if (!due.length) return { actions, errors, counts: {} };
  const bucket = await fleetBucket(db, ctx.config);
  const storage = storageFor(ctx.config);
  for (const r of due) {
    try {
      if (r.status === 'completed') {
        const key = await writeBatchJsonl(db, storage, bucket, r.s3ExportPath, { id: r.assignmentId, workflowId: r.workflowId, status: 'completed' });
        actions.push(`batch ${r.assignmentId}: JSONL export written again with its items' consensus (${key})`);
      }
      await db.deleteFrom('batchExportRefresh').where('assignmentId', '=', r.assignmentId).where('version', '=', r.version).execute();
    } catch (err) {
      errors.push(`batch ${r.assignmentId}: JSONL export not rewritten: ${(err as Error).message}`);
    }
  }
  return { actions, errors, counts: { exportsRefreshed: due.length } };
}
