import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.ts';
import { listMigrations, migrate, migrationChecksum, MigrationEditedError } from '../../src/db/migrate.ts';
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

describe('migration checksums', () => {
  const files = () => listMigrations();

  it('records the sha256 of every applied file; an edited landed file is refused before anything runs', async () => {
    const target = await createTestDatabase({ migrate: false });
    const { mkdtempSync, writeFileSync, readFileSync } = await import('node:fs');
    const dir = mkdtempSync('/tmp/lf-mig-');
    writeFileSync(`${dir}/0001_one.sql`, 'CREATE TABLE one (id int);\r\n');
    writeFileSync(`${dir}/0002_two.sql`, 'CREATE TABLE two (id int);');
    try {
      expect(await migrate(target.handle, dir)).toEqual(['0001_one', '0002_two']);
      const rows = await sql<{ version: number; checksum: string }>`SELECT version, checksum FROM schema_migrations ORDER BY version`.execute(target.handle.db);
      expect(rows.rows.map((r) => r.checksum)).toEqual([migrationChecksum('CREATE TABLE one (id int);\n'), migrationChecksum(readFileSync(`${dir}/0002_two.sql`, 'utf8'))]);
      expect(rows.rows[0]!.checksum).toMatch(/^[0-9a-f]{64}$/);
      // Line endings alone are not an edit.
      writeFileSync(`${dir}/0001_one.sql`, 'CREATE TABLE one (id int);\n');
      expect(await migrate(target.handle, dir)).toEqual([]);
      // An edit of a landed file, and a new file: refused, naming the file; the new one not applied.
      writeFileSync(`${dir}/0002_two.sql`, 'CREATE TABLE two (id int, extra text);');
      writeFileSync(`${dir}/0003_three.sql`, 'CREATE TABLE three (id int);');
      const err = await migrate(target.handle, dir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MigrationEditedError);
      expect((err as Error).message).toMatch(/^migration 0002_two\.sql was edited after being applied to this database .*new migration$/);
      const tables = await sql<{ t: string }>`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`.execute(target.handle.db);
      expect(tables.rows.map((r) => r.t)).toEqual(['one', 'schema_migrations', 'two']);
    } finally {
      await target.drop();
    }
  });

  it('backfills checksums of a database migrated before they were recorded, then guards it', async () => {
    const target = await createTestDatabase();
    try {
      await sql`ALTER TABLE schema_migrations DROP COLUMN checksum`.execute(target.handle.db);
      expect(await migrate(target.handle)).toEqual([]);
      const rows = await sql<{ n: number }>`SELECT count(*)::int AS n FROM schema_migrations WHERE checksum ~ '^[0-9a-f]{64}$'`.execute(target.handle.db);
      expect(rows.rows[0]!.n).toBe(files().length);
      // A landed file that differs from what ran here (as if edited): `fleet migrate` and
      // `fleet serve` refuse with one line naming it and exit 2.
      await sql`UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1`.execute(target.handle.db);
      const { freePort, runFleet } = await import('../helpers/process.ts');
      for (const command of ['migrate', 'serve']) {
        const r = await runFleet([command], { DATABASE_URL: target.url, PORT: String(await freePort()), LOG_LEVEL: 'silent' });
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(/^fleet: migration 0001_init\.sql was edited after being applied/);
      }
    } finally {
      await target.drop();
    }
  });
});
