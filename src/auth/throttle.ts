/**
 * Login throttling per email, in the database so every replica sees the same count: after
 * LOGIN_MAX_FAILURES wrong passwords the email is locked for LOGIN_LOCKOUT_SECONDS (429 +
 * Retry-After). A successful login clears the count.
 */
import { sql } from 'kysely';
import type { Db } from '../db/index.ts';

export interface ThrottleRules {
  maxFailures: number;
  lockoutSeconds: number;
}

/** Seconds left on a lock, or 0 when the email may try. */
export async function lockedFor(db: Db, email: string): Promise<number> {
  const row = await db
    .selectFrom('loginFailures')
    .select('lockedUntil')
    .where('email', '=', email.toLowerCase())
    .executeTakeFirst();
  if (!row?.lockedUntil) return 0;
  return Math.max(0, Math.ceil((row.lockedUntil.getTime() - Date.now()) / 1000));
}

export async function recordFailure(db: Db, email: string, rules: ThrottleRules): Promise<void> {
  await db
    .insertInto('loginFailures')
    .values({ email: email.toLowerCase(), failures: 1, updatedAt: new Date() })
    .onConflict((oc) =>
      oc.column('email').doUpdateSet({
        // A failure after an expired lock starts a fresh count.
        failures: sql`CASE WHEN login_failures.locked_until IS NOT NULL AND login_failures.locked_until <= now()
                      THEN 1 ELSE login_failures.failures + 1 END`,
        lockedUntil: sql`CASE WHEN login_failures.locked_until IS NOT NULL AND login_failures.locked_until <= now()
                      THEN NULL ELSE login_failures.locked_until END`,
        updatedAt: new Date(),
      }),
    )
    .execute();
  await db
    .updateTable('loginFailures')
    .set({ lockedUntil: sql`now() + make_interval(secs => ${rules.lockoutSeconds})`, failures: 0 })
    .where('email', '=', email.toLowerCase())
    .where('failures', '>=', rules.maxFailures)
    .execute();
}

export async function clearFailures(db: Db, email: string): Promise<void> {
  await db.deleteFrom('loginFailures').where('email', '=', email.toLowerCase()).execute();
}
