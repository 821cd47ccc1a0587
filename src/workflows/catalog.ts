/**
 * The S3 catalog: each root workflow's (no previousWorkflowId) source images, synced from its
 * `s3SourcePath` into work_items, so that assigning a batch reads the database, never S3.
 *
 * Incremental, so a 100,000-key prefix is not listed again for every batch:
 * - The first sync of a workflow is a full listing. Afterwards, an incremental sync lists only
 *   keys after the last key seen (ListObjectsV2 StartAfter, S3's own key order) — new uploads
 *   with names that sort after the existing ones (timestamps, counters) cost one request.
 * - A full resync runs every `catalog.fullResyncMinutes` (default 60) and whenever the workflow's
 *   bucket or prefix changes. It finds keys added in the middle of the key order, brings back keys
 *   that reappeared, and marks queued keys that disappeared as 'gone' (never assigned). Keys that
 *   are already in a batch or done are left alone.
 * - Incremental syncs run at most every `catalog.syncIntervalSeconds` (default 60) from the
 *   reconciler; a manual assignment that finds the queue empty syncs at once (incrementally).
 * Chained workflows do not read S3: their items come from upstream batches (complete.ts).
 * Folder markers (keys ending in '/') and hidden files (a name starting with '.') are skipped.
 * Keys a presigned URL cannot address byte-for-byte (src/domain/object-keys.ts: `.`/`..` segments,
 * control characters) are skipped too, and reported: catalog_syncs.skipped_count/skipped_examples
 * (the workflow's `catalogSkippedKeys`; a full listing recounts, incremental ones add) and a
 * `catalog.keys_skipped` outbound event per distinct set of skipped keys found by a listing.
 * A queued item whose key is now skipped is marked gone by the next full listing.
 * A listing that cannot be completed (an error, or a store that truncates without a continuation
 * token and cannot be resumed with StartAfter: Storage.list) fails the sync with the error recorded
 * on catalog_syncs; nothing is marked gone, since the keys it did not reach may still exist.
 * One sync per workflow at a time (a session advisory lock per workflow).
 */
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { DbHandle, Executor } from '../db/index.ts';
import type { SkippedKeyExample, Workflow } from '../db/types.ts';
import { keyProblem } from '../domain/object-keys.ts';
import { emitCatalogKeysSkipped } from '../outbound/events.ts';
import { getSetting } from '../settings.ts';
import { sourcePrefix, type Storage } from '../storage/s3.ts';

/** Advisory lock keys for catalog syncs: base + workflow id (src/db/index.ts LOCKS holds the others). */
export const CATALOG_LOCK_BASE = 7_405_000_000;

export interface CatalogSyncResult {
  workflowId: number;
  mode: 'full' | 'incremental' | 'skipped';
  listed: number;
  added: number;
  gone: number;
  /** Keys this listing skipped because a URL cannot address them (not folder markers or hidden files). */
  skipped: number;
}

/** How many skipped keys a workflow shows as examples. */
export const SKIPPED_EXAMPLES = 10;

export interface CatalogDeps {
  database: DbHandle;
  storage: Storage;
  bucket: string;
}

/** Folder markers and hidden files are not images: left out silently. */
const wantedKey = (key: string) => !key.endsWith('/') && !(key.split('/').at(-1) ?? '').startsWith('.');

async function upsertKeys(db: Executor, workflowId: number, keys: string[], seenAt: Date, full: boolean) {
  if (!keys.length) return 0;
  if (full) {
    const { rows } = await sql<{ inserted: boolean }>`
      INSERT INTO work_items (workflow_id, image_key, source, priority, last_seen_at)
      SELECT ${workflowId}, k, 'catalog', 2, ${seenAt} FROM unnest(${keys}::text[]) AS k
      ON CONFLICT (workflow_id, image_key) WHERE source = 'catalog' DO UPDATE
        SET last_seen_at = EXCLUDED.last_seen_at,
            status = CASE WHEN work_items.status = 'gone' THEN 'queued' ELSE work_items.status END,
            updated_at = CASE WHEN work_items.status = 'gone' THEN now() ELSE work_items.updated_at END
      RETURNING (xmax = 0) AS inserted`.execute(db);
    return rows.filter((r) => r.inserted).length;
  }
  const { rows } = await sql<{ id: number }>`
    INSERT INTO work_items (workflow_id, image_key, source, priority, last_seen_at)
    SELECT ${workflowId}, k, 'catalog', 2, ${seenAt} FROM unnest(${keys}::text[]) AS k
    ON CONFLICT (workflow_id, image_key) WHERE source = 'catalog' DO NOTHING
    RETURNING id`.execute(db);
  return rows.length;
}

/**
 * Brings one root workflow's catalog up to date. `force` ignores the interval (incremental);
 * `full` forces a full listing.
 */
export async function syncCatalog(
  deps: CatalogDeps,
  workflow: Pick<Workflow, 'id' | 's3SourcePath'>,
  opts: { force?: boolean; full?: boolean; now?: Date } = {},
): Promise<CatalogSyncResult> {
  const { db } = deps.database;
  const result = await deps.database.withAdvisoryLock(
    CATALOG_LOCK_BASE + workflow.id,
    async (): Promise<CatalogSyncResult> => {
      const now = opts.now ?? new Date();
      const prefix = sourcePrefix(workflow.s3SourcePath);
      const state = await db.selectFrom('catalogSyncs').selectAll().where('workflowId', '=', workflow.id).executeTakeFirst();
      const fullEveryMs = Number(await getSetting(db, 'catalog.fullResyncMinutes')) * 60_000;
      const intervalMs = Number(await getSetting(db, 'catalog.syncIntervalSeconds')) * 1000;
      const full =
        opts.full ||
        !state ||
        state.bucket !== deps.bucket ||
        state.prefix !== prefix ||
        !state.lastFullSyncAt ||
        now.getTime() - state.lastFullSyncAt.getTime() >= fullEveryMs;
      if (!full && !opts.force && state?.lastSyncAt && now.getTime() - state.lastSyncAt.getTime() < intervalMs) {
        return { workflowId: workflow.id, mode: 'skipped', listed: 0, added: 0, gone: 0, skipped: 0 };
      }

      let listed = 0;
      let added = 0;
      let lastKey = full ? null : (state?.lastKey ?? null);
      const skipped: SkippedKeyExample[] = [];
      let skippedCount = 0;
      const skippedHash = createHash('sha256');
      try {
        for await (const page of deps.storage.list(deps.bucket, prefix, { startAfter: lastKey ?? undefined })) {
          listed += page.length;
          lastKey = page.at(-1)!.key;
          const keys: string[] = [];
          for (const { key } of page) {
            if (!wantedKey(key)) continue;
            const problem = keyProblem(key);
            if (problem === null) {
              keys.push(key);
              continue;
            }
            skippedCount++;
            skippedHash.update(key).update('\0');
            if (skipped.length < SKIPPED_EXAMPLES) skipped.push({ key, problem });
          }
          added += await upsertKeys(db, workflow.id, keys, now, full);
        }
      } catch (err) {
        await db
          .insertInto('catalogSyncs')
          .values({ workflowId: workflow.id, bucket: deps.bucket, prefix, error: (err as Error).message, updatedAt: now })
          .onConflict((oc) => oc.column('workflowId').doUpdateSet({ error: (err as Error).message, updatedAt: now }))
          .execute();
        throw err;
      }

      let gone = 0;
      if (full) {
        // Queued catalog keys this listing did not see are gone from S3 (or from the prefix).
        const res = await db
          .updateTable('workItems')
          .set({ status: 'gone', updatedAt: now })
          .where('workflowId', '=', workflow.id)
          .where('source', '=', 'catalog')
          .where('status', '=', 'queued')
          .where((eb) => eb.or([eb('lastSeenAt', 'is', null), eb('lastSeenAt', '<', now)]))
          .executeTakeFirst();
        gone = Number(res.numUpdatedRows);
      }
      const counted = await db
        .selectFrom('workItems')
        .select(sql<number>`count(*)::int`.as('n'))
        .where('workflowId', '=', workflow.id)
        .where('source', '=', 'catalog')
        .where('status', '<>', 'gone')
        .executeTakeFirstOrThrow();
      // A full listing recounts the skipped keys; an incremental one adds the new ones it saw.
      const before = full || !state ? { count: 0, examples: [] } : { count: state.skippedCount, examples: state.skippedExamples };
      const skippedTotal = before.count + skippedCount;
      const examples = [...before.examples, ...skipped].slice(0, SKIPPED_EXAMPLES);
      const row = {
        bucket: deps.bucket,
        prefix,
        lastKey,
        objectCount: counted.n,
        lastSyncAt: now,
        lastFullSyncAt: full ? now : (state?.lastFullSyncAt ?? null),
        error: null,
        skippedCount: skippedTotal,
        skippedExamples: JSON.stringify(examples),
        updatedAt: now,
      };
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('catalogSyncs')
          .values({ workflowId: workflow.id, ...row })
          .onConflict((oc) => oc.column('workflowId').doUpdateSet(row))
          .execute();
        if (skippedCount > 0) {
          // Once per set of skipped keys: an unchanged set found again by each full listing is not news.
          await emitCatalogKeysSkipped(trx, {
            dedupeKey: `catalog.keys_skipped:${workflow.id}:${deps.bucket}:${skippedHash.digest('hex')}`,
            data: {
              workflowId: workflow.id,
              bucket: deps.bucket,
              prefix,
              listing: full ? 'full' : 'incremental',
              skippedInListing: skippedCount,
              skippedTotal,
              examples: skipped,
            },
          });
        }
      });
      return { workflowId: workflow.id, mode: full ? 'full' : 'incremental', listed, added, gone, skipped: skippedCount };
    },
    { wait: true },
  );
  // wait: true never reports busy.
  return result as CatalogSyncResult;
}

/** Root workflows that read S3: active, with no upstream. */
export async function catalogWorkflows(db: Executor) {
  return db
    .selectFrom('workflows')
    .select(['id', 's3SourcePath'])
    .where('isActive', '=', true)
    .where('previousWorkflowId', 'is', null)
    .orderBy('id')
    .execute();
}
