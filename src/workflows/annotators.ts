/**
 * Annotator use-cases over the database: create (with a unique, DNS-safe subdomain), update,
 * soft delete, status transitions and the container events that record them. Every function
 * takes `db | trx` first and does no effects: the reconciler turns the rows into containers,
 * routes and databases (design.md, "Handlers record facts").
 */
import { sql } from 'kysely';
import { LOCKS, type Executor } from '../db/index.ts';
import type { Annotator, AnnotatorStatus } from '../db/types.ts';
import { canTransition } from '../domain/annotator-status.ts';
import { subdomainBase, subdomainCandidates } from '../domain/subdomain.ts';
import { badRequest, conflict, notFound, PG, pgCode } from '../errors.ts';
import { emitAnnotatorError } from '../outbound/events.ts';

/** An annotator row with its role's name and colour (left-joined). */
export type AnnotatorRow = Annotator & { roleName: string | null; roleColor: string | null };

export interface AnnotatorInput {
  name: string;
  email: string;
  roleId?: number | null;
  notes?: string | null;
}

export interface AnnotatorPatch extends Partial<AnnotatorInput> {
  autoAssignPaused?: boolean;
}

/** Assignment statuses an admin (or a deletion) may still cancel. */
export const OPEN_ASSIGNMENT_STATUSES = ['pending', 'in_progress'] as const;

const EMAIL_INDEX = 'annotators_email_key';
const SUBDOMAIN_INDEX = 'annotators_subdomain_key';

/** Annotators joined with their role, ready for `toAnnotator` (src/api/annotators.ts). */
export function selectAnnotators(db: Executor) {
  return db
    .selectFrom('annotators')
    .leftJoin('roles', 'roles.id', 'annotators.roleId')
    .selectAll('annotators')
    .select(['roles.name as roleName', 'roles.color as roleColor']);
}

/** One annotator (deleted ones included: they stay readable for audit) or a 404. */
export async function findAnnotator(db: Executor, id: number): Promise<AnnotatorRow> {
  const row = await selectAnnotators(db).where('annotators.id', '=', id).executeTakeFirst();
  if (!row) throw notFound('Annotator');
  return row;
}

/** Locks one annotator row for the rest of the transaction, or 404s. */
export async function lockAnnotator(trx: Executor, id: number): Promise<Annotator> {
  const row = await trx.selectFrom('annotators').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
  if (!row) throw notFound('Annotator');
  return row;
}

export interface ContainerEventInput {
  annotatorId: number;
  eventType: string;
  fromStatus?: string | null;
  toStatus?: string | null;
  message?: string | null;
  details?: unknown;
}

/** Appends one row to the container audit trail. */
export async function writeContainerEvent(db: Executor, e: ContainerEventInput): Promise<void> {
  await db
    .insertInto('containerEvents')
    .values({
      annotatorId: e.annotatorId,
      eventType: e.eventType,
      fromStatus: e.fromStatus ?? null,
      toStatus: e.toStatus ?? null,
      message: e.message ?? null,
      details: e.details === undefined ? null : JSON.stringify(e.details),
    })
    .execute();
}

export interface Transition {
  from: AnnotatorStatus;
  to: AnnotatorStatus;
  annotator: Annotator;
}

/**
 * Moves an annotator to `to` if the lifecycle allows it (src/domain/annotator-status.ts), under a
 * row lock, and records a `status_change` container event with `reason` as its message.
 * 404 when the annotator does not exist; 409 when the transition is not allowed (callers wanting
 * a different status code check `canTransition` first).
 */
export async function transitionAnnotator(
  trx: Executor,
  id: number,
  to: AnnotatorStatus,
  reason: string,
  details?: unknown,
): Promise<Transition> {
  const current = await lockAnnotator(trx, id);
  const from = current.status;
  if (!canTransition(from, to)) {
    throw conflict(`Cannot change annotator status from ${from} to ${to}`, { from, to });
  }
  const annotator = await trx
    .updateTable('annotators')
    .set({ status: to, statusReason: reason, statusChangedAt: sql<Date>`now()`, updatedAt: sql<Date>`now()` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
  await writeContainerEvent(trx, { annotatorId: id, eventType: 'status_change', fromStatus: from, toStatus: to, message: reason, details });
  if (to === 'error') await emitAnnotatorError(trx, id, from, reason);
  return { from, to, annotator };
}

/** Cancels an annotator's pending and in-progress assignments; returns their ids. */
export async function cancelOpenAssignments(trx: Executor, annotatorId: number): Promise<number[]> {
  const rows = await trx
    .updateTable('assignments')
    .set({ status: 'cancelled', updatedAt: sql<Date>`now()` })
    .where('annotatorId', '=', annotatorId)
    .where('status', 'in', OPEN_ASSIGNMENT_STATUSES)
    .returning('id')
    .execute();
  return rows.map((r) => r.id).sort((a, b) => a - b);
}

/**
 * Soft delete: status `deleted` (history stays for audit and monitoring), open assignments
 * cancelled, a container event written. Returns false, changing nothing, when the annotator is
 * already deleted. The caller wakes the reconciler, which removes container, route and database.
 */
export async function deleteAnnotator(trx: Executor, id: number, reason: string, details?: unknown): Promise<boolean> {
  const current = await lockAnnotator(trx, id);
  if (current.status === 'deleted') return false;
  const cancelled = await cancelOpenAssignments(trx, id);
  await transitionAnnotator(trx, id, 'deleted', reason, { ...(details as object | undefined), cancelledAssignmentIds: cancelled });
  return true;
}

/** Soft-deletes each listed annotator that exists and is not deleted yet; returns how many moved. */
export async function deleteAnnotators(trx: Executor, ids: readonly number[], reason: string, details?: unknown): Promise<number> {
  const unique = [...new Set(ids)].sort((a, b) => a - b);
  if (unique.length === 0) return 0;
  // Lock in id order so two overlapping bulk deletes cannot deadlock.
  const live = await trx
    .selectFrom('annotators')
    .select('id')
    .where('id', 'in', unique)
    .where('status', '<>', 'deleted')
    .orderBy('id')
    .forUpdate()
    .execute();
  let deleted = 0;
  for (const { id } of live) if (await deleteAnnotator(trx, id, reason, details)) deleted++;
  return deleted;
}

// ---------------------------------------------------------------------------------------------
// Create and update

const lower = (email: string) => email.toLowerCase();

function uniqueIndexOf(err: unknown): string | undefined {
  if (pgCode(err) !== PG.uniqueViolation) return undefined;
  const e = err as { constraint?: unknown; message?: unknown };
  if (typeof e.constraint === 'string') return e.constraint;
  const m = typeof e.message === 'string' ? /constraint "([^"]+)"/.exec(e.message) : null;
  return m?.[1];
}

const emailTaken = (email: string) => conflict('Email already exists', { email });

async function assertRolesExist(db: Executor, roleIds: Array<number | null | undefined>): Promise<void> {
  const wanted = [...new Set(roleIds.filter((r): r is number => typeof r === 'number'))];
  if (wanted.length === 0) return;
  const found = new Set((await db.selectFrom('roles').select('id').where('id', 'in', wanted).execute()).map((r) => r.id));
  const missing = wanted.filter((id) => !found.has(id));
  if (missing.length) throw badRequest('Role not found', { roleIds: missing });
}

/** 409 when any of these emails (case-insensitively) belongs to a live annotator other than `exceptId`. */
async function assertEmailsFree(db: Executor, emails: string[], exceptId?: number): Promise<void> {
  if (emails.length === 0) return;
  let q = db
    .selectFrom('annotators')
    .select('email')
    .where(sql<string>`lower(email)`, 'in', emails.map(lower))
    .where('status', '<>', 'deleted');
  if (exceptId !== undefined) q = q.where('id', '<>', exceptId);
  const taken = await q.orderBy('id').executeTakeFirst();
  if (taken) throw emailTaken(taken.email);
}

/** The first free subdomain for `base` among live annotators, probing candidates in batches. */
async function freeSubdomain(db: Executor, base: string): Promise<string> {
  const BATCH = 25;
  for (let from = 1; ; from += BATCH) {
    const candidates = subdomainCandidates(base, from, BATCH);
    const rows = await db
      .selectFrom('annotators')
      .select('subdomain')
      .where('subdomain', 'in', candidates)
      .where('status', '<>', 'deleted')
      .execute();
    const taken = new Set(rows.map((r) => r.subdomain));
    const free = candidates.find((c) => !taken.has(c));
    if (free) return free;
  }
}

/**
 * Inserts one annotator with a subdomain derived from its name. The caller holds the allocation
 * lock of its base (lockSubdomainBases), so no other transaction allocates from the same base
 * until ours commits, and the probe sees every committed name. A name from another base can still
 * collide (base "anna" probing "anna-2" while someone is named "Anna 2"): the partial unique index
 * then fails the insert — only after the other transaction committed, so the next probe sees its
 * row — and we roll back to a savepoint and probe again. Each retry is one more committed name:
 * the loop ends.
 */
async function insertAnnotator(trx: Executor, input: AnnotatorInput): Promise<Annotator> {
  const base = subdomainBase(input.name);
  for (let attempt = 1; attempt <= 1_000; attempt++) {
    const subdomain = await freeSubdomain(trx, base);
    await sql`SAVEPOINT annotator_insert`.execute(trx);
    try {
      const row = await trx
        .insertInto('annotators')
        .values({
          name: input.name,
          email: input.email,
          roleId: input.roleId ?? null,
          notes: input.notes ?? null,
          subdomain,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await sql`RELEASE SAVEPOINT annotator_insert`.execute(trx);
      return row;
    } catch (err) {
      await sql`ROLLBACK TO SAVEPOINT annotator_insert`.execute(trx);
      const index = uniqueIndexOf(err);
      if (index === SUBDOMAIN_INDEX) continue;
      if (index === EMAIL_INDEX) throw emailTaken(input.email);
      throw err;
    }
  }
  throw conflict('Could not allocate a unique subdomain, please retry');
}

/**
 * Takes the transaction's allocation lock of every base label (pg_advisory_xact_lock, key pair
 * LOCKS.subdomain × hashtext(base)), in key order so two batches naming the same people in another
 * order never deadlock. Why: without it, concurrent creates of one base all probe before any
 * commits, pick the same candidate, and all but one retry — 30 at once exhaust any retry bound.
 * Held until commit; creates from other bases do not wait.
 */
async function lockSubdomainBases(trx: Executor, bases: readonly string[]): Promise<void> {
  await sql`
    SELECT pg_advisory_xact_lock(${LOCKS.subdomain}::int, h)
      FROM (SELECT DISTINCT hashtext(b) AS h FROM unnest(${[...new Set(bases)]}::text[]) AS b ORDER BY 1) AS keys`.execute(trx);
}

/**
 * Creates annotators (status `created`) in the caller's transaction, all or nothing: every role
 * must exist (400), no two emails in the batch may match case-insensitively (409) and none may
 * belong to a live annotator (409). Returns the rows in input order.
 */
export async function createAnnotators(trx: Executor, inputs: readonly AnnotatorInput[]): Promise<Annotator[]> {
  const seen = new Map<string, number>();
  inputs.forEach((a, index) => {
    const key = lower(a.email);
    const first = seen.get(key);
    if (first !== undefined) throw conflict(`Duplicate email in batch: ${a.email}`, { email: a.email, indexes: [first, index] });
    seen.set(key, index);
  });
  await assertRolesExist(trx, inputs.map((a) => a.roleId));
  await assertEmailsFree(
    trx,
    inputs.map((a) => a.email),
  );
  await lockSubdomainBases(
    trx,
    inputs.map((a) => subdomainBase(a.name)),
  );
  const rows: Annotator[] = [];
  for (const input of inputs) {
    const row = await insertAnnotator(trx, input);
    await writeContainerEvent(trx, { annotatorId: row.id, eventType: 'created', toStatus: row.status, message: 'annotator created' });
    rows.push(row);
  }
  return rows;
}

/**
 * Updates the given fields. The subdomain never changes with the name: it is the address of the
 * annotator's instance. A deleted annotator cannot be changed (409).
 */
export async function updateAnnotator(trx: Executor, id: number, patch: AnnotatorPatch): Promise<Annotator> {
  const current = await lockAnnotator(trx, id);
  if (current.status === 'deleted') throw conflict('Cannot update a deleted annotator');
  if (patch.roleId !== undefined) await assertRolesExist(trx, [patch.roleId]);
  if (patch.email !== undefined && lower(patch.email) !== lower(current.email)) {
    await assertEmailsFree(trx, [patch.email], id);
  }
  try {
    return await trx
      .updateTable('annotators')
      .set({ ...patch, updatedAt: sql<Date>`now()` })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
  } catch (err) {
    if (uniqueIndexOf(err) === EMAIL_INDEX) throw emailTaken(patch.email ?? current.email);
    throw err;
  }
}
