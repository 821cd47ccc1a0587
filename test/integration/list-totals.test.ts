/**
 * List totals that come from maintained counters (GET /api/annotators' X-Total-Count, the
 * `pagination.total` of GET /api/assignments and /api/rejections) are exact: for every filter they
 * equal the number of rows a client gets by paging to the end, after creates, updates, status
 * changes and deletes made through the API and behind its back (as the reconciler writes).
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let roleA: number;
let roleB: number;
let workflows: number[];

beforeAll(async () => {
  t = await startTestService();
  roleA = (await t.json('POST', '/api/roles', { name: 'totals-a' })).body.id;
  roleB = (await t.json('POST', '/api/roles', { name: 'totals-b' })).body.id;
  workflows = [];
  for (const name of ['totals-1', 'totals-2']) {
    workflows.push((await t.json('POST', '/api/workflows', { name, s3SourcePath: 'in/', s3ExportPath: 'out/' })).body.id);
  }
});

afterAll(async () => {
  await t?.close();
});

/** Pages through a bare-array list with `limit`, returning every row and each page's header. */
async function pageAll(path: string, limit: number) {
  const rows: { id: number }[] = [];
  const totals = new Set<string | null>();
  for (let offset = 0; ; offset += limit) {
    const sep = path.includes('?') ? '&' : '?';
    const res = await t.json('GET', `${path}${sep}limit=${limit}&offset=${offset}`);
    expect(res.status).toBe(200);
    totals.add(res.headers.get('x-total-count'));
    rows.push(...res.body);
    if (res.body.length < limit) break;
  }
  return { rows, totals: [...totals] };
}

/** Pages through an envelope list, checking total and hasMore on every page. */
async function pageEnvelope(path: string, limit: number) {
  const rows: { id: number }[] = [];
  for (let offset = 0; ; offset += limit) {
    const sep = path.includes('?') ? '&' : '?';
    const res = await t.json('GET', `${path}${sep}limit=${limit}&offset=${offset}`);
    expect(res.status).toBe(200);
    rows.push(...res.body.data);
    const { total, hasMore } = res.body.pagination;
    expect(hasMore, path).toBe(offset + res.body.data.length < total);
    if (!hasMore) {
      expect(total, path).toBe(rows.length);
      return rows;
    }
  }
}

const ANNOTATOR_FILTERS = () => [
  '',
  `?roleId=${roleA}`,
  `?roleId=${roleB}`,
  '?status=created',
  '?status=active',
  '?status=deleted',
  `?status=active&roleId=${roleA}`,
  `?status=deleted&roleId=${roleB}`,
];

async function expectAnnotatorTotals() {
  for (const filter of ANNOTATOR_FILTERS()) {
    const { rows, totals } = await pageAll(`/api/annotators${filter}`, 7);
    expect(totals, filter).toEqual([String(rows.length)]);
    // ... and the rows are the ones the filter names.
    const where = new URLSearchParams(filter);
    const expected = await t.db
      .selectFrom('annotators')
      .select('id')
      .$if(!where.has('status'), (q) => q.where('status', '<>', 'deleted'))
      .$if(where.has('status'), (q) => q.where('status', '=', where.get('status') as 'active'))
      .$if(where.has('roleId'), (q) => q.where('roleId', '=', Number(where.get('roleId'))))
      .orderBy('id')
      .execute();
    expect(rows.map((r) => r.id), filter).toEqual(expected.map((r) => r.id));
  }
}

describe('list totals from maintained counters', () => {
  it("GET /api/annotators: X-Total-Count is the exact number of rows for every filter as annotators come, change and go", async () => {
    const people = (prefix: string, roleId: number | null, n: number) =>
      Array.from({ length: n }, (_, i) => ({ name: `${prefix} ${i}`, email: `${prefix}${i}@totals.test`, roleId }));
    await t.json('POST', '/api/annotators/bulk', { annotators: [...people('a', roleA, 9), ...people('b', roleB, 6), ...people('n', null, 4)] });
    await expectAnnotatorTotals();

    const ids = (await t.db.selectFrom('annotators').select('id').orderBy('id').execute()).map((r) => r.id);
    // Through the API: a role change, a delete, a bulk delete (with an unknown and a deleted id).
    expect((await t.json('PUT', `/api/annotators/${ids[0]}`, { roleId: roleB })).status).toBe(200);
    expect((await t.json('PUT', `/api/annotators/${ids[1]}`, { roleId: null })).status).toBe(200);
    expect((await t.json('DELETE', `/api/annotators/${ids[2]}`)).status).toBe(200);
    expect((await t.json('DELETE', '/api/annotators/bulk', { ids: [ids[2]!, ids[3]!, ids[10]!, 999_999] })).body).toEqual({ deleted: 2 });
    // Behind the API's back, as the reconciler moves annotators through their lifecycle.
    await sql`UPDATE annotators SET status = 'active' WHERE id = ANY(${ids.slice(4, 12)})`.execute(t.db);
    await sql`UPDATE annotators SET status = 'error' WHERE id = ${ids[5]}`.execute(t.db);
    await expectAnnotatorTotals();

    // A deleted person comes back under the same email: counted again, the old row stays deleted.
    expect((await t.json('POST', '/api/annotators', { name: 'a 2 again', email: 'a2@totals.test', roleId: roleA })).status).toBe(201);
    await expectAnnotatorTotals();
    // A page past the end is empty and still carries the total.
    const past = await t.json('GET', `/api/annotators?roleId=${roleA}&offset=1000`);
    expect(past.body).toEqual([]);
    expect(past.headers.get('x-total-count')).toBe(String((await pageAll(`/api/annotators?roleId=${roleA}`, 100)).rows.length));
    // Filters that match nothing answer an empty array and 0.
    const none = await t.json('GET', '/api/annotators?status=stopping');
    expect(none.body).toEqual([]);
    expect(none.headers.get('x-total-count')).toBe('0');
  });

  it('GET /api/assignments and /api/rejections: pagination.total is exact for every filter, open and closed', async () => {
    const annotators = (await t.db.selectFrom('annotators').select('id').where('status', '<>', 'deleted').orderBy('id').limit(4).execute()).map((r) => r.id);
    const statuses = ['pending', 'in_progress', 'completed', 'failed', 'cancelled'] as const;
    let k = 0;
    for (const workflowId of workflows) {
      for (const annotatorId of annotators) {
        for (let i = 0; i < 3; i++) {
          await t.db.insertInto('assignments').values({ workflowId, annotatorId, status: statuses[k++ % statuses.length]! }).execute();
        }
      }
    }
    // Batches close and reopen as the reconciler works.
    await sql`UPDATE assignments SET status = 'completed', completed_count = 3 WHERE status = 'in_progress' AND id % 2 = 0`.execute(t.db);
    await sql`UPDATE assignments SET status = 'pending' WHERE status = 'failed' AND id % 3 = 0`.execute(t.db);
    await sql`DELETE FROM assignments WHERE status = 'cancelled' AND id % 4 = 0`.execute(t.db);
    const assignmentFilters = [
      '',
      `?workflowId=${workflows[0]}`,
      `?annotatorId=${annotators[1]}`,
      `?workflowId=${workflows[1]}&annotatorId=${annotators[2]}`,
      ...statuses.map((s) => `?status=${s}`),
      `?status=completed&workflowId=${workflows[0]}`,
      `?status=pending&annotatorId=${annotators[0]}`,
    ];
    for (const filter of assignmentFilters) {
      const rows = await pageEnvelope(`/api/assignments${filter}`, 4);
      const where = new URLSearchParams(filter);
      const expected = await t.db
        .selectFrom('assignments')
        .select('id')
        .$if(where.has('status'), (q) => q.where('status', '=', where.get('status') as 'pending'))
        .$if(where.has('workflowId'), (q) => q.where('workflowId', '=', Number(where.get('workflowId'))))
        .$if(where.has('annotatorId'), (q) => q.where('annotatorId', '=', Number(where.get('annotatorId'))))
        .orderBy('createdAt', 'desc')
        .orderBy('id', 'desc')
        .execute();
      expect(rows.map((r) => r.id), filter).toEqual(expected.map((r) => r.id));
    }

    const past = await t.json('GET', '/api/assignments?offset=5000&limit=1');
    expect(past.body).toEqual({ data: [], pagination: { total: (await pageEnvelope('/api/assignments', 100)).length, limit: 1, offset: 5000, hasMore: false } });

    for (let i = 0; i < 9; i++) {
      await t.db
        .insertInto('rejections')
        .values({
          workflowId: workflows[i % 2]!,
          originalAnnotatorId: annotators[i % 3]!,
          imageKey: `img/${i}.jpg`,
          actionTaken: (['none', 'archive', 'route_to_workflow'] as const)[i % 3]!,
        })
        .execute();
    }
    await sql`UPDATE rejections SET action_taken = 'archive' WHERE id = (SELECT min(id) FROM rejections)`.execute(t.db);
    for (const filter of ['', `?workflowId=${workflows[1]}`, '?actionTaken=archive', `?annotatorId=${annotators[0]}`, `?workflowId=${workflows[0]}&actionTaken=none`]) {
      const rows = await pageEnvelope(`/api/rejections${filter}`, 2);
      const where = new URLSearchParams(filter);
      const expected = await t.db
        .selectFrom('rejections')
        .select(sql<number>`count(*)::int`.as('n'))
        .$if(where.has('workflowId'), (q) => q.where('workflowId', '=', Number(where.get('workflowId'))))
        .$if(where.has('annotatorId'), (q) => q.where('originalAnnotatorId', '=', Number(where.get('annotatorId'))))
        .$if(where.has('actionTaken'), (q) => q.where('actionTaken', '=', where.get('actionTaken') as 'none'))
        .executeTakeFirstOrThrow();
      expect(rows.length, filter).toBe(expected.n);
    }
  });
});
