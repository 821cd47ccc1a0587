/**
 * Statements compiled once per shape (src/db/precompiled.ts) return what the same query built
 * anew returns, for every shape and any values in any order; a build that computes with a value,
 * or a value that does not become a parameter, fails at its first compile instead of running
 * wrong SQL.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/index.ts';
import { precompiled } from '../../src/db/precompiled.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

let database: TestDatabase;
let db: Db;
beforeAll(async () => {
  database = await createTestDatabase();
  db = database.handle.db;
  await sql`INSERT INTO roles (name, color) SELECT 'role-' || g, CASE WHEN g % 2 = 0 THEN '#000000' ELSE '#FFFFFF' END FROM generate_series(1, 12) g`.execute(db);
});
afterAll(async () => database?.drop());

interface Values {
  color?: string;
  minId?: number;
  limit: number;
  offset: number;
}
const build = (d: Db, v: Values) =>
  d
    .selectFrom('roles')
    .select(['roles.id', 'roles.name', sql<string>`${v.limit}::text`.as('askedLimit')])
    .$if(v.color !== undefined, (q) => q.where('roles.color', '=', v.color!))
    .$if(v.minId !== undefined, (q) => q.where('roles.id', '>=', v.minId!))
    .orderBy('roles.id')
    .limit(v.limit)
    .offset(v.offset);

describe('precompiled statements', () => {
  it('return the rows the query built anew returns, for every shape and changing values', async () => {
    const rolesPage = precompiled(build);
    const cases: Values[] = [
      { limit: 5, offset: 0 },
      { color: '#000000', limit: 3, offset: 1 },
      { minId: 4, limit: 100, offset: 0 },
      { color: '#FFFFFF', minId: 6, limit: 2, offset: 1 },
      { color: '#FFFFFF', limit: 4, offset: 0 },
      { minId: 9, limit: 1, offset: 2 },
      { limit: 2, offset: 10 },
      { color: '#000000', minId: 2, limit: 10, offset: 0 },
    ];
    // Twice over, so the second pass runs every shape from what was kept, with other values between.
    for (const v of [...cases, ...cases.reverse()]) {
      const expected = await build(db, v).execute();
      expect(expected.length, JSON.stringify(v)).toBeGreaterThan(0);
      expect(await rolesPage(db, v), JSON.stringify(v)).toEqual(expected);
    }
  });

  it('refuses a build that computes with a value, or drops one, at its first compile', async () => {
    const computes = precompiled((d: Db, v: { name?: string }) => d.selectFrom('roles').select('id').where('name', '=', v.name!.toLowerCase()));
    await expect(computes(db, { name: 'Role-1' })).rejects.toThrow(TypeError);
    const drops = precompiled((d: Db, v: { name?: string; color?: string }) => d.selectFrom('roles').select('id').where('name', '=', v.name ?? 'x'));
    await expect(drops(db, { name: 'role-1', color: '#000000' })).rejects.toThrow('precompiled: color did not come out as parameters');
    expect(await drops(db, { name: 'role-1' })).toEqual([{ id: 1 }]);
  });
});
