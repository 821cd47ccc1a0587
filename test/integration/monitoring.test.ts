import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { monitoringRoutes } from '../../src/api/monitoring.ts';
import { annotatorMonitoring, fleetMonitoring, monitoringTimeZone } from '../../src/db/monitoring.ts';
import { qualityRoutes } from '../../src/api/quality.ts';
import { floorHour, lastHours, startOfDay, startOfNextDay } from '../../src/domain/time-buckets.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
beforeAll(async () => {
  t = await startTestService();
});
afterAll(async () => t?.close());

const NOW = new Date('2026-04-06T11:30:00.000Z');
const ZERO_DISTRIBUTION = [
  { bucket: '0-10s', count: 0 },
  { bucket: '10-30s', count: 0 },
  { bucket: '30-60s', count: 0 },
  { bucket: '60s+', count: 0 },
];
const distribution = (b0: number, b1: number, b2: number, b3: number) => [
  { bucket: '0-10s', count: b0 },
  { bucket: '10-30s', count: b1 },
  { bucket: '30-60s', count: b2 },
  { bucket: '60s+', count: b3 },
];

let seq = 0;
async function annotator(name: string, status: string, extra: Record<string, unknown> = {}): Promise<number> {
  const n = ++seq;
  const row = await t.db
    .insertInto('annotators')
    .values({ name, email: `${name.toLowerCase()}${n}@x.io`, subdomain: `${name.toLowerCase()}-${n}`, status: status as 'active', ...extra })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

async function event(annotatorId: number, at: string, timeSpentMs: number | null, eventType = 'annotation_created', lsTaskId: number | null = null) {
  await t.db
    .insertInto('annotationEvents')
    .values({ annotatorId, eventType, lsAnnotationId: ++seq, lsTaskId, timeSpentMs, createdAt: at } as never)
    .execute();
}

let workflowId: number;
async function assignment(annotatorId: number, status: string) {
  workflowId ??= (
    await t.db
      .insertInto('workflows')
      .values({ name: 'wf', s3SourcePath: 'in/', s3ExportPath: 'out/' })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
  await t.db.insertInto('assignments').values({ workflowId, annotatorId, status: status as 'pending' }).execute();
}

async function setSetting(key: string, value: unknown) {
  await sql`INSERT INTO settings (key, value) VALUES (${key}, ${JSON.stringify(value)}::jsonb)
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`.execute(t.db);
}
async function clearSetting(key: string) {
  await t.db.deleteFrom('settings').where('key', '=', key).execute();
}

/** Runs `fn` until the UTC hour and the UTC day are the same before and after it (at most 3 tries). */
async function withinOneHour<T>(fn: (now: Date) => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    const before = new Date();
    const result = await fn(before);
    if (floorHour(before).getTime() === floorHour(new Date()).getTime() || i >= 2) return result;
  }
}

describe('monitoring: empty fleet', () => {
  it('answers zeros, no summaries and 24 zero hours ending with the current hour', async () => {
    const res = await withinOneHour(async (now) => ({ now, res: await t.json('GET', '/api/monitoring') }));
    expect(res.res.status).toBe(200);
    expect(res.res.body).toEqual({
      activeAnnotators: 0,
      todayAnnotations: 0,
      inProgressAssignments: 0,
      annotationsPerHour: lastHours(res.now).map((h) => ({ hour: h.toISOString(), count: 0 })),
      annotatorSummaries: [],
    });
  });

  it('answers zeros for an annotator with no history', async () => {
    const id = await annotator('Idle', 'created');
    const res = await t.json('GET', `/api/monitoring/annotator/${id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      annotator: { id, name: 'Idle', status: 'created' },
      containerUptime: null,
      todayAnnotations: 0,
      annotationsPerHour: 0,
      timeDistribution: ZERO_DISTRIBUTION,
      assignmentStats: { total: 0, completed: 0, inProgress: 0 },
      recentEvents: [],
    });
    await t.db.deleteFrom('annotators').where('id', '=', id).execute();
  });
});

describe('monitoring: exact figures', () => {
  let alice: number, bob: number, carol: number, dave: number, eve: number;

  beforeAll(async () => {
    alice = await annotator('Alice', 'active', { statusChangedAt: '2026-04-06T07:00:00.000Z' });
    bob = await annotator('Bob', 'active', { statusChangedAt: '2026-04-06T11:29:30.000Z' });
    carol = await annotator('Carol', 'stopped');
    dave = await annotator('Dave', 'deleted');
    eve = await annotator('Eve', 'created');

    // Alice: both sides of the 11:00 boundary, the start of the day, yesterday inside and outside the window.
    await event(alice, '2026-04-05T11:59:59.999Z', 2000); // before the 24-hour window
    await event(alice, '2026-04-05T12:00:00.000Z', 2000); // first hour of the window
    await event(alice, '2026-04-05T23:59:59.999Z', 1000); // yesterday (UTC), inside the window
    await event(alice, '2026-04-06T00:00:00.000Z', 9999, 'annotation_created', 77); // first instant of today
    await event(alice, '2026-04-06T10:59:59.999Z', 5000);
    await event(alice, '2026-04-06T11:00:00.000Z', 15000);
    await event(alice, '2026-04-06T11:10:00.000Z', 99000, 'annotation_updated'); // not an annotation
    await event(alice, '2026-04-06T11:15:00.000Z', null, 'annotation_deleted'); // not an annotation
    await event(alice, '2026-04-06T11:29:59.000Z', null, 'annotation_created', 456); // untimed
    // Bob: every time bucket boundary; two events around 18:30 UTC yesterday (midnight in Kolkata).
    await event(bob, '2026-04-05T18:29:59.999Z', 1000);
    await event(bob, '2026-04-05T18:30:00.000Z', 70000);
    await event(bob, '2026-04-06T11:05:00.000Z', 30000);
    await event(bob, '2026-04-06T11:06:00.000Z', 59999);
    await event(bob, '2026-04-06T11:07:00.000Z', 60000);
    await event(bob, '2026-04-06T11:08:00.000Z', 29999);
    // Dave is deleted: his annotations count for the fleet, he has no summary.
    await event(dave, '2026-04-06T11:10:00.000Z', 10000);
    await event(dave, '2026-04-06T18:29:59.999Z', 10000); // later today in UTC and in Kolkata
    // Carol: 25 events three days ago (recentEvents caps at 20).
    for (let i = 0; i < 25; i++) {
      await event(carol, new Date(Date.parse('2026-04-03T08:00:00.000Z') + i * 1000).toISOString(), 1000, 'annotation_created', i);
    }

    for (const s of ['completed', 'completed', 'in_progress', 'cancelled', 'failed']) await assignment(alice, s);
    for (const s of ['completed', 'pending', 'pending']) await assignment(bob, s);
    await assignment(carol, 'cancelled');
    await assignment(dave, 'in_progress');

    // Container history: Alice went active at 06:58 (event) and the status changed at 07:00.
    await t.db
      .insertInto('containerEvents')
      .values([
        { annotatorId: alice, eventType: 'status_changed', fromStatus: 'starting', toStatus: 'active', createdAt: '2026-04-06T06:58:00.000Z' } as never,
        { annotatorId: carol, eventType: 'status_changed', fromStatus: 'starting', toStatus: 'active', createdAt: '2026-04-06T06:00:00.000Z' } as never,
      ])
      .execute();
  });

  const hoursWith = (counts: Record<string, number>) =>
    lastHours(NOW).map((h) => ({ hour: h.toISOString(), count: counts[h.toISOString()] ?? 0 }));

  it('fleet figures in UTC', async () => {
    expect(await fleetMonitoring(t.db, { now: NOW, timeZone: 'UTC' })).toEqual({
      activeAnnotators: 2,
      // Alice 4, Bob 4, Dave 2 (deleted annotators still count).
      todayAnnotations: 10,
      inProgressAssignments: 2,
      annotationsPerHour: hoursWith({
        '2026-04-05T12:00:00.000Z': 1,
        '2026-04-05T18:00:00.000Z': 2,
        '2026-04-05T23:00:00.000Z': 1,
        '2026-04-06T00:00:00.000Z': 1,
        '2026-04-06T10:00:00.000Z': 1,
        '2026-04-06T11:00:00.000Z': 7,
      }),
      annotatorSummaries: [
        // (9999 + 5000 + 15000) / 3 = 9999.67; completed 2 of 4 not cancelled.
        { id: alice, name: 'Alice', todayCount: 4, avgTimeMs: 10000, completionRate: 0.5 },
        // (30000 + 59999 + 60000 + 29999) / 4 = 44999.5; 1 of 3.
        { id: bob, name: 'Bob', todayCount: 4, avgTimeMs: 45000, completionRate: 0.3333 },
        { id: carol, name: 'Carol', todayCount: 0, avgTimeMs: null, completionRate: 0 },
        { id: eve, name: 'Eve', todayCount: 0, avgTimeMs: null, completionRate: 0 },
      ],
    });
  });

  it('an hour bucket is [h, h+1h): 10:59:59.999 and 11:00:00.000 fall in different hours', async () => {
    const m = await fleetMonitoring(t.db, { now: new Date('2026-04-06T11:00:00.000Z'), timeZone: 'UTC' });
    expect(m.annotationsPerHour).toHaveLength(24);
    expect(m.annotationsPerHour[0]!.hour).toBe('2026-04-05T12:00:00.000Z');
    expect(m.annotationsPerHour.at(-2)).toEqual({ hour: '2026-04-06T10:00:00.000Z', count: 1 });
    expect(m.annotationsPerHour.at(-1)).toEqual({ hour: '2026-04-06T11:00:00.000Z', count: 7 });
    const earlier = await fleetMonitoring(t.db, { now: new Date('2026-04-06T10:59:59.999Z'), timeZone: 'UTC' });
    expect(earlier.annotationsPerHour[0]).toEqual({ hour: '2026-04-05T11:00:00.000Z', count: 1 });
    expect(earlier.annotationsPerHour.at(-1)).toEqual({ hour: '2026-04-06T10:00:00.000Z', count: 1 });
  });

  it('a time zone moves "today": New York (UTC-4) and Kolkata (UTC+5:30, partial hours)', async () => {
    const ny = await fleetMonitoring(t.db, { now: NOW, timeZone: 'America/New_York' });
    // Today in New York is [04:00Z, 04:00Z next day): Alice 3 (00:00Z is yesterday there), Bob 4, Dave 2.
    expect(ny.todayAnnotations).toBe(9);
    expect(ny.annotatorSummaries.map((s) => [s.name, s.todayCount, s.avgTimeMs])).toEqual([
      ['Alice', 3, 10000],
      ['Bob', 4, 45000],
      ['Carol', 0, null],
      ['Eve', 0, null],
    ]);
    // The hourly chart is in UTC hours whatever the zone.
    expect(ny.annotationsPerHour).toEqual((await fleetMonitoring(t.db, { now: NOW, timeZone: 'UTC' })).annotationsPerHour);

    const kolkata = await fleetMonitoring(t.db, { now: NOW, timeZone: 'Asia/Kolkata' });
    // Today in Kolkata is [2026-04-05T18:30Z, 2026-04-06T18:30Z): Alice 5, Bob 5 (18:30:00.000 in,
    // 18:29:59.999 out), Dave 2 (18:29:59.999 today is the last millisecond of the day).
    expect(kolkata.todayAnnotations).toBe(12);
    expect(kolkata.annotatorSummaries.map((s) => [s.name, s.todayCount, s.avgTimeMs])).toEqual([
      ['Alice', 5, 7750], // (1000 + 9999 + 5000 + 15000) / 4 = 7749.75
      ['Bob', 5, 50000], // (70000 + 30000 + 59999 + 60000 + 29999) / 5 = 49999.6
      ['Carol', 0, null],
      ['Eve', 0, null],
    ]);
  });

  it('per annotator: uptime, today, rate, distribution, assignments, recent events', async () => {
    expect(await annotatorMonitoring(t.db, alice, { now: NOW, timeZone: 'UTC' })).toEqual({
      annotator: { id: alice, name: 'Alice', status: 'active' },
      // Since 07:00 (status_changed_at is later than the 06:58 event).
      containerUptime: '4h 30m',
      todayAnnotations: 4,
      annotationsPerHour: 0.35, // 4 / 11.5 hours
      timeDistribution: distribution(2, 1, 0, 0), // 9999, 5000 | 15000; the untimed one is in no bucket
      assignmentStats: { total: 5, completed: 2, inProgress: 1 },
      recentEvents: [
        { eventType: 'annotation_created', lsTaskId: 456, timeSpentMs: null, createdAt: '2026-04-06T11:29:59.000Z' },
        { eventType: 'annotation_deleted', lsTaskId: null, timeSpentMs: null, createdAt: '2026-04-06T11:15:00.000Z' },
        { eventType: 'annotation_updated', lsTaskId: null, timeSpentMs: 99000, createdAt: '2026-04-06T11:10:00.000Z' },
        { eventType: 'annotation_created', lsTaskId: null, timeSpentMs: 15000, createdAt: '2026-04-06T11:00:00.000Z' },
        { eventType: 'annotation_created', lsTaskId: null, timeSpentMs: 5000, createdAt: '2026-04-06T10:59:59.999Z' },
        { eventType: 'annotation_created', lsTaskId: 77, timeSpentMs: 9999, createdAt: '2026-04-06T00:00:00.000Z' },
        { eventType: 'annotation_created', lsTaskId: null, timeSpentMs: 1000, createdAt: '2026-04-05T23:59:59.999Z' },
        { eventType: 'annotation_created', lsTaskId: null, timeSpentMs: 2000, createdAt: '2026-04-05T12:00:00.000Z' },
        { eventType: 'annotation_created', lsTaskId: null, timeSpentMs: 2000, createdAt: '2026-04-05T11:59:59.999Z' },
      ],
    });

    const b = await annotatorMonitoring(t.db, bob, { now: NOW, timeZone: 'UTC' });
    expect(b.containerUptime).toBe('0m'); // active for 30 seconds
    expect(b.todayAnnotations).toBe(4);
    expect(b.annotationsPerHour).toBe(0.35);
    expect(b.timeDistribution).toEqual(distribution(0, 1, 2, 1)); // 29999 | 30000, 59999 | 60000
    expect(b.assignmentStats).toEqual({ total: 3, completed: 1, inProgress: 0 });

    const bk = await annotatorMonitoring(t.db, bob, { now: NOW, timeZone: 'Asia/Kolkata' });
    expect(bk.todayAnnotations).toBe(5);
    expect(bk.timeDistribution).toEqual(distribution(0, 1, 2, 2));
    expect(bk.annotationsPerHour).toBe(0.29); // 5 / 17 hours since 18:30Z

    const c = await annotatorMonitoring(t.db, carol, { now: NOW, timeZone: 'UTC' });
    expect(c.containerUptime).toBeNull(); // stopped, whatever its history
    expect(c.todayAnnotations).toBe(0);
    expect(c.annotationsPerHour).toBe(0);
    expect(c.timeDistribution).toEqual(ZERO_DISTRIBUTION);
    expect(c.assignmentStats).toEqual({ total: 1, completed: 0, inProgress: 0 });
    expect(c.recentEvents).toHaveLength(20);
    expect(c.recentEvents[0]).toEqual({ eventType: 'annotation_created', lsTaskId: 24, timeSpentMs: 1000, createdAt: '2026-04-03T08:00:24.000Z' });
    expect(c.recentEvents[19]!.createdAt).toBe('2026-04-03T08:00:05.000Z');
  });

  it('uptime restarts at a later transition to active (a container restart while active)', async () => {
    await t.db
      .insertInto('containerEvents')
      .values({ annotatorId: alice, eventType: 'container_restarted', fromStatus: 'active', toStatus: 'active', createdAt: '2026-04-06T08:45:00.000Z' } as never)
      .execute();
    expect((await annotatorMonitoring(t.db, alice, { now: NOW, timeZone: 'UTC' })).containerUptime).toBe('2h 45m');
    expect((await annotatorMonitoring(t.db, alice, { now: new Date('2026-04-08T09:46:59.999Z'), timeZone: 'UTC' })).containerUptime).toBe('2d 1h 1m');
  });

  it('a deleted annotator keeps their page, with status deleted and no uptime', async () => {
    const d = await annotatorMonitoring(t.db, dave, { now: NOW, timeZone: 'UTC' });
    expect(d.annotator).toEqual({ id: dave, name: 'Dave', status: 'deleted' });
    expect(d.containerUptime).toBeNull();
    expect(d.todayAnnotations).toBe(2);
    expect(d.timeDistribution).toEqual(distribution(0, 2, 0, 0));
    expect(d.assignmentStats).toEqual({ total: 1, completed: 0, inProgress: 1 });
  });

  it('the rollup follows deletions and updates of events', async () => {
    const before = await annotatorMonitoring(t.db, eve, { now: NOW, timeZone: 'UTC' });
    expect(before.todayAnnotations).toBe(0);
    await event(eve, '2026-04-06T09:00:00.000Z', 5000);
    await event(eve, '2026-04-06T09:30:00.000Z', 45000);
    let e = await annotatorMonitoring(t.db, eve, { now: NOW, timeZone: 'UTC' });
    expect([e.todayAnnotations, e.timeDistribution]).toEqual([2, distribution(1, 0, 1, 0)]);
    await t.db.updateTable('annotationEvents').set({ timeSpentMs: 65000 }).where('annotatorId', '=', eve).where('timeSpentMs', '=', 5000).execute();
    e = await annotatorMonitoring(t.db, eve, { now: NOW, timeZone: 'UTC' });
    expect([e.todayAnnotations, e.timeDistribution]).toEqual([2, distribution(0, 0, 1, 1)]);
    await t.db.deleteFrom('annotationEvents').where('annotatorId', '=', eve).execute();
    e = await annotatorMonitoring(t.db, eve, { now: NOW, timeZone: 'UTC' });
    expect([e.todayAnnotations, e.timeDistribution]).toEqual([0, ZERO_DISTRIBUTION]);
    const { n } = await t.db
      .selectFrom('annotationHourly')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('annotatorId', '=', eve)
      .executeTakeFirstOrThrow();
    expect(Number(n)).toBe(0);
  });
});

describe('monitoring: "today" equals count(*) over the raw events', () => {
  // Events every 7 min 13 s over four days (times not on hour or day boundaries), plus one on each
  // side of every UTC midnight and of every Kolkata and New York midnight; some untimed, some not
  // annotation_created. The oracle is independent of the code under test: an event is today when
  // its local date in the zone (PostgreSQL's AT TIME ZONE) is the local date of `now`.
  const ZONES = ['UTC', 'America/New_York', 'Asia/Kolkata', 'Pacific/Chatham', 'America/St_Johns', 'Pacific/Kiritimati'];
  const NOWS = [
    '2026-04-06T00:00:00.000Z', // the first instant of a UTC day
    '2026-04-06T23:59:59.999Z', // its last
    '2026-04-06T18:29:59.999Z', // the last instant of a Kolkata day
    '2026-04-06T18:30:00.000Z', // the first of the next
    '2026-04-07T03:59:59.999Z', // New York's last instant of 2026-04-06
    '2026-04-07T13:17:41.250Z',
  ];
  let ids: number[];

  beforeAll(async () => {
    ids = [await annotator('Oracle1', 'active'), await annotator('Oracle2', 'stopped'), await annotator('Oracle3', 'active')];
    await sql`
      INSERT INTO annotation_events (annotator_id, event_type, ls_annotation_id, time_spent_ms, created_at)
      SELECT (${sql.val(ids)}::int[])[1 + g % 3],
             CASE WHEN g % 11 = 0 THEN 'annotation_updated' ELSE 'annotation_created' END,
             5000000 + g, CASE WHEN g % 7 = 0 THEN NULL ELSE (g * 7919) % 90000 END,
             timestamptz '2026-04-04T00:00:00Z' + make_interval(secs => g * 433)
        FROM generate_series(0, 800) g`.execute(t.db);
    const edges = ['2026-04-05T00:00:00Z', '2026-04-06T00:00:00Z', '2026-04-07T00:00:00Z', '2026-04-05T18:30:00Z', '2026-04-06T18:30:00Z', '2026-04-06T04:00:00Z', '2026-04-07T04:00:00Z'];
    for (const [i, e] of edges.entries()) {
      await event(ids[i % 3]!, new Date(Date.parse(e) - 1).toISOString(), 9000 + i);
      await event(ids[(i + 1) % 3]!, e, 61000 + i);
    }
  });

  it('per annotator, in every zone, at day boundaries', async () => {
    let compared = 0;
    for (const tz of ZONES) {
      for (const iso of NOWS) {
        const now = new Date(iso);
        const { rows } = await sql<{ annotatorId: number; n: number; timed: number; spent: number; b: number[] }>`
          SELECT annotator_id, count(*)::int AS n, count(time_spent_ms)::int AS timed, coalesce(sum(time_spent_ms), 0)::float8 AS spent,
                 ARRAY[count(*) FILTER (WHERE time_spent_ms < 10000), count(*) FILTER (WHERE time_spent_ms >= 10000 AND time_spent_ms < 30000),
                       count(*) FILTER (WHERE time_spent_ms >= 30000 AND time_spent_ms < 60000), count(*) FILTER (WHERE time_spent_ms >= 60000)]::int[] AS b
            FROM annotation_events
           WHERE event_type = 'annotation_created' AND annotator_id = ANY(${sql.val(ids)}::int[])
             AND (created_at AT TIME ZONE ${tz})::date = (${now}::timestamptz AT TIME ZONE ${tz})::date
           GROUP BY annotator_id`.execute(t.db);
        const raw = new Map(rows.map((r) => [r.annotatorId, r]));
        const fleet = await fleetMonitoring(t.db, { now, timeZone: tz });
        for (const id of ids) {
          const r = raw.get(id);
          const label = `${tz} at ${iso}, annotator ${id}`;
          const summary = fleet.annotatorSummaries.find((s) => s.id === id)!;
          expect([summary.todayCount, summary.avgTimeMs], label).toEqual([
            r?.n ?? 0,
            r && r.timed > 0 ? Math.round(r.spent / r.timed) : null,
          ]);
          const one = await annotatorMonitoring(t.db, id, { now, timeZone: tz });
          expect([one.todayAnnotations, one.timeDistribution.map((d) => d.count)], label).toEqual([r?.n ?? 0, r?.b ?? [0, 0, 0, 0]]);
          if (r) compared++;
        }
      }
    }
    // The fixture really put annotations in most of the days compared.
    expect(compared).toBeGreaterThan(ZONES.length * NOWS.length * 2);
  });
});

describe('monitoring: the time-zone setting', () => {
  it('defaults to UTC, takes a valid IANA name and ignores an invalid one', async () => {
    expect(await monitoringTimeZone(t.db)).toBe('UTC');
    await setSetting('monitoring.timeZone', 'Asia/Kolkata');
    expect(await monitoringTimeZone(t.db)).toBe('Asia/Kolkata');
    for (const bad of ['Mars/Olympus', 42, null, '']) {
      await setSetting('monitoring.timeZone', bad);
      expect(await monitoringTimeZone(t.db), String(bad)).toBe('UTC');
    }
    await clearSetting('monitoring.timeZone');
  });

  it('moves "today" over HTTP', async () => {
    // Events every 30 minutes over the last day: zones whose days start at different instants
    // count different numbers of them as today.
    const id = await annotator('Zed', 'active');
    const realNow = Date.now();
    const times = Array.from({ length: 48 }, (_, i) => new Date(realNow - (i + 1) * 1_800_000 + 60_000));
    for (const at of times) await event(id, at.toISOString(), 1000);
    const expectedToday = (tz: string, now: Date) =>
      times.filter((at) => at >= startOfDay(now, tz) && at < startOfNextDay(now, tz)).length;

    const seen = new Set<number>();
    for (const tz of ['Pacific/Kiritimati', 'Pacific/Pago_Pago', 'Asia/Kolkata', 'America/New_York']) {
      await setSetting('monitoring.timeZone', tz);
      const { now, res, one } = await withinOneHour(async (now) => ({
        now,
        res: await t.json('GET', '/api/monitoring'),
        one: await t.json('GET', `/api/monitoring/annotator/${id}`),
      }));
      const zed = res.body.annotatorSummaries.find((s: { id: number }) => s.id === id);
      expect(zed.todayCount, tz).toBe(expectedToday(tz, now));
      expect(one.body.todayAnnotations, tz).toBe(expectedToday(tz, now));
      seen.add(zed.todayCount);
    }
    // Four days starting hours apart cannot all hold the same events.
    expect(seen.size).toBeGreaterThan(1);
    await clearSetting('monitoring.timeZone');
  });
});

describe('monitoring: HTTP', () => {
  it('serves the same figures as the functions it wraps', async () => {
    const { res, expected } = await withinOneHour(async (now) => ({
      res: await t.json('GET', '/api/monitoring'),
      expected: await fleetMonitoring(t.db, { now }),
    }));
    expect(res.status).toBe(200);
    expect(res.body).toEqual(expected);
  });

  it('answers concurrent requests alike, each including what was written before it', async () => {
    const id = await annotator('Concurrent', 'active');
    await event(id, new Date().toISOString(), 4000);
    await assignment(id, 'completed');
    const all = await Promise.all(Array.from({ length: 8 }, () => t.json('GET', '/api/monitoring')));
    for (const res of all) {
      expect(res.status).toBe(200);
      expect(res.body.annotatorSummaries.find((s: { id: number }) => s.id === id)).toEqual({
        id,
        name: 'Concurrent',
        todayCount: 1,
        avgTimeMs: 4000,
        completionRate: 1,
      });
    }
    // A write after a response is in the next one.
    await assignment(id, 'failed');
    const next = await t.json('GET', '/api/monitoring');
    expect(next.body.annotatorSummaries.find((s: { id: number }) => s.id === id).completionRate).toBe(0.5);
  });

  it('answers 401 without a session', async () => {
    expect(await t.anonymous.json('GET', '/api/monitoring')).toMatchObject({ status: 401, body: { error: 'Unauthorized' } });
    expect(await t.anonymous.json('GET', '/api/monitoring/annotator/1')).toMatchObject({ status: 401, body: { error: 'Unauthorized' } });
  });

  it('answers 404 for a missing annotator and 400 for an id that is not a positive integer', async () => {
    const missing = await t.json('GET', '/api/monitoring/annotator/424242');
    expect(missing).toMatchObject({ status: 404, body: { error: 'Annotator not found' } });
    for (const id of ['abc', '0', '-1', '1.5', '99999999999']) {
      const res = await t.json('GET', `/api/monitoring/annotator/${id}`);
      expect(res.status, id).toBe(400);
      expect(res.body.error).toBe('Validation failed');
    }
  });

  it('describes its routes for the OpenAPI document', async () => {
    const info = { title: 't', version: '1' };
    const monitoring = monitoringRoutes(t.ctx).getOpenAPI31Document({ openapi: '3.1.0', info });
    expect(Object.keys(monitoring.paths ?? {})).toEqual(['/monitoring', '/monitoring/annotator/{id}']);
    expect(Object.keys(monitoring.components?.schemas ?? {})).toEqual(expect.arrayContaining(['Monitoring', 'AnnotatorMonitoring']));
    const quality = qualityRoutes(t.ctx).getOpenAPI31Document({ openapi: '3.1.0', info });
    expect(Object.keys(quality.paths ?? {})).toEqual(['/quality']);
  });
});
