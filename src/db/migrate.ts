/**
 * Applies migrations/NNNN_name.sql in order, each once, each in its own transaction, recorded in
 * schema_migrations with the sha256 of its file. A session advisory lock makes concurrent
 * migrators (replicas starting at once, `fleet migrate` beside `fleet serve`) take turns: the
 * second finds the work done.
 *
 * A landed migration is never edited: an edit would silently never apply to databases that ran
 * the file before. So each run compares every applied file with its recorded checksum and refuses
 * (MigrationEditedError) when one differs. Databases from before checksums were recorded get them
 * from the files as they are at the first run (the column is added in place, idempotently).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { PROJECT_ROOT } from '../paths.ts';
import { LOCKS, type DbHandle } from './index.ts';

export const MIGRATIONS_DIR = path.join(PROJECT_ROOT, 'migrations');

export interface MigrationFile {
  version: number;
  name: string;
  file: string;
}

export function listMigrations(dir = MIGRATIONS_DIR): MigrationFile[] {
  const files = readdirSync(dir).filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f));
  const migrations = files
    .map((file) => ({ version: Number(file.slice(0, 4)), name: file.slice(5, -4), file: `${dir}/${file}` }))
    .sort((a, b) => a.version - b.version);
  const versions = new Set(migrations.map((m) => m.version));
  if (versions.size !== migrations.length) throw new Error(`two migrations share a version number in ${dir}`);
  return migrations;
}

const fileName = (m: MigrationFile) => `${String(m.version).padStart(4, '0')}_${m.name}.sql`;

/**
 * The checksum recorded for a migration: sha256 (hex) of its text with line endings as LF, so a
 * checkout that turns them into CRLF is not an edit.
 */
export function migrationChecksum(body: string): string {
  return createHash('sha256').update(body.replace(/\r\n/g, '\n')).digest('hex');
}

/** Migrations applied to this database whose files have changed since. */
export class MigrationEditedError extends Error {
  constructor(readonly files: string[]) {
    super(
      `${files.length === 1 ? `migration ${files[0]} was` : `migrations ${files.join(', ')} were`} edited after being applied to this database ` +
        `(the checksum in schema_migrations differs): restore ${files.length === 1 ? 'the file' : 'them'} as applied (e.g. git checkout <the commit that added ${files.length === 1 ? 'it' : 'them'}> -- migrations/) ` +
        'and put the change in a new migration',
    );
  }
}

/**
 * Returns the names of the migrations this call applied (empty when already up to date). Rejects
 * with MigrationEditedError, before applying anything, when an applied file was edited.
 */
export async function migrate(handle: DbHandle, dir = MIGRATIONS_DIR): Promise<string[]> {
  const migrations = listMigrations(dir);
  const applied: string[] = [];
  await handle.withAdvisoryLock(LOCKS.migrate, async () => {
    await sql`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`.execute(handle.db);
    await sql`ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text`.execute(handle.db);
    const done = await sql<{ version: number; checksum: string | null }>`SELECT version, checksum FROM schema_migrations`.execute(handle.db);
    const recorded = new Map(done.rows.map((r) => [Number(r.version), r.checksum]));
    const edited: string[] = [];
    for (const m of migrations) {
      if (!recorded.has(m.version)) continue;
      const checksum = migrationChecksum(readFileSync(m.file, 'utf8'));
      const was = recorded.get(m.version);
      if (was === null) await sql`UPDATE schema_migrations SET checksum = ${checksum} WHERE version = ${m.version} AND checksum IS NULL`.execute(handle.db);
      else if (was !== checksum) edited.push(fileName(m));
    }
    if (edited.length) throw new MigrationEditedError(edited);
    for (const m of migrations) {
      if (recorded.has(m.version)) continue;
      const body = readFileSync(m.file, 'utf8');
      const name = m.name.replace(/'/g, "''");
      await handle.execScript(
        `${body}\n;INSERT INTO schema_migrations (version, name, checksum) VALUES (${m.version}, '${name}', '${migrationChecksum(body)}');`,
      );
      applied.push(fileName(m).slice(0, -4));
    }
  });
  return applied;
}
