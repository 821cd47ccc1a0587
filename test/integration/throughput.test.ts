/** GET /api/monitoring/throughput: by day, week and month in the fleet's time zone, exact on clock-change days. */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedAnnotator, seedConfig, seedRole, seedWorkflow } from '../helpers/batches.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let alice = 0;
let bob = 0;
let workflowId = 0;
let annotationId = 0;

async function annotation(annotatorId: number, at: string, timeSpentMs: number | null, eventType = 'annotation_created') {
  await t.db
    .insertInto('annotationEvents')
    .values({ annotatorId, eventType, lsAnnotationId: ++annotationId, timeSpentMs, createdAt: at })
    .execute();
}
async function completedBatch(at: string) {
  await t.db.insertInto('assignments').values({ workflowId, annotatorId: alice, status: 'completed', completedAt: new Date(at) }).execute();
}
const setZone = (tz: string) => t.json('PUT', '/api/settings/monitoring.timeZone', { value: tz });

beforeAll(async () => {
  t = await startTestService();
  const role = await seedRole(t);
  workflowId = (await seedWorkflow(t, { labelingConfigId: (await seedConfig(t)).id })).id;
  alice = (await seedAnnotator(t, { roleId: role.id })).id;
  bob = (await seedAnnotator(t, { roleId: role.id })).id;
  // Europe/Paris springs forward on 2026-03-29 (a 23-hour day: 2026-03-28T23:00Z .. 2026-03-29T22:00Z).
  await annotation(alice, '2026-03-28T22:59:59Z', 10_000); // 23:59:59 on the 28th
  await annotation(alice, '2026-03-28T23:00:00Z', 20_000); // 00:00 on the 29th
  await annotation(bob, '2026-03-29T21:59:59Z', null); // 23:59:59 CEST on the 29th
  await annotation(bob, '2026-03-29T12:00:00Z', 40_000, 'annotation_updated'); // not an annotation
  await annotation(bob, '2026-03-29T22:00:00Z', 5_000); // 00:00 on the 30th
  await completedBatch('2026-03-28T22:30:00Z'); // the 28th
  await completedBatch('2026-03-29T21:30:00Z'); // the 29th
  // Asia/Kolkata (+05:30): 2026-01-02 starts at 2026-01-01T18:30Z, mid-hour.
  await annotation(alice, '2026-01-01T18:29:59Z', 1_000);
  await annotation(alice, '2026-01-01T18:30:00Z', 3_000);
  await annotation(bob, '2026-01-02T18:29:00Z', 5_000);
});
afterAll(async () => t?.close());

describe('throughput by period', () => {
  it('days in Europe/Paris around the spring change: 24, 23 and 24 hours, each event in its local day', async () => {
    await setZone('Europe/Paris');
    const res = await t.json('GET', '/api/monitoring/throughput?period=day&from=2026-03-28&to=2026-03-30');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      period: 'day',
      timeZone: 'Europe/Paris',
      from: '2026-03-28',
      to: '2026-03-30',
      periods: [
        { period: '2026-03-28', start: '2026-03-27T23:00:00.000Z', end: '2026-03-28T23:00:00.000Z', hours: 24, annotations: 1, completedBatches: 1, activeAnnotators: 1, meanTimePerTaskMs: 10_000 },
        { period: '2026-03-29', start: '2026-03-28T23:00:00.000Z', end: '2026-03-29T22:00:00.000Z', hours: 23, annotations: 2, completedBatches: 1, activeAnnotators: 2, meanTimePerTaskMs: 20_000 },
        { period: '2026-03-30', start: '2026-03-29T22:00:00.000Z', end: '2026-03-30T22:00:00.000Z', hours: 24, annotations: 1, completedBatches: 0, activeAnnotators: 1, meanTimePerTaskMs: 5_000 },
      ],
    });
  });

  it('ISO weeks and calendar months in the same zone', async () => {
    const weeks = (await t.json('GET', '/api/monitoring/throughput?period=week&from=2026-03-28&to=2026-03-30')).body.periods;
    expect(weeks.map((w: Record<string, unknown>) => [w.period, w.hours, w.annotations, w.completedBatches, w.activeAnnotators])).toEqual([
      ['2026-W13', 167, 3, 2, 2],
      ['2026-W14', 168, 1, 0, 1],
    ]);
    const months = (await t.json('GET', '/api/monitoring/throughput?period=month&from=2026-01-01&to=2026-03-31')).body.periods;
    expect(months.map((m: Record<string, unknown>) => [m.period, m.start, m.annotations])).toEqual([
      ['2026-01', '2025-12-31T23:00:00.000Z', 3],
      ['2026-02', '2026-01-31T23:00:00.000Z', 0],
      ['2026-03', '2026-02-28T23:00:00.000Z', 4],
    ]);
  });

  it('a zone whose midnight is not a whole UTC hour counts the partial hours exactly (Asia/Kolkata)', async () => {
    await setZone('Asia/Kolkata');
    const days = (await t.json('GET', '/api/monitoring/throughput?period=day&from=2026-01-01&to=2026-01-02')).body;
    expect(days.timeZone).toBe('Asia/Kolkata');
    expect(days.periods.map((d: Record<string, unknown>) => [d.period, d.start, d.annotations, d.activeAnnotators, d.meanTimePerTaskMs])).toEqual([
      ['2026-01-01', '2025-12-31T18:30:00.000Z', 1, 1, 1_000],
      ['2026-01-02', '2026-01-01T18:30:00.000Z', 2, 2, 4_000],
    ]);
    await setZone('UTC');
  });

  it('every period equals the same figures counted from the events themselves, in zones of whole, half and odd offsets, after deletions', async () => {
    // A third annotator's events over Sep–Nov 2025 (outside every range above), at pseudo-random
    // instants (fixed seed), some of them deleted again: the rollups' additions and subtractions.
    const carol = (await seedAnnotator(t, { roleId: (await seedRole(t)).id })).id;
    let seed = 20251;
    const rand = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const from = Date.parse('2025-09-01T00:00:00Z');
    for (let k = 0; k < 400; k++) {
      const at = new Date(from + Math.floor(rand() * 91 * 86_400_000)).toISOString();
      await annotation(k % 3 === 0 ? bob : carol, at, rand() < 0.2 ? null : Math.floor(rand() * 90_000));
    }
    await t.db.deleteFrom('annotationEvents').where('annotatorId', '=', carol).where('lsAnnotationId', '<', annotationId - 300).where(sql`ls_annotation_id % 4`, '=', 0).execute();
    for (const zone of ['UTC', 'Europe/Paris', 'Asia/Kolkata', 'America/St_Johns', 'Asia/Kathmandu']) {
      await setZone(zone);
      for (const period of ['day', 'week', 'month']) {
        const res = await t.json('GET', `/api/monitoring/throughput?period=${period}&from=2025-09-01&to=2025-11-30`);
        expect(res.status).toBe(200);
        for (const p of res.body.periods) {
          const { rows } = await sql<{ n: number; annotators: number; mean: number | null }>`
            SELECT count(*)::int AS n, count(DISTINCT annotator_id)::int AS annotators, round(avg(time_spent_ms))::int AS mean
              FROM annotation_events
             WHERE event_type = 'annotation_created' AND created_at >= ${p.start} AND created_at < ${p.end}`.execute(t.db);
          const want = rows[0]!;
          expect([p.annotations, p.activeAnnotators, p.meanTimePerTaskMs], `${zone} ${period} ${p.period}`).toEqual([want.n, want.annotators, want.mean]);
        }
      }
    }
    await setZone('UTC');
  });

  it('defaults to the last 30 days up to today, and refuses bad ranges with 400', async () => {
    const res = await t.json('GET', '/api/monitoring/throughput');
    expect(res.status).toBe(200);
    expect(res.body.periods).toHaveLength(30);
    expect(res.body.to).toBe(new Date().toISOString().slice(0, 10));
    expect((await t.json('GET', '/api/monitoring/throughput?period=month')).body.periods).toHaveLength(12);
    for (const q of ['period=year', 'from=2026-02-30', 'from=03/01/2026', 'from=2026-03-02&to=2026-03-01', 'period=day&from=2020-01-01&to=2026-01-01']) {
      const bad = await t.json('GET', `/api/monitoring/throughput?${q}`);
      expect(bad.status, q).toBe(400);
      expect(bad.body.error).toBeTruthy();
    }
  });
});
