/**
 * Reconcile by key, when due — the reconciler's work queue (issue 15; migrations/0021_due.sql).
 * Annotators (`due_at`, `assign_due_at`), open batches (`due_at`) and workflow catalogs
 * (`catalog_due_at`) carry when they next need attention. A step:
 *  1. claims due rows: `claimDue` picks at most `limit` rows whose time has come, oldest first,
 *     `FOR UPDATE SKIP LOCKED` (replicas and concurrent claims take disjoint rows), and leases them
 *     (due again after `leaseMs` if the process dies before requeueing);
 *  2. reconciles each by key;
 *  3. requeues each from its outcome with `requeue`: a time (poll, retry with `backoffMs`) or null
 *     (nothing can change until a wake-up). A requeue only replaces the value its claim wrote, so
 *     a wake-up (a trigger of migration 0021) that lands meanwhile is kept and the row comes back.
 * Nothing due: one indexed statement per kind, and no writes. `FullResync` marks everything due
 * again now and then — the safety net for a missed wake-up — and the queue drains it in bounded
 * chunks.
 */
import { sql, type RawBuilder, type SqlBool } from 'kysely';
import type { Executor } from '../src/db/index.ts';

/** The due columns of migration 0021. */
export type DueColumn = { table: 'annotators'; column: 'due_at' | 'assign_due_at' } | { table: 'assignments'; column: 'due_at' } | { table: 'workflows'; column: 'catalog_due_at' };

/** Rows a step claims per pass at most; a full claim asks for another pass at once. */
export const CLAIM_LIMIT = 500;
/** A claimed row is due again after this long if its requeue never comes (process killed). */
export const LEASE_MS = 5 * 60_000;
/** How often each step marks every row due again (safety net for missed wake-ups). */
export const FULL_RESYNC_MS = 15 * 60_000;

export interface Claimed {
  id: number;
  /** The lease the claim wrote: what `requeue` replaces. */
  lease: Date;
}

/**
 * Claims up to `limit` rows of `due` whose time has come (and that match `where`, SQL over the
 * table's columns), leasing them for `leaseMs`. Returns their ids with the lease written, oldest
 * due first. One statement; writes nothing when nothing is due.
 */
export async function claimDue(
  db: Executor,
  due: DueColumn,
  opts: { limit?: number; leaseMs?: number; where?: RawBuilder<SqlBool>; now?: Date } = {},
): Promise<Claimed[]> {
  const now = opts.now ?? new Date();
  const lease = new Date(now.getTime() + (opts.leaseMs ?? LEASE_MS));
  const table = sql.table(due.table);
  const col = sql.ref(due.column);
  const { rows } = await sql<{ id: number }>`
    UPDATE ${table} SET ${col} = ${lease}
     WHERE id IN (SELECT id FROM ${table}
                   WHERE ${col} <= now() AND ${opts.where ?? sql<SqlBool>`true`}
                   ORDER BY ${col} LIMIT ${opts.limit ?? CLAIM_LIMIT}
                   FOR UPDATE SKIP LOCKED)
     RETURNING id`.execute(db);
  return rows.map((r) => ({ id: r.id, lease }));
}

/**
 * Sets each row's next due time, only where the column still holds `seen` (the claim's lease, or
 * the value read); entries whose `next` equals `seen` are skipped. One statement for all.
 */
export async function requeue(db: Executor, due: DueColumn, entries: Array<{ id: number; seen: Date | null; next: Date | null }>): Promise<void> {
  const changed = entries.filter((e) => (e.seen?.getTime() ?? null) !== (e.next?.getTime() ?? null));
  if (!changed.length) return;
  const table = sql.table(due.table);
  const col = sql.ref(due.column);
  const ids = changed.map((e) => e.id);
  const seen = changed.map((e) => e.seen?.toISOString() ?? null);
  const next = changed.map((e) => e.next?.toISOString() ?? null);
  await sql`
    UPDATE ${table} t SET ${col} = q.next
      FROM unnest(${ids}::int[], ${seen}::timestamptz[], ${next}::timestamptz[]) AS q(id, seen, next)
     WHERE t.id = q.id AND ${sql.ref(`t.${due.column}`)} IS NOT DISTINCT FROM q.seen`.execute(db);
}

/** Marks every row matching `where` due now (the full resync). Returns how many. */
export async function markAllDue(db: Executor, due: DueColumn, where: RawBuilder<SqlBool>): Promise<number> {
  const table = sql.table(due.table);
  const col = sql.ref(due.column);
  const r = await sql`UPDATE ${table} SET ${col} = now() WHERE ${where} AND (${col} IS NULL OR ${col} > now())`.execute(db);
  return Number(r.numAffectedRows ?? 0);
}

/** When a full resync is next due, per step (in this process). */
export class FullResync {
  #nextAt = 0;
  constructor(private readonly everyMs = FULL_RESYNC_MS) {}
  /** True once every `everyMs` (the first call included), and then schedules the next. */
  due(now = Date.now()): boolean {
    if (now < this.#nextAt) return false;
    this.#nextAt = now + this.everyMs;
    return true;
  }
}

/**
 * Retry delay after `failures` failures in a row: `baseMs` (default 1 s) doubling to `maxMs` (the
 * work queue's per-item exponential backoff, as in Kubernetes client-go's
 * ItemExponentialFailureRateLimiter), in ms.
 */
export function backoffMs(failures: number, maxMs = 5 * 60_000, baseMs = 1000): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(failures - 1, 20)));
}

/** Failures in a row per key, in this process (reset on success): the input of `backoffMs`. */
export class FailureStreaks {
  #counts = new Map<number, number>();
  fail(id: number): number {
    const n = (this.#counts.get(id) ?? 0) + 1;
    this.#counts.set(id, n);
    return n;
  }
  succeed(id: number): void {
    this.#counts.delete(id);
  }
}

/** What `instanceNextDue` reads of an annotator row after its reconcile. */
export interface InstanceDueInput {
  status: string;
  startGeneration: number;
  cleanedUpAt: Date | null;
  restartCount: number;
  lastRestartAt: Date | null;
  nextRestartAt: Date | null;
  lsUserId: number | null;
  lsPasswordEnc: string | null;
  /** Null while an active instance is not (again) reported up: after a restart, recreate or route repair. */
  routedAt: Date | null;
}

/**
 * When an annotator's instance next needs the annotators step, from its row after the reconcile
 * (ms since epoch, or null: not until a wake-up or the instance list shows a problem):
 * a start or stop in flight → `pollMs`; a failed action → `now + retryMs` (the caller's backoff);
 * a deleted annotator not cleaned up → `pollMs`; a created one whose database is still to be
 * made ahead of its start (`prepareDatabase`: a pass makes a few) → `pollMs`; an active one not
 * reported up yet (`routedAt` null: restarted, recreated, route repaired) → `pollMs`; else its
 * next restart, the moment its restart count resets (`restartResetSeconds` after the last
 * restart), or `accountPollMs` while the account of an issued password has not appeared;
 * anything else → null.
 */
export function instanceNextDue(
  row: InstanceDueInput,
  opts: { now: number; failed: boolean; retryMs: number; pollMs: number; accountPollMs: number; restartResetSeconds: number; prepareDatabase: boolean },
): number | null {
  const { now } = opts;
  if (opts.failed) return now + opts.retryMs;
  if (row.status === 'deleted') return row.cleanedUpAt === null ? now + opts.pollMs : null;
  if (row.status === 'created') return opts.prepareDatabase ? now + opts.pollMs : null;
  if (row.startGeneration === 0) return null;
  if (row.status === 'starting' || row.status === 'stopping') return now + opts.pollMs;
  if (row.status !== 'active') return null;
  if (row.routedAt === null) return now + opts.pollMs;
  const times: number[] = [];
  if (row.nextRestartAt && row.nextRestartAt.getTime() > now) times.push(row.nextRestartAt.getTime());
  if (row.restartCount > 0 && row.lastRestartAt) times.push(Math.max(now, row.lastRestartAt.getTime() + opts.restartResetSeconds * 1000 + 1000));
  if (row.lsUserId === null && row.lsPasswordEnc !== null) times.push(now + opts.accountPollMs);
  return times.length ? Math.min(...times) : null;
}
