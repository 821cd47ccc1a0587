/**
 * Session cookies, NextAuth-compatible: the cookie is named as NextAuth names it, holds a random
 * token, and only the token's sha256 lives in the sessions table.
 */
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { sql } from 'kysely';
import { randomToken, sha256 } from '../crypto.ts';
import type { Db } from '../db/index.ts';

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

export async function currentSession(db: Db, c: Context): Promise<SessionInfo | null> {
  const token = readToken(c);
  if (!token || token.length > 256) return null;
  const row = await db
    .selectFrom('sessions')
    .innerJoin('adminUsers', 'adminUsers.id', 'sessions.adminUserId')
    .select(['sessions.adminUserId', 'adminUsers.email', 'sessions.expiresAt'])
    .where('sessions.tokenHash', '=', sha256(token))
    .where('sessions.revokedAt', 'is', null)
    .where('sessions.expiresAt', '>', sql<Date>`now()`)
    .executeTakeFirst();
  return row ?? null;
}

/** The signed-in admin's id, or null when the request carries no valid session. */
export async function sessionAdmin(db: Db, c: Context): Promise<number | null> {
  return (await currentSession(db, c))?.adminUserId ?? null;
}

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
