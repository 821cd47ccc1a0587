/**
 * One PostgreSQL role and one database per annotator (`ls_annotator_[<ns>_]<id>`, role and
 * database share the name), on the server LS_DATABASE_URL (default DATABASE_URL) points at.
 *
 * - Created idempotently: whatever exists is kept, whatever is missing is made; a crash between
 *   two statements is repaired by the next call.
 * - Isolated: the role owns its database and nothing else (NOSUPERUSER NOCREATEDB NOCREATEROLE);
 *   CONNECT and TEMPORARY on the database are revoked from PUBLIC, so no other annotator's role
 *   can connect to it.
 * - No password stored: the caller passes the password derived for this start (instance-spec.ts)
 *   and it is set at each start with ALTER ROLE, as a SCRAM-SHA-256 verifier computed here, so
 *   the plain password never reaches the server's statement log either.
 * - Dropped on annotator delete when the setting `fleet.deleteDatabaseOnDelete` is true.
 * - Owned (orchestrator/ownership.ts): role and database carry the installation's mark as their
 *   COMMENT. A role or database of that name marked by another installation (or unmarked, for an
 *   installation that does not adopt) is refused with ForeignResourceError before anything is
 *   changed, and never dropped. The role is created and marked in one transaction; a database
 *   left unmarked by a crash right after CREATE DATABASE is recognised as ours by its owner (our
 *   marked role) and marked then.
 */
import { createHash, createHmac, pbkdf2 as pbkdf2Callback, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Config } from '../src/config.ts';
import { fleetNames, type DatabaseTarget, type FleetNames } from './instance-spec.ts';
import { ForeignResourceError, foreignMessage, isOurs, markedInstallation, markText, type Owner } from './ownership.ts';

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;
const quoteIdent = (name: string) => {
  if (!IDENT.test(name)) throw new Error(`refusing to use "${name}" as a PostgreSQL identifier`);
  return `"${name}"`;
};
const quoteLiteral = (value: string) => `'${value.replace(/'/g, "''")}'`;

const pbkdf2 = promisify(pbkdf2Callback);

/**
 * PostgreSQL's SCRAM-SHA-256 verifier for a password (what `password_encryption=scram-sha-256`
 * stores; RFC 5802 / RFC 7677). The 4096 PBKDF2 rounds run on libuv's thread pool, not on the
 * event loop, so concurrent starts' Docker and database calls are not held up by them.
 */
export async function scramVerifier(password: string, salt = randomBytes(16), iterations = 4096): Promise<string> {
  const salted = await pbkdf2(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

export class DatabaseUnavailableError extends Error {}

export interface EnsureResult {
  createdRole: boolean;
  createdDatabase: boolean;
}

export class InstanceDatabases {
  readonly names: FleetNames;
  readonly url: string | undefined;
  #pool: pg.Pool | undefined;
  #owner: Owner | undefined;

  constructor(private readonly config: Pick<Config, 'LS_DATABASE_URL' | 'DATABASE_URL' | 'LS_DATABASE_HOST' | 'LS_DATABASE_PORT' | 'FLEET_NAMESPACE'>) {
    this.names = fleetNames(config);
    this.url = config.LS_DATABASE_URL ?? config.DATABASE_URL;
  }

  #requireUrl(): string {
    if (!this.url) {
      throw new DatabaseUnavailableError(
        'per-annotator databases need PostgreSQL: set LS_DATABASE_URL (or DATABASE_URL) to a server where the fleet may create roles and databases',
      );
    }
    return this.url;
  }

  get #db(): pg.Pool {
    if (!this.#pool) {
      this.#pool = new pg.Pool({ connectionString: this.#requireUrl(), max: 4, connectionTimeoutMillis: 5_000 });
      this.#pool.on('error', () => {});
    }
    return this.#pool;
  }

  /** This installation (called by the composition root once the fleet database is open). */
  setOwner(owner: Owner): void {
    this.#owner = owner;
  }

  /**
   * One read of everything ensure() decides on: whether role and database exist, their marks
   * (COMMENT), the database's owner, and whether the connected user is a superuser or a member of
   * the role (needed to make the role an owner).
   */
  async #state(name: string) {
    const { rows } = await this.#db.query<{
      role: boolean;
      role_mark: string | null;
      database: boolean;
      database_mark: string | null;
      database_owner: string | null;
      super: boolean;
      member: boolean;
    }>(
      `SELECT r.oid IS NOT NULL AS role, shobj_description(r.oid, 'pg_authid') AS role_mark,
              d.oid IS NOT NULL AS database, shobj_description(d.oid, 'pg_database') AS database_mark,
              pg_get_userbyid(d.datdba) AS database_owner,
              (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS super,
              COALESCE(pg_has_role(current_user, r.oid, 'MEMBER'), false) AS member
         FROM (SELECT 1) one
         LEFT JOIN pg_roles r ON r.rolname = $1
         LEFT JOIN pg_database d ON d.datname = $1`,
      [name],
    );
    const r = rows[0]!;
    return {
      role: r.role ? { installation: markedInstallation(r.role_mark) } : null,
      database: r.database ? { installation: markedInstallation(r.database_mark), owner: r.database_owner } : null,
      superuser: r.super,
      member: r.member,
    };
  }

  /** The role's and database's marks (installation ids; undefined when unmarked) and the database's owner; null when absent. */
  async marks(name: string) {
    const { role, database } = await this.#state(name);
    return { role, database };
  }

  /** The database is ours: marked so, or unmarked but owned by our own marked role (a crash before its COMMENT). */
  #databaseOurs(m: Awaited<ReturnType<InstanceDatabases['marks']>>, name: string): boolean {
    if (!m.database) return true;
    if (isOurs(this.#owner, m.database.installation)) return true;
    return m.database.installation === undefined && m.role?.installation !== undefined && isOurs(this.#owner, m.role.installation) && m.database.owner === name;
  }

  /**
   * Throws ForeignResourceError when the role or database of that name is not this installation's;
   * returns the state read (#state) and whether each must be marked (exists, ours, no mark yet).
   */
  async #checkOwnership(annotatorId: number, name: string) {
    const m = await this.#state(name);
    const remedy =
      'If it belongs to an installation that is gone (a recreated fleet database), drop it or restore that fleet database; otherwise give this fleet its own FLEET_NAMESPACE. See README "Moving or restoring an installation".';
    const roleOurs = !m.role || isOurs(this.#owner, m.role.installation);
    if (!roleOurs) throw new ForeignResourceError(foreignMessage(`PostgreSQL role ${name}`, m.role!.installation, remedy));
    if (!this.#databaseOurs(m, name)) throw new ForeignResourceError(foreignMessage(`Label Studio database ${name} (annotator ${annotatorId})`, m.database!.installation, remedy));
    return {
      state: m,
      markRole: !!this.#owner && m.role !== null && m.role.installation === undefined,
      markDatabase: !!this.#owner && m.database !== null && m.database.installation === undefined,
    };
  }

  /** Database and role name of an annotator. */
  name(annotatorId: number): string {
    return this.names.database(annotatorId);
  }

  /** The annotator's database as a Label Studio container reaches it. */
  target(annotatorId: number): DatabaseTarget {
    const url = new URL(this.#requireUrl());
    const host = this.config.LS_DATABASE_HOST ?? decodeURIComponent(url.hostname).replace(/^\[|\]$/g, '');
    if (!host) throw new DatabaseUnavailableError('LS_DATABASE_HOST is required when LS_DATABASE_URL has no host name');
    const port = this.config.LS_DATABASE_PORT ?? (url.port ? Number(url.port) : 5432);
    const name = this.name(annotatorId);
    return { host, port, name, user: name };
  }

  /**
   * Creates what is missing and, given `password`, sets it as the role's (at each start: the
   * password derived for that start). Without one, a role created here has no password and cannot
   * log in until a call with one sets it. When role and database both exist (started before) this
   * is two round trips: one read, then one multi-statement write (one implicit transaction) of the
   * password, marks, owner and privileges.
   */
  async ensure(annotatorId: number, password?: string): Promise<EnsureResult> {
    const name = this.name(annotatorId);
    const ident = quoteIdent(name);
    const db = this.#db;
    const verifier = password === undefined ? null : quoteLiteral(await scramVerifier(password));
    const result: EnsureResult = { createdRole: false, createdDatabase: false };
    // Nothing is changed before both are known to be ours.
    const { state, markRole, markDatabase } = await this.#checkOwnership(annotatorId, name);
    const mark = this.#owner ? quoteLiteral(markText(this.#owner, annotatorId)) : null;

    if (!state.role) {
      const client = await db.connect();
      try {
        await client.query('BEGIN');
        await client.query(
          `CREATE ROLE ${ident} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 50 PASSWORD ${verifier ?? 'NULL'}`,
        );
        if (mark) await client.query(`COMMENT ON ROLE ${ident} IS ${mark}`);
        await client.query('COMMIT');
        result.createdRole = true;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        if ((err as { code?: string }).code !== '42710') throw err; // created concurrently
        await this.#checkOwnership(annotatorId, name);
      } finally {
        client.release();
      }
    }
    // A non-superuser admin (CREATEROLE + CREATEDB, e.g. RDS) must be a member of a role to make it an owner.
    const grantMember = state.superuser || state.member ? [] : [`GRANT ${ident} TO CURRENT_USER`];
    if (!state.database) {
      if (grantMember.length) await db.query(grantMember.pop()!);
      try {
        await db.query(`CREATE DATABASE ${ident} OWNER ${ident} ENCODING 'UTF8' TEMPLATE template0`);
        result.createdDatabase = true;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== '42P04' && code !== '23505') throw err; // created concurrently
      }
    }
    const statements = [
      // Only LOGIN and PASSWORD: changing other attributes needs a superuser (not so on RDS).
      ...(verifier && !result.createdRole ? [`ALTER ROLE ${ident} LOGIN PASSWORD ${verifier}`] : []),
      ...(mark && markRole ? [`COMMENT ON ROLE ${ident} IS ${mark}`] : []),
      ...grantMember,
      ...(!result.createdDatabase && state.database?.owner !== name ? [`ALTER DATABASE ${ident} OWNER TO ${ident}`] : []),
      ...(mark && (result.createdDatabase || markDatabase) ? [`COMMENT ON DATABASE ${ident} IS ${mark}`] : []),
      `REVOKE ALL ON DATABASE ${ident} FROM PUBLIC`,
      `GRANT CONNECT, TEMPORARY ON DATABASE ${ident} TO ${ident}`,
    ];
    // No parameters: the simple protocol runs them in one round trip, as one transaction.
    await db.query(statements.join(';\n'));
    return result;
  }

  async exists(annotatorId: number): Promise<{ role: boolean; database: boolean }> {
    const name = this.name(annotatorId);
    const { rows } = await this.#db.query<{ role: boolean; database: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS role,
              EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS database`,
      [name],
    );
    return rows[0]!;
  }

  /** Drops the database (closing its connections) and the role; gone already is success. */
  async drop(annotatorId: number): Promise<{ droppedDatabase: boolean; droppedRole: boolean }> {
    if (!this.url) return { droppedDatabase: false, droppedRole: false };
    const name = this.name(annotatorId);
    const ident = quoteIdent(name);
    const before = await this.exists(annotatorId);
    // Another installation's role or database is never dropped.
    const m = await this.marks(name);
    if (m.role && !isOurs(this.#owner, m.role.installation)) before.role = false;
    if (!this.#databaseOurs(m, name)) before.database = false;
    if (before.database) await this.#db.query(`DROP DATABASE IF EXISTS ${ident} WITH (FORCE)`);
    if (before.role) await this.#db.query(`DROP ROLE IF EXISTS ${ident}`);
    return { droppedDatabase: before.database, droppedRole: before.role };
  }

  /** Role/database names of this fleet's namespace that exist on the server (tests, clean-up). */
  async listNames(): Promise<string[]> {
    if (!this.url) return [];
    const prefix = this.names.database(1).replace(/1$/, '');
    const { rows } = await this.#db.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname LIKE $1 || '%' AND substr(datname, length($1) + 1) ~ '^[0-9]+$' ORDER BY datname`,
      [prefix],
    );
    return rows.map((r) => r.datname);
  }

  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    await pool?.end();
  }
}
