/**
 * The counters and rollups of migrations/0014_rollups.sql and the workflow graph's stats of
 * migrations/0026_workflow_stats.sql (rollup rows plus unfolded deltas) stay equal to a from-scratch aggregate
 * of the rows they summarise, whatever mix of inserts, updates and deletes (one row or many per
 * statement, concurrent transactions, rollbacks, TRUNCATE) produced those rows.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  annotatorAssignmentStats,
  countAnnotators,
  countAssignments,
  countRejections,
} from '../../src/db/counts.ts';
import { foldRollups, workflowGraphStats } from '../../src/db/graph-stats.ts';
import type { Db } from '../../src/db/index.ts';
import type { AnnotatorStatus, AssignmentStatus, RejectionMode } from '../../src/db/types.ts';
import { seededRandom } from '../../src/domain/gold-mixing.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

const ANNOTATOR_STATUSES = ['created', 'starting', 'active', 'stopping', 'stopped', 'error', 'deleted'];
const ASSIGNMENT_STATUSES = ['pending', 'in_progress', 'completed', 'failed', 'cancelled'];
const ACTIONS = ['none', 'archive', 'route_to_workflow'];

type Row = Record<string, string | number>;

/** Rows as "key → value" strings, zero-valued rows dropped (a counter at 0 equals no row). */
function table(rows: Row[], keys: string[]): string[] {
  return rows
    .filter((r) => Object.entries(r).some(([k, v]) => !keys.includes(k) && Number(v) !== 0))
    .map((r) => [...keys.map((k) => String(r[k])), ...Object.keys(r).filter((k) => !keys.includes(k)).map((k) => `${k}=${Number(r[k])}`)].join(' '))
    .sort();
}

async function rows(db: Db, query: ReturnType<typeof sql>): Promise<Row[]> {
  return (await query.execute(db)).rows as Row[];
}

/** The graph's stats from their definitions over the base tables (GET /api/workflows/graph's description). */
const scratchGraphStats = sql`
  SELECT w.id AS workflow_id,
         (SELECT count(*) FROM assignments a WHERE a.workflow_id = w.id)::int AS total_assignments,
         (SELECT count(*) FROM assignments a WHERE a.workflow_id = w.id AND a.status = 'completed')::int AS completed_assignments,
         (SELECT count(DISTINCT annotator_id) FROM assignments a
           WHERE a.workflow_id = w.id AND a.status IN ('pending', 'in_progress'))::int AS active_annotators,
         (SELECT coalesce(sum(completed_count), 0) FROM assignments a WHERE a.workflow_id = w.id)::float8 AS completed_tasks,
         (SELECT count(*) FROM rejections r WHERE r.workflow_id = w.id)::int AS rejections
    FROM workflows w ORDER BY w.id`;

/** What the graph reads (migration 0026's rollup plus its unfolded deltas), in scratchGraphStats' shape. */
const graphStats = (db: Db) =>
  workflowGraphStats(db)
    .orderBy('s.workflowId')
    .execute()
    .then((rs) => rs.map(({ pendingDeltas: _, ...r }) => r));

/** Each rollup beside the same figures computed from the base tables. */
async function snapshot(db: Db) {
  return {
    graphStats: {
      rollup: table((await graphStats(db)) as unknown as Row[], ['workflowId']),
      scratch: table(await rows(db, scratchGraphStats), ['workflowId']),
    },
    fleetHourly: {
      rollup: table(
        await rows(
          db,
          sql`SELECT hour, sum(created_count) AS annotations
                FROM (SELECT hour, created_count FROM annotation_fleet_hourly
                      UNION ALL SELECT hour, created_count FROM annotation_fleet_hourly_deltas) f GROUP BY hour`,
        ),
        ['hour'],
      ),
      scratch: table(
        await rows(
          db,
          sql`SELECT date_trunc('hour', created_at, 'UTC') AS hour, count(*) AS annotations FROM annotation_events
               WHERE event_type = 'annotation_created' GROUP BY 1`,
        ),
        ['hour'],
      ),
    },
    // Migration 0033: every column of the per-annotator daily rollup, from the events themselves.
    annotationDaily: {
      rollup: table(
        await rows(
          db,
          sql`SELECT annotator_id, day, created_count, timed_count, time_spent_ms, under10s, under30s, under60s, over60s
                FROM annotation_daily`,
        ),
        ['annotatorId', 'day'],
      ),
      scratch: table(
        await rows(
          db,
          sql`SELECT annotator_id, date_trunc('day', created_at, 'UTC') AS day, count(*) AS created_count,
                     count(time_spent_ms) AS timed_count, coalesce(sum(time_spent_ms), 0) AS time_spent_ms,
                     count(*) FILTER (WHERE time_spent_ms < 10000) AS under10s,
                     count(*) FILTER (WHERE time_spent_ms >= 10000 AND time_spent_ms < 30000) AS under30s,
                     count(*) FILTER (WHERE time_spent_ms >= 30000 AND time_spent_ms < 60000) AS under60s,
                     count(*) FILTER (WHERE time_spent_ms >= 60000) AS over60s
                FROM annotation_events WHERE event_type = 'annotation_created' GROUP BY 1, 2`,
        ),
        ['annotatorId', 'day'],
      ),
    },
    openWorkPerAnnotator: {
      rollup: table(await rows(db, sql`SELECT workflow_id, annotator_id, assignments FROM workflow_annotator_open`), ['workflowId', 'annotatorId']),
      scratch: table(
        await rows(
          db,
          sql`SELECT workflow_id, annotator_id, count(*) AS assignments FROM assignments
               WHERE status IN ('pending', 'in_progress') GROUP BY 1, 2`,
        ),
        ['workflowId', 'annotatorId'],
      ),
    },
    annotatorCounts: {
      rollup: table(await rows(db, sql`SELECT status, role_id, annotators FROM annotator_counts`), ['status', 'roleId']),
      scratch: table(
        await rows(db, sql`SELECT status, coalesce(role_id, 0) AS role_id, count(*) AS annotators FROM annotators GROUP BY 1, 2`),
        ['status', 'roleId'],
      ),
    },
    workflowAssignments: {
      rollup: table(
        await rows(db, sql`SELECT workflow_id, status, assignments, completed_tasks FROM workflow_assignment_counts`),
        ['workflowId', 'status'],
      ),
      scratch: table(
        await rows(
          db,
          sql`SELECT workflow_id, status, count(*) AS assignments, sum(completed_count) AS completed_tasks
                FROM assignments WHERE status NOT IN ('pending', 'in_progress') GROUP BY 1, 2`,
        ),
        ['workflowId', 'status'],
      ),
    },
    annotatorAssignments: {
      rollup: table(await rows(db, sql`SELECT annotator_id, status, assignments FROM annotator_assignment_counts`), ['annotatorId', 'status']),
      scratch: table(
        await rows(
          db,
          sql`SELECT annotator_id, status, count(*) AS assignments FROM assignments
               WHERE status NOT IN ('pending', 'in_progress') GROUP BY 1, 2`,
        ),
        ['annotatorId', 'status'],
      ),
    },
    rejections: {
      rollup: table(await rows(db, sql`SELECT workflow_id, action_taken, rejections FROM workflow_rejection_counts`), ['workflowId', 'actionTaken']),
      scratch: table(
        await rows(db, sql`SELECT workflow_id, action_taken, count(*) AS rejections FROM rejections GROUP BY 1, 2`),
        ['workflowId', 'actionTaken'],
      ),
    },
  };
}

async function expectRollupsMatch(db: Db, context = '') {
  const s = await snapshot(db);
  for (const [name, { rollup, scratch }] of Object.entries(s)) {
    expect(rollup, `${name} ${context}`).toEqual(scratch);
  }
  return s;
}

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase();
  db = database.handle.db;
  await sql`INSERT INTO roles (name) SELECT 'role ' || g FROM generate_series(1, 4) g`.execute(db);
  await sql`INSERT INTO workflows (name, s3_source_path, s3_export_path) SELECT 'wf ' || g, 'in/', 'out/' FROM generate_series(1, 5) g`.execute(db);
});

afterAll(async () => {
  await database?.drop();
});

describe('rollups (migrations 0014, 0026)', () => {
  it('start equal to the aggregate and stay equal through a random mix of writes', async () => {
    const seed = Number(process.env.ROLLUP_SEED ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
    const role = () => (random() < 0.2 ? null : int(1, 4));
    let annotatorSeq = 0;
    const newAnnotator = () => {
      annotatorSeq++;
      return sql`(${`A${annotatorSeq}`}, ${`a${annotatorSeq}@rollup.test`}, ${`a-${annotatorSeq}`}, ${role()}, ${pick(ANNOTATOR_STATUSES)})`;
    };
    const someAnnotator = sql`(SELECT id FROM annotators ORDER BY random() LIMIT 1)`;
    const someAssignment = sql`(SELECT id FROM assignments ORDER BY random() LIMIT 1)`;
    const someRejection = sql`(SELECT id FROM rejections ORDER BY random() LIMIT 1)`;

    await sql`INSERT INTO annotators (name, email, subdomain, role_id, status) VALUES ${sql.join([newAnnotator(), newAnnotator(), newAnnotator()])}`.execute(db);
    await sql`SELECT setseed(${random() * 2 - 1})`.execute(db);

    const operations: Array<() => ReturnType<typeof sql>> = [
      // Annotators: one row or several per statement; changes that count and changes that do not.
      () => sql`INSERT INTO annotators (name, email, subdomain, role_id, status) VALUES ${sql.join(Array.from({ length: int(1, 4) }, newAnnotator))}`,
      () => sql`UPDATE annotators SET status = ${pick(ANNOTATOR_STATUSES)} WHERE id = ${someAnnotator}`,
      () => sql`UPDATE annotators SET role_id = ${role()} WHERE id = ${someAnnotator}`,
      () => sql`UPDATE annotators SET status = ${pick(ANNOTATOR_STATUSES)}, role_id = ${role()} WHERE id % ${int(2, 5)} = ${int(0, 1)}`,
      () => sql`UPDATE annotators SET status = status, role_id = role_id, last_active_at = now() WHERE id % 2 = 0`,
      () => sql`UPDATE annotators SET name = name || '!' WHERE id = ${someAnnotator}`,
      () => sql`DELETE FROM annotators WHERE id = (SELECT a.id FROM annotators a
                 WHERE NOT EXISTS (SELECT 1 FROM assignments s WHERE s.annotator_id = a.id)
                   AND NOT EXISTS (SELECT 1 FROM rejections r WHERE a.id IN (r.original_annotator_id, r.reviewer_annotator_id))
                 ORDER BY random() LIMIT 1)`,
      // Assignments: open and closed, moved between them, between closed statuses, workflows and
      // annotators; completed_count changed while open (not counted) and while closed (counted).
      () => sql`INSERT INTO assignments (workflow_id, annotator_id, status, completed_count)
                SELECT ${int(1, 5)}, id, ${pick(ASSIGNMENT_STATUSES)}, ${int(0, 50)} FROM annotators ORDER BY random() LIMIT ${int(1, 5)}`,
      () => sql`UPDATE assignments SET status = ${pick(ASSIGNMENT_STATUSES)} WHERE id = ${someAssignment}`,
      () => sql`UPDATE assignments SET status = ${pick(ASSIGNMENT_STATUSES)}, completed_count = completed_count + ${int(0, 3)}
                 WHERE id % ${int(2, 4)} = ${int(0, 1)}`,
      () => sql`UPDATE assignments SET completed_count = completed_count + 1 WHERE status IN ('pending', 'in_progress')`,
      () => sql`UPDATE assignments SET completed_count = greatest(completed_count - 1, 0) WHERE id = ${someAssignment}`,
      () => sql`UPDATE assignments SET workflow_id = ${int(1, 5)} WHERE id = ${someAssignment}`,
      () => sql`UPDATE assignments SET annotator_id = ${someAnnotator} WHERE id = ${someAssignment}`,
      () => sql`UPDATE assignments SET updated_at = now(), error = 'x' WHERE id = ${someAssignment}`,
      () => sql`DELETE FROM assignments WHERE id = ${someAssignment}`,
      () => sql`DELETE FROM assignments WHERE id % ${int(5, 9)} = 0 AND status = ${pick(ASSIGNMENT_STATUSES)}`,
      // Rejections.
      () => sql`INSERT INTO rejections (workflow_id, original_annotator_id, image_key, action_taken)
                SELECT ${int(1, 5)}, id, 'img', ${pick(ACTIONS)} FROM annotators ORDER BY random() LIMIT ${int(1, 3)}`,
      () => sql`UPDATE rejections SET workflow_id = ${int(1, 5)}, action_taken = ${pick(ACTIONS)} WHERE id = ${someRejection}`,
      () => sql`UPDATE rejections SET reason = 'r' WHERE id = ${someRejection}`,
      () => sql`DELETE FROM rejections WHERE id = ${someRejection}`,
      // Annotation events (the fleet's hourly rollup): several per statement, moved between hours
      // and types, deleted (and deleted with their annotator, above).
      () => sql`INSERT INTO annotation_events (annotator_id, event_type, ls_annotation_id, created_at, time_spent_ms)
                SELECT id, ${pick(['annotation_created', 'annotation_updated'])}, (random() * 1e9)::int,
                       now() - make_interval(mins => (random() * 3000)::int),
                       CASE WHEN random() < 0.2 THEN NULL ELSE (random() * 90000)::int END
                  FROM annotators ORDER BY random() LIMIT ${int(1, 6)}`,
      () => sql`UPDATE annotation_events SET created_at = created_at - interval '1 hour' WHERE id % ${int(2, 5)} = 0`,
      () => sql`UPDATE annotation_events SET time_spent_ms = ${pick([null, 5000, 45000, 75000])} WHERE id % ${int(3, 7)} = 0`,
      () => sql`UPDATE annotation_events SET event_type = ${pick(['annotation_created', 'annotation_updated'])}
                 WHERE id = (SELECT id FROM annotation_events ORDER BY random() LIMIT 1)`,
      () => sql`DELETE FROM annotation_events WHERE id IN (SELECT id FROM annotation_events ORDER BY random() LIMIT ${int(1, 3)})`,
      // The folds (also inside transactions that roll back).
      () => sql`SELECT rollups_fold()`,
    ];

    const counts = new Map<number, number>();
    // Which rollups held rows at some check: a mix may well end with, say, every rejection deleted.
    const nonEmpty = new Set<string>();
    const check = async (context: string) => {
      const s = await expectRollupsMatch(db, context);
      for (const [name, { rollup }] of Object.entries(s)) if (rollup.length > 0) nonEmpty.add(name);
      return s;
    };
    for (let step = 0; step < 600; step++) {
      const i = Math.floor(random() * operations.length);
      counts.set(i, (counts.get(i) ?? 0) + 1);
      if (random() < 0.1) {
        // A transaction of several writes that rolls back leaves the rollups as they were.
        await db
          .transaction()
          .execute(async (trx) => {
            for (let k = 0; k < 3; k++) await pick(operations)().execute(trx);
            throw new Error('roll back');
          })
          .catch((err: Error) => {
            if (err.message !== 'roll back') throw err;
          });
      } else {
        await operations[i]!().execute(db);
      }
      if (step % 100 === 99) await check(`(ROLLUP_SEED=${seed}, step ${step})`);
    }
    const s = await check(`(ROLLUP_SEED=${seed})`);
    // The mix really exercised every operation and had something to count in every rollup.
    expect(counts.size, `ROLLUP_SEED=${seed}`).toBe(operations.length);
    expect([...nonEmpty].sort(), `ROLLUP_SEED=${seed}`).toEqual(Object.keys(s).sort());
  });

  it('concurrent transactions moving rows between the same counters lose no update', async () => {
    await sql`INSERT INTO annotators (name, email, subdomain, role_id, status)
      SELECT 'C' || g, 'c' || g || '@rollup.test', 'c-' || g, 1, 'created' FROM generate_series(1, 40) g`.execute(db);
    const ids = (await sql<{ id: number }>`SELECT id FROM annotators WHERE email LIKE 'c%@rollup.test' ORDER BY id`.execute(db)).rows.map((r) => r.id);
    await sql`INSERT INTO assignments (workflow_id, annotator_id, status) SELECT 1, id, 'in_progress' FROM annotators WHERE id = ANY(${ids})`.execute(db);
    // 40 transactions at once, each closing one assignment and moving one annotator, both through
    // the same few counter rows.
    await Promise.all(
      ids.map((id, i) =>
        db.transaction().execute(async (trx) => {
          await sql`UPDATE assignments SET status = ${i % 2 ? 'completed' : 'failed'}, completed_count = ${i} WHERE annotator_id = ${id} AND workflow_id = 1 AND status = 'in_progress'`.execute(trx);
          await sql`UPDATE annotators SET status = 'active' WHERE id = ${id}`.execute(trx);
        }),
      ),
    );
    await expectRollupsMatch(db);

    // The graph's facts at once: reservations (open a batch), webhooks (a task annotated in an
    // open batch), closes, rejections, beside folds.
    await Promise.all([
      ...ids.map((id, i) =>
        db.transaction().execute(async (trx) => {
          await sql`INSERT INTO assignments (workflow_id, annotator_id, status) VALUES (${1 + (i % 3)}, ${id}, 'in_progress')`.execute(trx);
          for (let k = 0; k < 3; k++) {
            await sql`UPDATE assignments SET completed_count = completed_count + 1
                       WHERE annotator_id = ${id} AND status = 'in_progress'`.execute(trx);
          }
          if (i % 4 === 0) await sql`UPDATE assignments SET status = 'completed' WHERE annotator_id = ${id} AND status = 'in_progress'`.execute(trx);
          await sql`INSERT INTO rejections (workflow_id, original_annotator_id, image_key, action_taken) VALUES (${1 + (i % 3)}, ${id}, 'img', 'none')`.execute(trx);
        }),
      ),
      ...Array.from({ length: 10 }, () => foldRollups(db)),
    ]);
    await expectRollupsMatch(db);
  });

  it('the counts the API reads equal count(*) for every filter, and the stats their definitions', async () => {
    const n = async (q: ReturnType<typeof sql>) => Number(((await q.execute(db)).rows[0] as { n: number }).n);
    const roles = [undefined, 1, 2, 3, 4];
    for (const status of [undefined, ...(ANNOTATOR_STATUSES as AnnotatorStatus[])]) {
      for (const roleId of roles) {
        const expected = await n(sql`SELECT count(*) AS n FROM annotators
          WHERE ${status === undefined ? sql`status <> 'deleted'` : sql`status = ${status}`}
            AND ${roleId === undefined ? sql`true` : sql`role_id = ${roleId}`}`);
        expect(await countAnnotators(db, { status, roleId }), `annotators ${status} ${roleId}`).toBe(expected);
      }
    }
    const annotatorIds = (await sql<{ id: number }>`SELECT id FROM annotators ORDER BY id LIMIT 3`.execute(db)).rows.map((r) => r.id);
    let nonZero = 0;
    for (const status of [undefined, ...(ASSIGNMENT_STATUSES as AssignmentStatus[])]) {
      for (const workflowId of [undefined, 1, 3]) {
        for (const annotatorId of [undefined, ...annotatorIds]) {
          const expected = await n(sql`SELECT count(*) AS n FROM assignments
            WHERE ${status === undefined ? sql`true` : sql`status = ${status}`}
              AND ${workflowId === undefined ? sql`true` : sql`workflow_id = ${workflowId}`}
              AND ${annotatorId === undefined ? sql`true` : sql`annotator_id = ${annotatorId}`}`);
          if (expected > 0) nonZero++;
          expect(await countAssignments(db, { status, workflowId, annotatorId }), `assignments ${status} ${workflowId} ${annotatorId}`).toBe(expected);
        }
      }
    }
    expect(nonZero).toBeGreaterThan(10);
    for (const actionTaken of [undefined, ...(ACTIONS as RejectionMode[])]) {
      for (const workflowId of [undefined, 2]) {
        for (const annotatorId of [undefined, ...annotatorIds]) {
          const expected = await n(sql`SELECT count(*) AS n FROM rejections
            WHERE ${actionTaken === undefined ? sql`true` : sql`action_taken = ${actionTaken}`}
              AND ${workflowId === undefined ? sql`true` : sql`workflow_id = ${workflowId}`}
              AND ${annotatorId === undefined ? sql`true` : sql`original_annotator_id = ${annotatorId}`}`);
          expect(await countRejections(db, { actionTaken, workflowId, annotatorId }), `rejections ${actionTaken} ${workflowId} ${annotatorId}`).toBe(expected);
        }
      }
    }

    // The graph's stats, from their definitions over the base tables, before and after a fold.
    const scratchGraph = (await scratchGraphStats.execute(db)).rows;
    expect(scratchGraph.some((r) => Object.values(r as Row).every((v) => Number(v) > 0))).toBe(true);
    expect(await graphStats(db)).toEqual(scratchGraph);
    expect(await foldRollups(db)).toBeGreaterThanOrEqual(0);
    expect(await graphStats(db)).toEqual(scratchGraph);
    expect(Number((await sql<{ n: number }>`SELECT count(*) AS n FROM workflow_stat_deltas`.execute(db)).rows[0]!.n)).toBe(0);
    // Monitoring's per-annotator assignment figures.
    const scratchAnnotators = await sql`
      SELECT annotator_id, count(*)::int AS total, (count(*) FILTER (WHERE status = 'completed'))::int AS completed,
             (count(*) FILTER (WHERE status = 'cancelled'))::int AS cancelled,
             (count(*) FILTER (WHERE status = 'in_progress'))::int AS in_progress
        FROM assignments GROUP BY annotator_id ORDER BY annotator_id`.execute(db);
    const stats = await annotatorAssignmentStats(db);
    expect(stats.filter((r) => r.total > 0)).toEqual(scratchAnnotators.rows);
    expect(await annotatorAssignmentStats(db, annotatorIds[0])).toEqual(
      scratchAnnotators.rows.filter((r) => (r as { annotatorId: number }).annotatorId === annotatorIds[0]),
    );
  });

  it('TRUNCATE … CASCADE empties them', async () => {
    await sql`TRUNCATE annotators, assignments, rejections CASCADE`.execute(db);
    const s = await expectRollupsMatch(db);
    expect(s.annotatorCounts.rollup).toEqual([]);
    expect(s.workflowAssignments.rollup).toEqual([]);
    expect(s.annotatorAssignments.rollup).toEqual([]);
    expect(s.rejections.rollup).toEqual([]);
  });
});
