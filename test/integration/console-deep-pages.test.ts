/**
 * Deep pages of the console's annotators table on the real PostgreSQL: a page far into the list
 * (read after its total, and from the list's end when in its back half) holds exactly the rows the
 * whole list has at that place, in every sort and direction, filtered and searched; past the end
 * there is none.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANNOTATOR_SORTS, listAnnotators, type AnnotatorFilter } from '../../src/db/annotators.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;

beforeAll(async () => {
  t = await startTestService();
  await sql`INSERT INTO roles (name) VALUES ('Alpha'), ('beta'), ('alpha2')`.execute(t.db);
  // Repeated names and last-activity times (ties broken by id), no role and never active for some.
  await sql`INSERT INTO annotators (name, email, subdomain, role_id, status, last_active_at)
    SELECT (ARRAY['ada', 'Ada', 'bob', 'Zoe', 'c%d'])[1 + g % 5] || ' ' || (g % 11), 'u' || g || '@deep.test', 'd-' || g,
           CASE WHEN g % 4 = 0 THEN NULL ELSE 1 + g % 3 END,
           (ARRAY['created','active','stopped','error','deleted'])[1 + g % 5],
           CASE WHEN g % 6 = 0 THEN NULL ELSE timestamp '2026-01-01' + make_interval(mins => g % 97) END
      FROM generate_series(1, 3200) g`.execute(t.db);
});

afterAll(async () => {
  await t.close();
});

describe('a deep page of annotators', () => {
  it('holds the rows the whole list has at its offset, in every sort and direction, filtered or not', async () => {
    // A search that matches every row still counts through the search's path (not the counter).
    const filters: AnnotatorFilter[] = [{}, { q: '@DEEP' }, { status: 'active' }];
    for (const filter of filters) {
      for (const by of ANNOTATOR_SORTS) {
        for (const dir of ['asc', 'desc'] as const) {
          // The whole list in one page from its start (read forwards).
          const whole = await listAnnotators(t.db, filter, { by, dir }, { limit: 10_000, offset: 0 });
          const ids = whole.rows.map((r) => r.id);
          const n = whole.total;
          expect(ids.length).toBe(n);
          expect(n).toBeGreaterThan(filter.status ? 600 : 2100);
          // In the front half past the threshold; in the back half; the partial last page; past the end.
          for (const offset of [1001, n - 1200, n - 50, n - 7, n, n + 100].filter((o) => o >= 0)) {
            const page = await listAnnotators(t.db, filter, { by, dir }, { limit: 50, offset });
            expect({ filter, by, dir, offset, total: page.total, ids: page.rows.map((r) => r.id) }).toEqual({
              filter,
              by,
              dir,
              offset,
              total: n,
              ids: ids.slice(offset, offset + 50),
            });
          }
        }
      }
    }
    // The columns a row shows, with its role's name and colour.
    const [row] = (await listAnnotators(t.db, { status: 'active', roleId: 2 }, { by: 'name', dir: 'asc' }, { limit: 1, offset: 1001 })).rows;
    expect(row).toBeUndefined();
    const [first] = (await listAnnotators(t.db, { status: 'active', roleId: 2 }, { by: 'name', dir: 'asc' }, { limit: 1, offset: 0 })).rows;
    expect(first).toMatchObject({ status: 'active', roleId: 2, roleName: 'beta' });
    expect(Object.keys(first!).sort()).toEqual(
      ['id', 'name', 'email', 'roleId', 'status', 'autoAssignPaused', 'lastActiveAt', 'createdAt', 'routedAt', 'subdomain', 'roleName', 'roleColor'].sort(),
    );
  });
});
