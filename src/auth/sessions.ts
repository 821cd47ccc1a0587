/**
 * Session cookies, NextAuth-compatible: the cookie is named as NextAuth names it, holds a random
 * token, and only the token's sha256 lives in the sessions table.
 */
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { sql, type Expression } from 'kysely';
import { randomToken, sha256 } from '../crypto.ts';
import type { Db, Executor } from '../db/index.ts';
import { AppError } from '../errors.ts';

const COOKIE = 'next-auth.session-token';
const SECURE_COOKIE = '__Secure-next-auth.session-token';

/** Whether the browser reached us over https: directly, or as a TLS proxy says (X-Forwarded-Proto, any case, its first entry). */
export function isHttps(c: Context): boolean {
  return c.req.url.startsWith('https:') || c.req.header('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase() === 'https';
}

function readToken(c: Context): string | undefined {
  return getCookie(c, SECURE_COOKIE) ?? getCookie(c, COOKIE);
}

/** Whether the request carries a session cookie at all (valid or not): a browser that was signed in. */
export const hasSessionCookie = (c: Context): boolean => readToken(c) !== undefined;

export async function createSession(db: Db, c: Context, adminUserId: number, ttlHours: number): Promise<Date> {
  const token = randomToken();
  const expiresAt = new Date(Date.now() + ttlHours * 3_600_000);
  await db.insertInto('sessions').values({ tokenHash: sha256(token), adminUserId, expiresAt }).execute();
  const secure = isHttps(c);
  setCookie(c, secure ? SECURE_COOKIE : COOKIE, token, {
    httpOnly: true,
    sameSite: 'Lax',
    secure,
    path: '/',
    expires: expiresAt,
  });
  return expiresAt;
}

export interface SessionInfo {
  adminUserId: number;
  email: string;
  expiresAt: Date;
}

/** The sha256 of the request's session token: null without a cookie, or with one too long to be ours. */
export function sessionTokenHash(c: Context): string | null {
  const token = readToken(c);
  return token && token.length <= 256 ? sha256(token) : null;
}

/**
 * The one rule for a valid session: the row of this token hash, not revoked, not expired. Its
 * admin exists (removing an admin deletes their sessions: ON DELETE CASCADE, migrations/0001).
 * Every session check (the gate, the console, the statements that carry their own check:
 * `SessionCheck`) selects from this.
 */
function validSession(db: Executor, tokenHash: string) {
  return db
    .selectFrom('sessions')
    .where('sessions.tokenHash', '=', tokenHash)
    .where('sessions.revokedAt', 'is', null)
    .where('sessions.expiresAt', '>', sql<Date>`now()`);
}

export async function currentSession(db: Db, c: Context): Promise<SessionInfo | null> {
  const tokenHash = sessionTokenHash(c);
  if (tokenHash === null) return null;
  const row = await validSession(db, tokenHash)
    .innerJoin('adminUsers', 'adminUsers.id', 'sessions.adminUserId')
    .select(['sessions.adminUserId', 'adminUsers.email', 'sessions.expiresAt'])
    .executeTakeFirst();
  return row ?? null;
}

/** The signed-in admin's id, or null when the request carries no valid session. */
export async function sessionAdmin(db: Db, c: Context): Promise<number | null> {
  return (await currentSession(db, c))?.adminUserId ?? null;
}

/** The id of the admin whose valid session has this token hash, as a scalar subquery: null when there is none. */
export const sessionAdminId = (db: Executor, tokenHash: string): Expression<number | null> =>
  validSession(db, tokenHash).select('sessions.adminUserId').$castTo<number | null>();

/**
 * The check of one request's session cookie (its token hash), made once: by `settle` (a lookup of
 * its own: the gate, src/api/app.ts), or carried by a read's own statement, which saves that round
 * trip: the statement selects `adminId` (or `sessionAdminId` of `tokenHash`) beside its rows and
 * reads no rows while it is null (annotatorPage's `admit`, src/db/annotator-list.ts); the route passes the value that came
 * back to `confirm`, which throws the gate's 401 for null. The gate calls `settle` after such a
 * read: a route that did not confirm is checked then, so no answer goes out on a session that is
 * not valid. Nothing is cached: every request reads the sessions row, so a session ends on every
 * replica at once (sign-out, `fleet admin passwd`, the admin removed, expiry).
 */
export class SessionCheck {
  #adminUserId: number | null | undefined;

  constructor(
    private readonly db: Executor,
    readonly tokenHash: string,
  ) {}

  /** The signed-in admin's id as a scalar subquery (`sessionAdminId`): null when the session is not valid. */
  get adminId(): Expression<number | null> {
    return sessionAdminId(this.db, this.tokenHash);
  }

  /** Records what the statement found (`adminId`'s value); throws 401 when it found no valid session. */
  confirm(adminUserId: number | null | undefined): number {
    this.#adminUserId = adminUserId ?? null;
    if (this.#adminUserId === null) throw unauthorized();
    return this.#adminUserId;
  }

  /** The signed-in admin's id as confirmed, else looked up now (once); null: the session is not valid. */
  async settle(): Promise<number | null> {
    if (this.#adminUserId === undefined) {
      const row = await validSession(this.db, this.tokenHash).select('sessions.adminUserId').executeTakeFirst();
      this.#adminUserId = row?.adminUserId ?? null;
    }
    return this.#adminUserId;
  }
}

export const unauthorized = () => new AppError(401, 'Unauthorized');

export async function revokeSession(db: Db, c: Context): Promise<void> {
  const token = readToken(c);
  if (token) {
    await db
      .updateTable('sessions')
      .set({ revokedAt: new Date() })
      .where('tokenHash', '=', sha256(token))
      .where('revokedAt', 'is', null)
      .execute();
  }
  deleteCookie(c, COOKIE, { path: '/' });
  deleteCookie(c, SECURE_COOKIE, { path: '/', secure: true });
}
