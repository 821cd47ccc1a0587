/**
 * What a batch waits on, made visible, and batches that waited too long, reclaimed.
 *
 * recordProblem stores a batch's problem (batchProblem in src/domain/batch-decision.ts decides it)
 * as `problem` {code, message, since} and writes an event to the annotator's event log
 * (GET /api/events, type "container") when a problem appears (`batch_problem`), changes code
 * (`batch_problem`) or clears (`batch_problem_cleared`); details carry {assignmentId, code,
 * previousCode}. A new message under the same code updates the words, keeps `since`, writes no
 * event.
 *
 * reclaimAssignment cancels an in-progress batch its annotator left untouched for the workflow's
 * expiryHours: status cancelled with the reason in `error`, its reserved images back in the queue,
 * a `batch_expired` event (in_progress → cancelled), all in one transaction. The annotator's next
 * batch then follows the normal rules (auto-assignment). The Label Studio project is left as it
 * is; what is annotated there later is recorded but changes nothing.
 */
import type { Executor } from '../db/index.ts';
import type { BatchProblem } from '../domain/batch-decision.ts';
import type { AppContext } from '../context.ts';
import { writeContainerEvent } from './annotators.ts';

export type ProblemChange = 'appeared' | 'changed' | 'cleared' | 'reworded' | null;

/** Stores the batch's problem; writes an event when it appears, changes code or clears. */
export async function recordProblem(db: AppContext['database']['db'], assignmentId: number, next: BatchProblem | null): Promise<ProblemChange> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('assignments')
      .select(['annotatorId', 'status', 'problemCode', 'problemMessage'])
      .where('id', '=', assignmentId)
      .forUpdate()
      .executeTakeFirst();
    if (!row) return null;
    const change: ProblemChange =
      row.problemCode === (next?.code ?? null)
        ? next && row.problemMessage !== next.message
          ? 'reworded'
          : null
        : !next
          ? 'cleared'
          : row.problemCode === null
            ? 'appeared'
            : 'changed';
    if (!change) return null;
    if (change === 'reworded') {
      await trx.updateTable('assignments').set({ problemMessage: next!.message }).where('id', '=', assignmentId).execute();
      return change;
    }
    await trx
      .updateTable('assignments')
      .set(
        next
          ? { problemCode: next.code, problemMessage: next.message, problemSince: new Date() }
          : { problemCode: null, problemMessage: null, problemSince: null },
      )
      .where('id', '=', assignmentId)
      .execute();
    await writeProblemEvent(trx, row.annotatorId, assignmentId, row.problemCode, next);
    return change;
  });
}

async function writeProblemEvent(trx: Executor, annotatorId: number, assignmentId: number, previousCode: string | null, next: BatchProblem | null) {
  await writeContainerEvent(trx, {
    annotatorId,
    eventType: next ? 'batch_problem' : 'batch_problem_cleared',
    message: next ? `batch ${assignmentId}: ${next.message}` : `batch ${assignmentId}: no longer ${previousCode}`,
    details: { assignmentId, code: next?.code ?? null, previousCode },
  });
}

/** Cancels an expired in-progress batch and releases its images (see the module comment). */
export async function reclaimAssignment(db: AppContext['database']['db'], assignmentId: number, reason: string): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const now = new Date();
    const row = await trx
      .updateTable('assignments')
      .set({ status: 'cancelled', error: `reclaimed: ${reason}`, problemCode: null, problemMessage: null, problemSince: null, updatedAt: now })
      .where('id', '=', assignmentId)
      .where('status', '=', 'in_progress')
      .returning(['annotatorId'])
      .executeTakeFirst();
    if (!row) return false;
    await trx
      .updateTable('workItems')
      .set({ status: 'queued', assignmentId: null, updatedAt: now })
      .where('assignmentId', '=', assignmentId)
      .where('status', '=', 'reserved')
      .execute();
    await writeContainerEvent(trx, {
      annotatorId: row.annotatorId,
      eventType: 'batch_expired',
      fromStatus: 'in_progress',
      toStatus: 'cancelled',
      message: `batch ${assignmentId} reclaimed: ${reason}; its images went back to the queue`,
      details: { assignmentId },
    });
    return true;
  });
}
