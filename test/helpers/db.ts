/**
 * A fresh PostgreSQL database per test file, migrated, dropped afterwards: files run in parallel
 * without seeing each other's rows.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase, type DbHandle } from '../../src/db/index.ts';
import { migrate } from '../../src/db/migrate.ts';
import { TEST_DATABASE_URL } from './env.ts';

export interface TestDatabase {
  url: string;
  name: string;
  handle: DbHandle;
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `lf_test_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = withDatabase(TEST_DATABASE_URL(), name);
  const handle = await openDatabase({ url, dataDir: '/nonexistent', poolSize: 10 });
  if (opts.migrate !== false) await migrate(handle);
  return {
    url,
    name,
    handle,
    async drop() {
      await handle.close().catch(() => {});
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}
