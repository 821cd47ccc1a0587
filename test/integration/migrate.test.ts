import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.ts';
import { listMigrations, migrate } from '../../src/db/migrate.ts';
import { createTestDatabase } from '../helpers/db.ts';

describe('migrations', () => {
  it('apply each file once even when several processes migrate at the same time', async () => {
    const target = await createTestDatabase({ migrate: false });
    const handles = await Promise.all(
      Array.from({ length: 4 }, () => openDatabase({ url: target.url, dataDir: '/nonexistent', poolSize: 3 })),
    );
    try {
      const results = await Promise.all(handles.map((h) => migrate(h)));
      const appliedTotal = results.flat();
      const files = listMigrations();
      expect(appliedTotal.sort()).toEqual(files.map((f) => `${String(f.version).padStart(4, '0')}_${f.name}`).sort());
      const rows = await sql<{ version: number }>`SELECT version FROM schema_migrations ORDER BY version`.execute(target.handle.db);
      expect(rows.rows.map((r) => r.version)).toEqual(files.map((f) => f.version));
      expect(await migrate(target.handle)).toEqual([]);
    } finally {
      await Promise.all(handles.map((h) => h.close()));
      await target.drop();
    }
  });

  it('roll back a failing migration whole', async () => {
    const target = await createTestDatabase({ migrate: false });
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const dir = mkdtempSync('/tmp/lf-mig-');
    writeFileSync(`${dir}/0001_ok.sql`, 'CREATE TABLE a (id int);');
    writeFileSync(`${dir}/0002_bad.sql`, 'CREATE TABLE b (id int); SELECT * FROM missing_table;');
    try {
      await expect(migrate(target.handle, dir)).rejects.toThrow(/missing_table/);
      const tables = await sql<{ t: string }>`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`.execute(target.handle.db);
      expect(tables.rows.map((r) => r.t)).toEqual(['a', 'schema_migrations']);
    } finally {
      await target.drop();
    }
  });
});
