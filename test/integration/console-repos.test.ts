/**
 * The console's repository functions on the real PostgreSQL: annotator paging never skips or
 * repeats a row whatever the sort, search treats % and _ literally and ignores case, filters
 * combine; batch problems follow their definition; the change watermark moves per topic.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { annotatorStatusCounts, listAnnotators, ANNOTATOR_SORTS } from '../../src/db/annotators.ts';
import { batchCounts, listAssignments } from '../../src/db/assignments.ts';
import { readWatermark } from '../../src/db/changes.ts';
import { changedTopics } from '../../src/domain/fleet-changes.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;

beforeAll(async () => {
  t = await startTestService();
  await sql`INSERT INTO roles (name) VALUES ('Alpha'), ('beta')`.execute(t.db);
  // Names with case differences, duplicates and LIKE metacharacters; every status.
  await sql`INSERT INTO annotators (name, email, subdomain, role_id, status, last_active_at)
    SELECT (ARRAY['ada', 'Ada', 'bob', 'Bob_1', 'c%d', 'Zoe'])[1 + g % 6] || ' ' || (g % 7),
           'u' || g || (CASE WHEN g % 10 = 0 THEN '_x' ELSE '' END) || '@repo.test', 'u-' || g,
           CASE WHEN g % 3 = 0 THEN NULL ELSE 1 + g % 2 END,
           (ARRAY['created','active','stopped','error','deleted'])[1 + g % 5],
           CASE WHEN g % 4 = 0 THEN NULL ELSE now() - make_interval(mins => g) END
      FROM generate_series(1, 130) g`.execute(t.db);
});

afterAll(async () => {
  await t.close();
});

async function allPages(sort: (typeof ANNOTATOR_SORTS)[number], dir: 'asc' | 'desc', filter = {}) {
  const ids: number[] = [];
  let total = -1;
  for (let offset = 0; ; offset += 20) {
    const page = await listAnnotators(t.db, filter, { by: sort, dir }, { limit: 20, offset });
    total = page.total;
    // The total travels beside the rows in the statement; it is not a column of the rows.
    for (const r of page.rows) expect(r).not.toHaveProperty('listTotal');
    ids.push(...page.rows.map((r) => r.id));
    if (page.rows.length < 20) break;
  }
  return { ids, total };
}

describe('listAnnotators', () => {
  it('pages through every live annotator exactly once, in every sort and direction', async () => {
    const live = await t.db.selectFrom('annotators').select('id').where('status', '<>', 'deleted').execute();
    for (const sort of ANNOTATOR_SORTS) {
      for (const dir of ['asc', 'desc'] as const) {
        const { ids, total } = await allPages(sort, dir);
        expect([sort, dir, total]).toEqual([sort, dir, live.length]);
        expect([sort, dir, [...ids].sort((a, b) => a - b)]).toEqual([sort, dir, live.map((r) => r.id).sort((a, b) => a - b)]);
      }
    }
  });

  it('sorts names case-insensitively, ties by id', async () => {
    const { ids } = await allPages('name', 'asc');
    const rows = await t.db.selectFrom('annotators').select(['id', 'name']).where('status', '<>', 'deleted').execute();
    const byId = new Map(rows.map((r) => [r.id, r.name]));
    const names = ids.map((id) => byId.get(id)!.toLowerCase());
    expect(names).toEqual([...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  });

  it('puts annotators never active last when sorting by last activity, newest first', async () => {
    const { ids } = await allPages('lastActive', 'desc');
    const rows = await t.db.selectFrom('annotators').select(['id', 'lastActiveAt']).where('status', '<>', 'deleted').execute();
    const at = new Map(rows.map((r) => [r.id, r.lastActiveAt?.getTime() ?? null]));
    const seq = ids.map((id) => at.get(id)!);
    const firstNull = seq.findIndex((v) => v === null);
    expect(seq.slice(firstNull).every((v) => v === null)).toBe(true);
    const times = seq.slice(0, firstNull) as number[];
    expect(times).toEqual([...times].sort((a, b) => b - a));
  });

  it('searches name and email case-insensitively, with % and _ as plain characters', async () => {
    const count = async (q: string) => (await listAnnotators(t.db, { q }, { by: 'name', dir: 'asc' }, { limit: 500, offset: 0 })).total;
    const expected = async (where: string) =>
      Number((await sql<{ n: number }>`SELECT count(*)::int AS n FROM annotators WHERE status <> 'deleted' AND (${sql.raw(where)})`.execute(t.db)).rows[0]!.n);
    expect(await count('ADA')).toBe(await expected(`lower(name) LIKE '%ada%' OR lower(email) LIKE '%ada%'`));
    expect(await count('c%d')).toBe(await expected(`position('c%d' in name) > 0`));
    expect(await count('%')).toBe(await expected(`position('%' in name) > 0 OR position('%' in email) > 0`));
    expect(await count('_x')).toBe(await expected(`position('_x' in email) > 0`));
    expect(await count('bob_')).toBe(await expected(`position('bob_' in lower(name)) > 0`));
    expect(await count('nobody-has-this')).toBe(0);
  });

  it('combines status and role filters; deleted ones only when asked', async () => {
    const page = await listAnnotators(t.db, { status: 'active', roleId: 1 }, { by: 'email', dir: 'asc' }, { limit: 500, offset: 0 });
    expect(page.rows.every((r) => r.status === 'active' && r.roleId === 1 && r.roleName === 'Alpha')).toBe(true);
    const n = await t.db.selectFrom('annotators').select(sql<number>`count(*)::int`.as('n')).where('status', '=', 'active').where('roleId', '=', 1).executeTakeFirstOrThrow();
    expect(page.total).toBe(n.n);
    const deleted = await listAnnotators(t.db, { status: 'deleted' }, { by: 'name', dir: 'asc' }, { limit: 500, offset: 0 });
    expect(deleted.total).toBe((await annotatorStatusCounts(t.db)).deleted);
    expect(deleted.total).toBeGreaterThan(0);
  });
});

describe('batch problems', () => {
  it('are open batches with an error or a stopped annotator, and batches failed in the last day', async () => {
    const [w] = (await sql<{ id: number }>`INSERT INTO workflows (name, s3_source_path, s3_export_path) VALUES ('P', 'p/', 'q/') RETURNING id`.execute(t.db)).rows;
    const active = (await t.db.selectFrom('annotators').select('id').where('status', '=', 'active').limit(1).executeTakeFirstOrThrow()).id;
    const stopped = (await t.db.selectFrom('annotators').select('id').where('status', '=', 'stopped').limit(1).executeTakeFirstOrThrow()).id;
    const insert = (annotator: number, status: string, error: string | null, updatedAgoHours = 0) =>
      sql<{ id: number }>`INSERT INTO assignments (workflow_id, annotator_id, status, error, updated_at)
        VALUES (${w!.id}, ${annotator}, ${status}, ${error}, now() - make_interval(hours => ${updatedAgoHours})) RETURNING id`.execute(t.db).then((r) => r.rows[0]!.id);
    const fine = await insert(active, 'in_progress', null);
    const retrying = await insert(active, 'pending', 'Label Studio did not answer');
    const notRunning = await insert(stopped, 'in_progress', null);
    const failedNow = await insert(active, 'failed', 'gave up');
    const failedOld = await insert(active, 'failed', 'long ago', 48);
    const done = await insert(stopped, 'completed', null);
    const page = await listAssignments(t.db, { workflowId: w!.id, problems: true }, { limit: 50, offset: 0 });
    expect(page.rows.map((r) => [r.id, r.problem]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([
      [retrying, 'Label Studio did not answer'],
      [notRunning, 'annotator is stopped'],
      [failedNow, 'failed: gave up'],
    ]);
    const all = await listAssignments(t.db, { workflowId: w!.id }, { limit: 50, offset: 0 });
    expect(new Map(all.rows.map((r) => [r.id, r.problem])).get(fine)).toBeNull();
    expect(new Map(all.rows.map((r) => [r.id, r.problem])).get(failedOld)).toBe('failed: long ago');
    expect(new Map(all.rows.map((r) => [r.id, r.problem])).get(done)).toBeNull();
    expect(await batchCounts(t.db)).toEqual({ pending: 1, inProgress: 2, problems: 3 });
  });
});

describe('the change watermark', () => {
  it('moves exactly the topics a change touches', async () => {
    const before = await readWatermark(t.db);
    expect(changedTopics(before, await readWatermark(t.db))).toEqual([]);
    await sql`INSERT INTO container_events (annotator_id, event_type) SELECT min(id), 'note' FROM annotators`.execute(t.db);
    const a = await readWatermark(t.db);
    expect(changedTopics(before, a)).toEqual(['annotators']);
    await sql`UPDATE assignments SET completed_count = completed_count + 1 WHERE status = 'in_progress'`.execute(t.db);
    const b = await readWatermark(t.db);
    expect(changedTopics(a, b)).toEqual(['batches']);
    await sql`INSERT INTO settings (key, value) VALUES ('x.y', '1')`.execute(t.db);
    await sql`INSERT INTO roles (name) VALUES ('gamma')`.execute(t.db);
    expect(changedTopics(b, await readWatermark(t.db))).toEqual(['configs', 'settings']);
  });
});
