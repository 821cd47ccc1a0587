import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qualityReport } from '../../src/db/quality.ts';
import { evaluateQuality, readQualitySettings, runQualityChecks } from '../../src/workflows/quality.ts';
import { reconcileSteps } from '../../orchestrator/steps.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
beforeAll(async () => {
  t = await startTestService();
});
afterAll(async () => t?.close());

let seq = 0;
async function annotator(name: string, status = 'active', extra: Record<string, unknown> = {}): Promise<number> {
  const n = ++seq;
  const row = await t.db
    .insertInto('annotators')
    .values({ name, email: `${name.toLowerCase()}${n}@x.io`, subdomain: `${name.toLowerCase()}-${n}`, status: status as 'active', ...extra })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

let workflowId: number;
let configId: number;
async function workflow() {
  configId ??= (
    await t.db
      .insertInto('labelingConfigs')
      .values({ name: 'cfg', configXml: '<View><Image name="image" value="$image"/></View>' })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
  workflowId ??= (
    await t.db.insertInto('workflows').values({ name: 'wf', s3SourcePath: 'in/', s3ExportPath: 'out/' }).returning('id').executeTakeFirstOrThrow()
  ).id;
  return workflowId;
}

async function goldTask(name: string | null): Promise<number> {
  await workflow();
  const row = await t.db
    .insertInto('goldTasks')
    .values({ name, s3ImageKey: `gold/${++seq}.jpg`, expectedLabels: JSON.stringify([{ type: 'choices' }]), labelingConfigId: configId })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

let clock = Date.parse('2026-04-06T08:00:00.000Z');
/** Records gold results (one assignment task each), a second apart, in one statement. */
async function gold(annotatorId: number, scores: number[], goldTaskId: number | null = null, executor: typeof t.db = t.db) {
  const wf = await workflow();
  const a = await executor.insertInto('assignments').values({ workflowId: wf, annotatorId, status: 'in_progress' }).returning('id').executeTakeFirstOrThrow();
  const values = [];
  for (const score of scores) {
    const task = await executor
      .insertInto('assignmentTasks')
      .values({ assignmentId: a.id, s3ImageKey: `img/${++seq}.jpg`, isGold: true, goldTaskId })
      .returning('id')
      .executeTakeFirstOrThrow();
    clock += 1000;
    values.push({ assignmentTaskId: task.id, assignmentId: a.id, annotatorId, goldTaskId, score, evaluatedAt: new Date(clock).toISOString() });
  }
  if (values.length) await executor.insertInto('goldResults').values(values).execute();
}

async function setSetting(key: string, value: unknown) {
  await sql`INSERT INTO settings (key, value) VALUES (${key}, ${JSON.stringify(value)}::jsonb)
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`.execute(t.db);
}
const clearSettings = () => t.db.deleteFrom('settings').where('key', 'like', 'quality.%').execute();

async function qualityEvents(annotatorId: number) {
  return t.db
    .selectFrom('containerEvents')
    .select(['eventType', 'message', 'details'])
    .where('annotatorId', '=', annotatorId)
    .where('eventType', 'like', 'quality_%')
    .orderBy('id')
    .execute();
}
const paused = async (id: number) =>
  (await t.db.selectFrom('annotators').select('autoAssignPaused').where('id', '=', id).executeTakeFirstOrThrow()).autoAssignPaused;

describe('quality: empty', () => {
  it('answers null accuracy, zero counts and empty lists', async () => {
    const res = await t.json('GET', '/api/quality');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      overallAccuracy: null,
      accuracyThreshold: 0.7,
      belowThresholdCount: 0,
      reworkRate: 0,
      annotatorScores: [],
      recentEvaluations: [],
      recentRejections: [],
    });
  });

  it('answers 401 without a session', async () => {
    expect(await t.anonymous.json('GET', '/api/quality')).toMatchObject({ status: 401, body: { error: 'Unauthorized' } });
  });
});

describe('quality: exact figures', () => {
  let alice: number, bob: number, carol: number, dave: number, frank: number, gina: number;
  let cat: number, unnamed: number, doomed: number;

  beforeAll(async () => {
    alice = await annotator('Alice', 'active', { reviewedCount: 50, rejectionCount: 2 });
    bob = await annotator('Bob', 'active', { reviewedCount: 3, rejectionCount: 3 });
    carol = await annotator('Carol');
    dave = await annotator('Dave', 'deleted', { reviewedCount: 7, rejectionCount: 1 });
    await annotator('Eve', 'created'); // nothing evaluated or reviewed: not listed
    frank = await annotator('Frank', 'active', { reviewedCount: 10 });
    gina = await annotator('Gina', 'active', { rejectionCount: 1 }); // a rejection counted without a review

    cat = await goldTask('Gold - Cat');
    unnamed = await goldTask(null);
    doomed = await goldTask('Gold - Doomed');
    await gold(alice, [1, 1, 1, 1, 0.5], cat);
    await gold(alice, [0.9], doomed); // 5.4 / 6 = 0.9
    await gold(bob, [0.5, 0.6, 0.7, 0.6, 0.6], unnamed); // 3.0 / 5 = 0.6: below 0.7 with 5 results
    await gold(carol, [0, 0, 0, 0.1], cat); // 0.025, but only 4 results
    await gold(dave, [1, 0], cat); // deleted: in the overall accuracy only
    // The gold task behind Alice's last result is deleted: its name is gone (null).
    await t.db.deleteFrom('goldTasks').where('id', '=', doomed).execute();

    const wf = await workflow();
    const rejection = (original: number | null, reviewer: number | null, imageKey: string, reason: string | null, actionTaken: string, at: string) =>
      t.db
        .insertInto('rejections')
        .values({ workflowId: wf, originalAnnotatorId: original, reviewerAnnotatorId: reviewer, imageKey, reason, actionTaken: actionTaken as 'none', createdAt: at } as never)
        .execute();
    await rejection(alice, carol, 'images/001.jpg', 'Bounding box too loose', 'route_to_workflow', '2026-04-06T11:30:00.000Z');
    await rejection(alice, carol, 'images/002.jpg', null, 'archive', '2026-04-06T11:31:00.000Z');
    await rejection(bob, null, 'images/003.jpg', 'Wrong label', 'none', '2026-04-06T11:29:00.000Z');
    await rejection(null, frank, 'images/004.jpg', 'Orphan', 'none', '2026-04-06T11:32:00.000Z');
  });

  it('reports every figure', async () => {
    const res = await t.json('GET', '/api/quality');
    expect(res.status).toBe(200);
    const { recentEvaluations, ...rest } = res.body;
    expect(rest).toEqual({
      overallAccuracy: 0.5588, // (5.4 + 3.0 + 0.1 + 1) / 17 = 0.558823…
      accuracyThreshold: 0.7,
      belowThresholdCount: 1, // Bob
      reworkRate: 0.0571, // 4 rejections / (50 + 3 + 7 + 10) reviewed = 4 / 70
      annotatorScores: [
        { annotatorId: alice, annotatorName: 'Alice', accuracy: 0.9, evaluationCount: 6, rejectionCount: 2, reviewedCount: 50, rejectionRate: 0.04, agreementWithConsensus: null, agreementItemCount: 0 },
        { annotatorId: bob, annotatorName: 'Bob', accuracy: 0.6, evaluationCount: 5, rejectionCount: 3, reviewedCount: 3, rejectionRate: 1, agreementWithConsensus: null, agreementItemCount: 0 },
        { annotatorId: carol, annotatorName: 'Carol', accuracy: 0.025, evaluationCount: 4, rejectionCount: 0, reviewedCount: 0, rejectionRate: 0, agreementWithConsensus: null, agreementItemCount: 0 },
        { annotatorId: frank, annotatorName: 'Frank', accuracy: null, evaluationCount: 0, rejectionCount: 0, reviewedCount: 10, rejectionRate: 0, agreementWithConsensus: null, agreementItemCount: 0 },
        { annotatorId: gina, annotatorName: 'Gina', accuracy: null, evaluationCount: 0, rejectionCount: 1, reviewedCount: 0, rejectionRate: 1, agreementWithConsensus: null, agreementItemCount: 0 },
      ],
      recentRejections: [
        { originalAnnotatorId: null, originalAnnotatorName: null, reviewerAnnotatorName: 'Frank', imageKey: 'images/004.jpg', reason: 'Orphan', actionTaken: 'none', createdAt: '2026-04-06T11:32:00.000Z' },
        { originalAnnotatorId: alice, originalAnnotatorName: 'Alice', reviewerAnnotatorName: 'Carol', imageKey: 'images/002.jpg', reason: null, actionTaken: 'archive', createdAt: '2026-04-06T11:31:00.000Z' },
        { originalAnnotatorId: alice, originalAnnotatorName: 'Alice', reviewerAnnotatorName: 'Carol', imageKey: 'images/001.jpg', reason: 'Bounding box too loose', actionTaken: 'route_to_workflow', createdAt: '2026-04-06T11:30:00.000Z' },
        { originalAnnotatorId: bob, originalAnnotatorName: 'Bob', reviewerAnnotatorName: null, imageKey: 'images/003.jpg', reason: 'Wrong label', actionTaken: 'none', createdAt: '2026-04-06T11:29:00.000Z' },
      ],
    });
    // All 17 results, newest first; Dave's two were recorded last.
    expect(recentEvaluations).toHaveLength(17);
    expect(recentEvaluations.slice(0, 3)).toEqual([
      { annotatorId: dave, annotatorName: 'Dave', goldTaskName: 'Gold - Cat', score: 0, evaluatedAt: '2026-04-06T08:00:17.000Z' },
      { annotatorId: dave, annotatorName: 'Dave', goldTaskName: 'Gold - Cat', score: 1, evaluatedAt: '2026-04-06T08:00:16.000Z' },
      { annotatorId: carol, annotatorName: 'Carol', goldTaskName: 'Gold - Cat', score: 0.1, evaluatedAt: '2026-04-06T08:00:15.000Z' },
    ]);
    expect(recentEvaluations.find((e: { evaluatedAt: string }) => e.evaluatedAt === '2026-04-06T08:00:06.000Z')).toEqual({
      annotatorId: alice, annotatorName: 'Alice', goldTaskName: null, score: 0.9, evaluatedAt: '2026-04-06T08:00:06.000Z', // its task was deleted
    });
    expect(recentEvaluations.find((e: { evaluatedAt: string }) => e.evaluatedAt === '2026-04-06T08:00:07.000Z').goldTaskName).toBeNull(); // unnamed task
    expect(recentEvaluations.at(-1)).toEqual({ annotatorId: alice, annotatorName: 'Alice', goldTaskName: 'Gold - Cat', score: 1, evaluatedAt: '2026-04-06T08:00:01.000Z' });
  });

  it('follows the threshold and minimum settings; equal to the threshold is not below', async () => {
    await setSetting('quality.accuracyThreshold', 0.9);
    expect((await qualityReport(t.db)).belowThresholdCount).toBe(1); // Alice at exactly 0.9 is not below
    await setSetting('quality.accuracyThreshold', 0.95);
    let q = await qualityReport(t.db);
    expect([q.accuracyThreshold, q.belowThresholdCount]).toEqual([0.95, 2]); // Alice and Bob
    await setSetting('quality.minEvaluations', 4);
    expect((await qualityReport(t.db)).belowThresholdCount).toBe(3); // and Carol
    // Values of the wrong type or out of range are ignored: the defaults apply.
    await setSetting('quality.accuracyThreshold', 'high');
    await setSetting('quality.minEvaluations', 0);
    q = await qualityReport(t.db);
    expect([q.accuracyThreshold, q.belowThresholdCount]).toEqual([0.7, 1]);
    await setSetting('quality.accuracyThreshold', 1.5);
    await setSetting('quality.minEvaluations', 2.5);
    await setSetting('quality.pauseBelowThreshold', 'yes');
    expect(await readQualitySettings(t.db)).toEqual({ threshold: 0.7, minEvaluations: 5, pauseBelowThreshold: false });
    await clearSettings();
  });

  it('lists the newest 20 evaluations', async () => {
    const zed = await annotator('Zed');
    await gold(zed, Array.from({ length: 10 }, () => 1), cat);
    const q = await qualityReport(t.db);
    expect(q.recentEvaluations).toHaveLength(20);
    expect(q.recentEvaluations[0]!.annotatorName).toBe('Zed');
    expect(q.recentEvaluations[19]!.evaluatedAt).toBe('2026-04-06T08:00:08.000Z');
    expect(q.overallAccuracy).toBe(0.7222); // (9.5 + 10) / 27
  });
});

describe('quality: flagging', () => {
  let qualityStep: ReturnType<typeof reconcileSteps>[number];
  beforeAll(() => {
    qualityStep = reconcileSteps(t.ctx).find((s) => s.name === 'quality')!;
  });

  it('is a registered reconciler step', () => {
    expect(qualityStep).toBeDefined();
  });

  it('flags once per crossing, re-arms on recovery, pauses only when the setting is on', async () => {
    const hank = await annotator('Hank');
    await gold(hank, [0.2, 0.2, 0.2, 0.2]); // 4 results: not enough to judge
    let report = await qualityStep.run(t.ctx);
    expect(report.errors).toEqual([]);
    expect(await qualityEvents(hank)).toEqual([]);

    await gold(hank, [0.2]); // 5 results at 0.2: below
    report = await qualityStep.run(t.ctx);
    expect(report.actions).toContain(`annotator ${hank}: flagged (gold accuracy 0.2 over 5 evaluations)`);
    expect(await qualityEvents(hank)).toEqual([
      {
        eventType: 'quality_flagged',
        message: 'Gold accuracy 0.2 over 5 evaluations is below the threshold 0.7',
        details: { accuracy: 0.2, evaluationCount: 5, threshold: 0.7, minEvaluations: 5, autoAssignPaused: false },
      },
    ]);
    expect(await paused(hank)).toBe(false); // quality.pauseBelowThreshold is off by default

    // More low scores, more checks, direct calls: still one event.
    await gold(hank, [0.1]);
    await qualityStep.run(t.ctx);
    await qualityStep.run(t.ctx);
    expect(await evaluateQuality(t.db, hank)).toMatchObject({ change: null, flagged: true, accuracy: 0.1833, evaluationCount: 6 });
    expect(await qualityEvents(hank)).toHaveLength(1);

    // Recovery re-arms the flag (and writes one event) ...
    await gold(hank, Array.from({ length: 14 }, () => 1)); // (1.1 + 14) / 20 = 0.755
    report = await qualityStep.run(t.ctx);
    expect(report.actions).toContain(`annotator ${hank}: quality recovered (gold accuracy 0.755)`);
    expect((await qualityEvents(hank)).map((e) => e.eventType)).toEqual(['quality_flagged', 'quality_recovered']);

    // ... so the next drop flags again, this time pausing auto-assignment.
    await setSetting('quality.pauseBelowThreshold', true);
    await gold(hank, [0, 0, 0, 0, 0, 0]); // 15.1 / 26 = 0.5808
    report = await qualityStep.run(t.ctx);
    expect(report.actions).toContain(`annotator ${hank}: flagged (gold accuracy 0.5808 over 26 evaluations), auto-assignment paused`);
    const events = await qualityEvents(hank);
    expect(events.map((e) => e.eventType)).toEqual(['quality_flagged', 'quality_recovered', 'quality_flagged']);
    expect(events[2]!.details).toMatchObject({ accuracy: 0.5808, autoAssignPaused: true });
    expect(events[2]!.message).toBe('Gold accuracy 0.5808 over 26 evaluations is below the threshold 0.7; auto-assignment paused');
    expect(await paused(hank)).toBe(true);

    // An admin resumes; further checks while still below neither re-pause nor re-flag.
    await t.db.updateTable('annotators').set({ autoAssignPaused: false }).where('id', '=', hank).execute();
    await gold(hank, [0]);
    await qualityStep.run(t.ctx);
    expect(await paused(hank)).toBe(false);
    expect(await qualityEvents(hank)).toHaveLength(3);
    await clearSettings();
  });

  it('re-checks everyone when the threshold changes, without new results', async () => {
    const ivy = await annotator('Ivy');
    await gold(ivy, [0.8, 0.8, 0.8, 0.8, 0.8]);
    await qualityStep.run(t.ctx);
    expect(await qualityEvents(ivy)).toEqual([]);
    await setSetting('quality.accuracyThreshold', 0.85);
    await qualityStep.run(t.ctx);
    expect((await qualityEvents(ivy)).map((e) => e.eventType)).toEqual(['quality_flagged']);
    await setSetting('quality.accuracyThreshold', 0.8);
    await qualityStep.run(t.ctx);
    expect((await qualityEvents(ivy)).map((e) => e.eventType)).toEqual(['quality_flagged', 'quality_recovered']);
    await clearSettings();
  });

  it('runs inside the caller\'s transaction: a rollback leaves no flag', async () => {
    const jay = await annotator('Jay');
    await t.db
      .transaction()
      .execute(async (trx) => {
        await gold(jay, [0, 0, 0, 0, 0], null, trx as unknown as typeof t.db);
        const check = await evaluateQuality(trx, jay);
        expect(check).toMatchObject({ change: 'flagged', accuracy: 0, evaluationCount: 5 });
        throw new Error('roll back');
      })
      .catch((err: Error) => expect(err.message).toBe('roll back'));
    expect(await qualityEvents(jay)).toEqual([]);
    expect(await t.db.selectFrom('goldResults').select('id').where('annotatorId', '=', jay).execute()).toEqual([]);
    // Committed the same way, it flags exactly once; the step then finds nothing left to do for Jay.
    await t.db.transaction().execute(async (trx) => {
      await gold(jay, [0, 0, 0, 0, 0], null, trx as unknown as typeof t.db);
      await evaluateQuality(trx, jay);
    });
    const report = await runQualityChecks(t.db);
    expect(report.actions.filter((a) => a.startsWith(`annotator ${jay}:`))).toEqual([]);
    expect(await qualityEvents(jay)).toHaveLength(1);
  });

  it('ignores unknown and deleted annotators', async () => {
    expect(await evaluateQuality(t.db, 999_999)).toBeNull();
    const kim = await annotator('Kim', 'deleted');
    await gold(kim, [0, 0, 0, 0, 0]);
    expect(await evaluateQuality(t.db, kim)).toBeNull();
    const report = await runQualityChecks(t.db);
    expect(report.actions.filter((a) => a.startsWith(`annotator ${kim}:`))).toEqual([]);
    expect(await qualityEvents(kim)).toEqual([]);
  });

  it('agrees with GET /api/quality on who is below threshold', async () => {
    await runQualityChecks(t.db);
    const q = await qualityReport(t.db);
    const flagged = await t.db
      .selectFrom('annotatorQuality as q')
      .innerJoin('annotators as a', 'a.id', 'q.annotatorId')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('q.flagged', '=', true)
      .where('a.status', '<>', 'deleted')
      .executeTakeFirstOrThrow();
    expect(Number(flagged.n)).toBe(q.belowThresholdCount);
  });
});
