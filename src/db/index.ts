/**
 * The database handle: Kysely over node-postgres when DATABASE_URL is set, or over an embedded
 * PGlite (real PostgreSQL compiled to WASM) in DATA_DIR otherwise. Both speak the same SQL, so
 * every query and migration runs unchanged on either.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { CamelCasePlugin, Kysely, PGliteDialect, PostgresDialect, sql, type PluginTransformResultArgs, type QueryResult, type Transaction, type UnknownRow } from 'kysely';
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
  /**
   * Holds a session-level advisory lock on a dedicated connection (not one of the query pool's)
   * while `fn` runs. `wait: false` → LOCK_BUSY when another session holds it. `fn` gets a signal
   * that aborts (reason: LockLostError) if that connection is lost meanwhile; then, whatever `fn`
   * does, the call rejects with the LockLostError. On PGlite (one process) the signal never aborts.
   */
  withAdvisoryLock<T>(key: number, fn: (lock: { signal: AbortSignal }) => Promise<T>, opts?: { wait?: boolean }): Promise<T | typeof LOCK_BUSY>;
  close(): Promise<void>;
}

export const LOCK_BUSY = Symbol('lock-busy');

/**
 * Advisory lock keys: one place, so two subsystems never share one by accident. `migrate` and
 * `reconcile` are single bigint keys; `subdomain` is the first int4 of a two-key lock (the second
 * is a hash of the base label: workflows/annotators.ts) — PostgreSQL keeps the one-key and
 * two-key forms apart. `rollupsFold` is taken (try, transaction-level) inside the SQL function
 * rollups_fold() of migrations/0026_workflow_stats.sql, which spells the number itself.
 */
export const LOCKS = { migrate: 7_404_001, reconcile: 7_404_002, subdomain: 7_404_003, rollupsFold: 7_404_004 } as const;

/**
 * Kysely's CamelCasePlugin with its name conversions memoised: every result row maps the same
 * column names again (a page of 100 annotators is 2,000 conversions), so each name is converted
 * once. Names are the schema's columns and the queries' aliases: a bounded set.
 *
 * Result rows are renamed as the plugin's mapRow renames them with maintainNestedObjectKeys (each
 * column's name in camelCase, its value as it is), with each name converted once per result: a
 * result's rows come from one column list, so a row whose names are the first row's, in its order,
 * takes the first row's conversions; any other row has its names looked up one by one.
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
  override async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const { rows } = args.result;
    if (!Array.isArray(rows) || rows.length === 0) return args.result;
    const names = Object.keys(rows[0]!);
    const camel = names.map((n) => this.camelCase(n));
    const mapped = new Array<UnknownRow>(rows.length);
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r]!;
      const out: UnknownRow = {};
      let i = 0;
      for (const name in row) {
        out[name === names[i] ? camel[i]! : this.camelCase(name)] = row[name];
        i++;
      }
      mapped[r] = out;
    }
    return { ...args.result, rows: mapped };
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

/**
 * pg's Client with the promise form of `query(text, values)` — the one Kysely sends every
 * statement with — answered through pg's callback form: the same rows, result and errors.
 * Measured on the service under load (GET /api/annotators?limit=100, 4 clients, a sampling heap
 * profile that keeps what the major GC collected): answered through pg's own promise, every row
 * string of a result was promoted to the old space (~60 KB per page for the major GC to collect,
 * a third of the service's CPU per request); through the callback, next to none were.
 *
 * A FATAL or PANIC error (57P01 from pg_terminate_backend, a failover, an idle-session timeout)
 * reaches the query before node-pg sees the socket close, and Kysely releases the client without
 * the error: the client ends itself then, so the pool drops it instead of handing the dead
 * connection to the next statement (which would fail without a SQLSTATE).
 */
class CallbackQueryClient extends pg.Client {
  override query(...args: any[]): any {
    const [text, values, callback] = args;
    if (typeof text === 'string' && typeof values !== 'function' && callback === undefined) {
      return new Promise((resolve, reject) =>
        super.query(text, values, (err: (Error & { severity?: string }) | undefined, result: pg.QueryResult) => {
          if (!err) return resolve(result);
          if (err.severity === 'FATAL' || err.severity === 'PANIC') void this.end().catch(() => {});
          reject(err);
        }),
      );
    }
    return (super.query as (...a: unknown[]) => unknown)(...args);
  }
}

export async function openDatabase(opts: { url?: string; dataDir: string; poolSize?: number }): Promise<DbHandle> {
  return opts.url ? openPostgres(opts.url, opts.poolSize ?? 10) : openPglite(path.join(opts.dataDir, 'pglite'));
}

function openPostgres(url: string, poolSize: number): DbHandle {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 5_000, Client: CallbackQueryClient });
  // A client that loses its connection emits 'error' — idle in the pool (the pool's 'error') or
  // checked out by a query or transaction (the client's own). Without a listener either would end
  // the process; the query or transaction in flight fails with the same error instead.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  const locks = new LockConnections(url);
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
      const conn = await locks.acquire();
      let holding = false;
      try {
        if (wait) await conn.client.query('SELECT pg_advisory_lock($1)', [key]);
        else {
          const { rows } = await conn.client.query('SELECT pg_try_advisory_lock($1) AS ok', [key]);
          if (!rows[0].ok) return LOCK_BUSY;
        }
        holding = true;
        const lost = new AbortController();
        const onLost = (err: Error) => lost.abort(new LockLostError(key, err));
        if (conn.lost) onLost(conn.lost);
        conn.onLost = onLost;
        let outcome: { ok: true; value: Awaited<ReturnType<typeof fn>> } | { ok: false; err: unknown };
        try {
          outcome = { ok: true, value: await fn({ signal: lost.signal }) };
        } catch (err) {
          outcome = { ok: false, err };
        } finally {
          conn.onLost = undefined;
        }
        // Lost while `fn` ran: another process may have taken the lock meanwhile, so the work is
        // not reported as done under it, whatever `fn` returned.
        if (lost.signal.aborted) throw lost.signal.reason;
        if (!outcome.ok) throw outcome.err;
        return outcome.value;
      } finally {
        if (holding && !conn.lost) await conn.client.query('SELECT pg_advisory_unlock($1)', [key]).catch((err: Error) => (conn.lost ??= err));
        locks.release(conn);
      }
    },
    async close() {
      await locks.close();
      await db.destroy();
    },
  };
}

/** A dedicated lock connection and what became of it. */
interface LockConnection {
  client: pg.Client;
  /** Set once the connection failed: the server ended it, the network dropped it. */
  lost?: Error;
  /** Called once when the connection fails while a lock is held on it. */
  onLost?: (err: Error) => void;
}

/**
 * Connections for session advisory locks, apart from the query pool: a lock held for a whole
 * reconcile pass never takes a connection the pass's own queries need (DATABASE_POOL_SIZE=1
 * works), and each has its own 'error' listener, so a connection ended by the server
 * (pg_terminate_backend, a failover, a restart) marks its lock lost instead of ending the process.
 * One connection per holder (a blocked pg_advisory_lock would hold up any other query on it);
 * up to two idle ones are kept for the next pass. idle_session_timeout (PostgreSQL 14+) is turned
 * off for these sessions: a lock connection is idle by design while the work runs elsewhere.
 */
class LockConnections {
  readonly #idle: LockConnection[] = [];
  #closed = false;
  constructor(private readonly url: string) {}

  async acquire(): Promise<LockConnection> {
    for (let conn = this.#idle.pop(); conn; conn = this.#idle.pop()) if (!conn.lost) return conn;
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 5_000, keepAlive: true, application_name: LOCK_APPLICATION_NAME });
    const conn: LockConnection = { client };
    client.on('error', (err) => {
      if (conn.lost) return;
      conn.lost = err;
      conn.onLost?.(err);
    });
    try {
      await client.connect();
      await client.query("SELECT set_config('idle_session_timeout', '0', false)").catch((err) => {
        if ((err as { code?: string }).code !== '42704') throw err; // before PostgreSQL 14: no such setting
      });
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    return conn;
  }

  release(conn: LockConnection): void {
    if (conn.lost || this.#closed || this.#idle.length >= 2) void conn.client.end().catch(() => {});
    else this.#idle.push(conn);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#idle.splice(0).map((c) => c.client.end().catch(() => {})));
  }
}

/** `application_name` of the lock connections (pg_stat_activity shows which backends hold locks). */
export const LOCK_APPLICATION_NAME = 'labelfleet-lock';

/**
 * The connection holding an advisory lock was lost while the work under it ran: the server
 * released the lock, and another process may have taken it. The work is not reported as done;
 * the next attempt takes the lock again. `cause`: the connection's error.
 */
export class LockLostError extends Error {
  constructor(
    readonly key: number,
    cause: Error,
  ) {
    super(`lost the database connection holding advisory lock ${key} (${cause.message}): the work under it is abandoned and retried`, { cause });
  }
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
        return await fn({ signal: NEVER_ABORTED });
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

const NEVER_ABORTED = new AbortController().signal;

export async function ping(db: Db): Promise<boolean> {
  try {
    await sql`SELECT 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}
