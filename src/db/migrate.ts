/**
 * Applies migrations/NNNN_name.sql in order, each once, each in its own transaction, recorded in
 * schema_migrations. A session advisory lock makes concurrent migrators (replicas starting at
 * once, `fleet migrate` beside `fleet serve`) take turns: the second finds the work done.
 */
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

/** Returns the names of the migrations this call applied (empty when already up to date). */
export async function migrate(handle: DbHandle, dir = MIGRATIONS_DIR): Promise<string[]> {
  const migrations = listMigrations(dir);
  const applied: string[] = [];
  await handle.withAdvisoryLock(LOCKS.migrate, async () => {
    await sql`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`.execute(handle.db);
    const done = await sql<{ version: number }>`SELECT version FROM schema_migrations`.execute(handle.db);
    const doneVersions = new Set(done.rows.map((r) => Number(r.version)));
    for (const m of migrations) {
      if (doneVersions.has(m.version)) continue;
      const body = readFileSync(m.file, 'utf8');
      const name = m.name.replace(/'/g, "''");
      await handle.execScript(`${body}\n;INSERT INTO schema_migrations (version, name) VALUES (${m.version}, '${name}');`);
      applied.push(`${String(m.version).padStart(4, '0')}_${m.name}`);
    }
  });
  return applied;
}
