import { describe, expect, it } from 'vitest';
import {
  batchDone,
  batchProblem,
  countingAnnotation,
  decideBatch,
  type BatchAction,
  type BatchInput,
  type ProblemInput,
} from '../../src/domain/batch-decision.ts';

const NOW = Date.parse('2026-04-01T12:00:00Z');
const s = (seconds: number) => seconds * 1000;
const h = (hours: number) => hours * 3_600_000;

type Overrides = Omit<Partial<BatchInput>, 'policy'> & { policy?: Partial<BatchInput['policy']> };

function input(o: Overrides = {}): BatchInput {
  const { policy, ...rest } = o;
  return {
    now: NOW,
    status: 'in_progress',
    annotatorStatus: 'active',
    taskCount: 4,
    completedCount: 1,
    removedTaskCount: 0,
    hasProject: true,
    lsCheckedAt: NOW - s(10),
    problemCode: null,
    lastTouchedAt: NOW - s(30),
    force: false,
    ...rest,
    policy: { compareIntervalSeconds: 60, retrySeconds: 15, expiryHours: null, ...policy },
  };
}

describe('decideBatch: every row', () => {
  const rows: { name: string; in: Overrides; action: BatchAction['action']; next: number | null }[] = [
    { name: 'completed → none, never due', in: { status: 'completed' }, action: 'none', next: null },
    { name: 'failed → none, never due', in: { status: 'failed' }, action: 'none', next: null },
    { name: 'cancelled → none, never due', in: { status: 'cancelled' }, action: 'none', next: null },
    { name: 'pending → provision, retried soon', in: { status: 'pending', hasProject: false, lsCheckedAt: null }, action: 'provision', next: 15 },
    { name: 'pending, annotator stopped → provision (the timeout bounds it)', in: { status: 'pending', annotatorStatus: 'stopped' }, action: 'provision', next: 15 },
    { name: 'pending, annotator deleted → fail', in: { status: 'pending', annotatorStatus: 'deleted' }, action: 'fail', next: null },
    { name: 'never compared → compare', in: { lsCheckedAt: null }, action: 'compare', next: 60 },
    { name: 'stale (interval elapsed) → compare', in: { lsCheckedAt: NOW - s(61) }, action: 'compare', next: 60 },
    { name: 'compared recently → none, due when the interval ends', in: { lsCheckedAt: NOW - s(10) }, action: 'none', next: 50 },
    { name: 'forced → compare even if compared recently', in: { force: true }, action: 'compare', next: 60 },
    { name: 'Label Studio unreachable last time → compare again after the retry delay', in: { problemCode: 'ls_unreachable' }, action: 'compare', next: 15 },
    { name: 'every task answered → complete', in: { completedCount: 4 }, action: 'complete', next: 15 },
    { name: 'answered except deleted tasks → complete', in: { taskCount: 3, completedCount: 3, removedTaskCount: 1 }, action: 'complete', next: 15 },
    { name: 'every task deleted in LS → complete (nothing to export)', in: { taskCount: 0, completedCount: 0, removedTaskCount: 2 }, action: 'complete', next: 15 },
    { name: 'empty batch with nothing removed → not complete', in: { taskCount: 0, completedCount: 0, lsCheckedAt: null }, action: 'compare', next: 60 },
    { name: 'annotator stopped → none, waits', in: { annotatorStatus: 'stopped' }, action: 'none', next: null },
    { name: 'annotator in error → none, waits until the expiry', in: { annotatorStatus: 'error', policy: { expiryHours: 2 }, lastTouchedAt: NOW - h(1) }, action: 'none', next: 3600 },
    { name: 'no project (impossible in progress) → none', in: { hasProject: false }, action: 'none', next: null },
    { name: 'expired → reclaim', in: { policy: { expiryHours: 1 }, lastTouchedAt: NOW - h(1) }, action: 'reclaim', next: null },
    { name: 'expired but every task answered → complete (paid work is never thrown away)', in: { policy: { expiryHours: 1 }, lastTouchedAt: NOW - h(2), completedCount: 4 }, action: 'complete', next: 15 },
    { name: 'expired while the annotator is stopped → reclaim', in: { annotatorStatus: 'stopped', policy: { expiryHours: 1 }, lastTouchedAt: NOW - h(3) }, action: 'reclaim', next: null },
    { name: 'not yet expired → next due at the expiry when sooner than the comparison', in: { policy: { expiryHours: 1 }, lastTouchedAt: NOW - h(1) + s(20) }, action: 'none', next: 20 },
    { name: 'no expiry → never reclaimed however old', in: { lastTouchedAt: NOW - h(10_000) }, action: 'none', next: 50 },
    { name: 'expiry with no touch time yet → never reclaimed', in: { policy: { expiryHours: 1 }, lastTouchedAt: null }, action: 'none', next: 50 },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const d = decideBatch(input(r.in));
      expect(d.decision.action).toBe(r.action);
      expect(d.nextInSeconds).toBe(r.next);
    });
  }

  it('a reclaim names the expiry in its reason', () => {
    const d = decideBatch(input({ policy: { expiryHours: 48 }, lastTouchedAt: NOW - h(49) }));
    expect(d.decision).toEqual({ action: 'reclaim', reason: expect.stringContaining('48 h') });
  });
});

describe('batchDone', () => {
  it.each([
    [{ taskCount: 3, completedCount: 3, removedTaskCount: 0 }, true],
    [{ taskCount: 3, completedCount: 2, removedTaskCount: 0 }, false],
    [{ taskCount: 0, completedCount: 0, removedTaskCount: 0 }, false],
    [{ taskCount: 0, completedCount: 0, removedTaskCount: 3 }, true],
    [{ taskCount: 2, completedCount: 1, removedTaskCount: 1 }, false],
  ])('%o → %s', (b, done) => expect(batchDone(b)).toBe(done));
});

function problem(o: Partial<ProblemInput> = {}): ProblemInput {
  return { status: 'in_progress', annotatorStatus: 'active', provisionError: null, current: null, removedTaskCount: 0, unknownLsTaskCount: 0, ...o };
}

describe('batchProblem: every code, most pressing first', () => {
  const rows: { name: string; in: Partial<ProblemInput>; code: string | null }[] = [
    { name: 'nothing wrong', in: {}, code: null },
    { name: 'closed batches have none', in: { status: 'completed', removedTaskCount: 2, current: { code: 'ls_tasks_deleted', message: 'x' } }, code: null },
    { name: 'cancelled batches have none', in: { status: 'cancelled', annotatorStatus: 'stopped' }, code: null },
    { name: 'annotator stopped', in: { annotatorStatus: 'stopped' }, code: 'annotator_not_running' },
    { name: 'annotator in error beats unreachable', in: { annotatorStatus: 'error', lsUnreachable: true }, code: 'annotator_not_running' },
    { name: 'annotator starting is not a problem', in: { annotatorStatus: 'starting' }, code: null },
    { name: 'LS unreachable this pass', in: { lsUnreachable: true, lsError: 'ECONNREFUSED' }, code: 'ls_unreachable' },
    { name: 'LS not tried this pass: unreachable stands', in: { current: { code: 'ls_unreachable', message: 'Label Studio did not answer: x' } }, code: 'ls_unreachable' },
    { name: 'LS answered: unreachable clears', in: { lsUnreachable: false, current: { code: 'ls_unreachable', message: 'x' } }, code: null },
    { name: 'provisioning failing', in: { status: 'pending', provisionError: 'HTTP 400' }, code: 'provisioning_failing' },
    { name: 'a provisioning error on an in-progress batch is not a provisioning problem', in: { provisionError: 'old' }, code: null },
    { name: 'tasks deleted in LS', in: { removedTaskCount: 1 }, code: 'ls_tasks_deleted' },
    { name: 'unreachable beats tasks deleted', in: { removedTaskCount: 1, lsUnreachable: true }, code: 'ls_unreachable' },
    { name: 'tasks added by hand', in: { unknownLsTaskCount: 2 }, code: 'ls_unknown_tasks' },
    { name: 'deleted beats added by hand', in: { unknownLsTaskCount: 2, removedTaskCount: 1 }, code: 'ls_tasks_deleted' },
  ];
  for (const r of rows) {
    it(r.name, () => expect(batchProblem(problem(r.in))?.code ?? null).toBe(r.code));
  }

  it('messages say what happened and what follows', () => {
    expect(batchProblem(problem({ removedTaskCount: 2 }))!.message).toMatch(/2 task\(s\) were deleted in Label Studio.*back to the queue/);
    expect(batchProblem(problem({ unknownLsTaskCount: 3 }))!.message).toMatch(/3 task\(s\).*not created by LabelFleet.*ignored/);
    expect(batchProblem(problem({ lsUnreachable: true, lsError: 'connect ECONNREFUSED' }))!.message).toMatch(/ECONNREFUSED.*retried/);
  });
});

describe('countingAnnotation: which of several annotations counts', () => {
  const a = (id: number, updated_at: string | null) => ({ id, updated_at });
  it.each([
    ['none', [], undefined],
    ['one', [a(3, '2026-01-01T00:00:00Z')], 3],
    ['the one updated last, whatever the order', [a(4, '2026-01-01T00:00:02Z'), a(3, '2026-01-01T00:00:05Z')], 3],
    ['microseconds decide', [a(3, '2026-01-01T00:00:00.000002Z'), a(4, '2026-01-01T00:00:00.000001Z')], 3],
    ['equal times: the higher id (created later)', [a(4, '2026-01-01T00:00:00Z'), a(3, '2026-01-01T00:00:00Z')], 4],
    ['an unreadable time counts as oldest', [a(9, 'not a time'), a(3, '2026-01-01T00:00:00Z')], 3],
    ['all unreadable: the higher id', [a(2, null), a(5, null)], 5],
    ['the newer deleted: the surviving older one counts', [a(3, '2026-01-01T00:00:00Z')], 3],
  ])('%s', (_name, anns, id) => expect(countingAnnotation(anns)?.id).toBe(id));
});
