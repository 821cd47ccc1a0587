import { DataDirInUseError } from './pglite-lock.ts';
import { LockLostError } from './index.ts';

/**
 * Turns a failure to reach PostgreSQL into one line an operator can act on, naming the server
 * (never the password) and the fix.
 *
 * In: the error node-postgres (or the pool) raised, and the DATABASE_URL it was given. Out: the
 * line, or null when the error is not about reaching the database (a bug, a failed migration...).
 * Codes: Node's socket errors (ECONNREFUSED, ENOTFOUND, EAI_AGAIN, ETIMEDOUT, ECONNRESET,
 * EHOSTUNREACH) and PostgreSQL's SQLSTATE 3D000 invalid_catalog_name, 28P01 invalid_password,
 * 28000 invalid_authorization_specification, 57P03 cannot_connect_now (PostgreSQL manual,
 * Appendix A). pg's own "timeout exceeded when trying to connect" has no code. For the embedded
 * database (no url): its directory held by another process (db/pglite-lock.ts).
 */
export function describeConnectError(err: unknown, url: string | undefined): string | null {
  if (err instanceof DataDirInUseError || err instanceof LockLostError) return err.message;
  if (!url) return null;
  const where = redactUrl(url);
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  switch (code) {
    case 'ECONNREFUSED':
    case 'ECONNRESET':
    case 'EHOSTUNREACH':
    case 'ETIMEDOUT':
      return `cannot connect to the database at ${where} (${code}): start PostgreSQL there, or set DATABASE_URL to a server that runs`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve the database host of ${where} (${code}): fix the host name in DATABASE_URL`;
    case '3D000': {
      const name = decodeURIComponent(new URL(url).pathname.slice(1)) || 'postgres';
      return `the database "${name}" does not exist at ${where}: create it (createdb ${name}) or fix DATABASE_URL`;
    }
    case '28P01':
    case '28000':
      return `the database at ${where} refused the credentials (${code}: ${message}): fix the user or password in DATABASE_URL`;
    case '57P03':
      return `the database at ${where} is starting up or shutting down (57P03): try again in a moment`;
  }
  if (isDatabaseUnavailable(err)) return `lost the connection to the database at ${where} (${code ?? message}): check that PostgreSQL runs there, then run the command again`;
  if (/timeout exceeded when trying to connect/i.test(message)) {
    return `no answer from the database at ${where} within 5 s: check that PostgreSQL runs there and the network allows it`;
  }
  return null;
}

/** The connection string without its password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '';
    return u.toString().replace(/:@/, '@');
  } catch {
    return '(unparsable DATABASE_URL)';
  }
}

/** The code of an error, or of the first inner error of an AggregateError (localhost → ::1 and 127.0.0.1). */
function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  const inner = (err as { errors?: unknown[] } | null)?.errors;
  return Array.isArray(inner) ? inner.map(errorCode).find(Boolean) : undefined;
}

/**
 * SQLSTATEs that mean "the database is not reachable now", not "this statement is wrong"
 * (PostgreSQL manual, Appendix A): class 08 connection_exception; 57P01 admin_shutdown (also
 * pg_terminate_backend), 57P02 crash_shutdown, 57P03 cannot_connect_now, 57P05
 * idle_session_timeout; 53300 too_many_connections; 25P03 idle_in_transaction_session_timeout.
 */
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[1235]|53300|25P03)$/;
/** Socket errors of a connection that could not be made or was cut (Node's net codes). */
const UNAVAILABLE_SOCKET = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/**
 * node-postgres's own messages for a connection that ended or never came (they carry no code):
 * lib/client.js "Connection terminated unexpectedly" / "Connection terminated" / "Client has
 * encountered a connection error and is not queryable"; pg-pool "timeout exceeded when trying to
 * connect".
 */
const UNAVAILABLE_MESSAGE = /^(Connection terminated( unexpectedly)?|Client has encountered a connection error and is not queryable|timeout exceeded when trying to connect|Connection terminated due to connection timeout)$/i;

/**
 * Whether an error means the database could not be reached or the connection was lost — a
 * passing condition, answered 503 by the API (api/app.ts) — as opposed to a bug or a bad
 * statement. In: anything thrown by node-postgres, pg-pool, Kysely or withAdvisoryLock
 * (LockLostError). Also looks through an AggregateError's errors (a host name with an IPv4 and
 * an IPv6 address). Out: true or false.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (err instanceof LockLostError) return true;
  const code = errorCode(err);
  if (code !== undefined && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_SOCKET.has(code))) return true;
  return err instanceof Error && UNAVAILABLE_MESSAGE.test(err.message);
}
