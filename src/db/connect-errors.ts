import { DataDirInUseError } from './pglite-lock.ts';

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
  if (err instanceof DataDirInUseError) return err.message;
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
