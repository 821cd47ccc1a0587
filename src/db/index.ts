/**
 * The database handle: Kysely over node-postgres when DATABASE_URL is set, or over an embedded
 * PGlite (real PostgreSQL compiled to WASM) in DATA_DIR otherwise. Both speak the same SQL, so
 * every query and migration runs unchanged on either.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { CamelCasePlugin, Kysely, PGliteDialect, PostgresDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import { lockDataDir } from './pglite-lock.ts';
import type { Database } from './types.ts';

export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;
/** Either the database or an open transaction: repository functions take this first. */
export type Executor = Db | Tx;

export interface DbHandle {
  db: Db;
  kind: 'postgres' | 'pglite';
  /** Runs a multi-statement SQL script in one transaction (migrations). */
  execScript(script: string): Promise<void>;
  /** Holds a session-level advisory lock on a dedicated connection while `fn` runs. */
  withAdvisoryLock<T>(key: number, fn: () => Promise<T>, opts?: { wait?: boolean }): Promise<T | typeof LOCK_BUSY>;
  close(): Promise<void>;
}

export const LOCK_BUSY = Symbol('lock-busy');

/** Advisory lock keys: one place, so two subsystems never share one by accident. */
export const LOCKS = { migrate: 7_404_001, reconcile: 7_404_002 } as const;

/**
 * Kysely's CamelCasePlugin with its name conversions memoised: every result row maps the same
 * column names again (a page of 100 annotators is 2,000 conversions), so each name is converted
 * once. Names are the schema's columns and the queries' aliases: a bounded set.
 */
class MemoCamelCasePlugin extends CamelCasePlugin {
  readonly #camel = new Map<string, string>();
  readonly #snake = new Map<string, string>();
  protected override camelCase(name: string): string {
    return memo(this.#camel, name, (n) => super.camelCase(n));
  }
  protected override snakeCase(name: string): string {
    return memo(this.#snake, name, (n) => super.snakeCase(n));
  }
}

function memo(cache: Map<string, string>, key: string, convert: (key: string) => string): string {
  let value = cache.get(key);
  if (value === undefined) {
    value = convert(key);
    if (cache.size < 10_000) cache.set(key, value);
  }
  return value;
}

// int8 (bigserial ids, count(*)) as JS numbers: every value we store fits in 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

export async function openDatabase(opts: { url?: string; dataDir: string; poolSize?: number }): Promise<DbHandle> {
  return opts.url ? openPostgres(opts.url, opts.poolSize ?? 10) : openPglite(path.join(opts.dataDir, 'pglite'));
}

function openPostgres(url: string, poolSize: number): DbHandle {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 5_000 });
  // An idle client that loses its connection emits 'error'; without a listener that would crash the process.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), plugins: [new MemoCamelCasePlugin({ maintainNestedObjectKeys: true })] });
  return {
    db,
    kind: 'postgres',
    async execScript(script) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(script);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    async withAdvisoryLock(key, fn, { wait = true } = {}) {
      const client = await pool.connect();
      try {
        if (wait) await client.query('SELECT pg_advisory_lock($1)', [key]);
        else {
          const { rows } = await client.query('SELECT pg_try_advisory_lock($1) AS ok', [key]);
          if (!rows[0].ok) return LOCK_BUSY;
        }
        try {
          return await fn();
        } finally {
          await client.query('SELECT pg_advisory_unlock($1)', [key]);
        }
      } finally {
        client.release();
      }
    },
    close: () => db.destroy(),
  };
}

async function openPglite(dir: string): Promise<DbHandle> {
  const { PGlite } = await import('@electric-sql/pglite');
  // pg_trgm: the annotator search's trigram indexes (migrations/0011_console.sql).
  const { pg_trgm } = await import('@electric-sql/pglite/contrib/pg_trgm');
  mkdirSync(dir, { recursive: true });
  // PGlite does not lock its directory: a second process would lose writes or corrupt it.
  const unlock = lockDataDir(dir);
  let pglite: InstanceType<typeof PGlite>;
  try {
    pglite = new PGlite(dir, { parsers: { 20: (v: string) => Number(v) }, extensions: { pg_trgm } });
    await pglite.waitReady;
  } catch (err) {
    unlock();
    throw err;
  }
  const db = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }), plugins: [new MemoCamelCasePlugin({ maintainNestedObjectKeys: true })] });
  // PGlite is one connection in one process: an in-process mutex per key is the whole advisory lock.
  const locks = new Map<number, { tail: Promise<void>; busy: boolean }>();
  return {
    db,
    kind: 'pglite',
    async execScript(script) {
      await pglite.transaction(async (tx) => {
        await tx.exec(script);
      });
    },
    async withAdvisoryLock(key, fn, { wait = true } = {}) {
      const lock = locks.get(key) ?? { tail: Promise.resolve(), busy: false };
      locks.set(key, lock);
      if (lock.busy && !wait) return LOCK_BUSY;
      const previous = lock.tail;
      let release!: () => void;
      lock.tail = new Promise((r) => (release = r));
      await previous;
      lock.busy = true;
      try {
        return await fn();
      } finally {
        lock.busy = false;
        release();
      }
    },
    close: async () => {
      try {
        await db.destroy();
      } finally {
        unlock();
      }
    },
  };
}

export async function ping(db: Db): Promise<boolean> {
  try {
    await sql`SELECT 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}
