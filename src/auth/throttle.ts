/**
 * Sign-in throttling, in the database so every replica counts together (README "Security").
 *
 * Two keys per attempt: the client and email pair (`pair:<client>|<email>`, at most
 * `LOGIN_MAX_FAILURES` attempts a round) and the client alone (`client:<client>`, at most
 * `LOGIN_CLIENT_MAX_ATTEMPTS` a round, whatever emails it tries). A client is what
 * auth/client.ts says (the peer address, or a forwarded one when TRUST_PROXY_HOPS says so).
 *
 * An attempt is COUNTED BEFORE its password is verified, by one atomic upsert per key: however
 * many arrive at once, PostgreSQL serialises them on the row, so no more than the limit are ever
 * verified in a round. The attempt that reaches the limit is still verified and ends the round
 * with a block of LOGIN_LOCKOUT_SECONDS × 2^(strikes so far), at most BLOCK_CAP_SECONDS; while
 * blocked, attempts are refused (429 + Retry-After) without being counted. A correct password
 * clears its pair and gives the client back the attempt it used. A key untouched for
 * FORGET_AFTER_SECONDS starts over (strikes included); the purge deletes such rows.
 *
 * Keyed this way, a stranger's wrong passwords block the stranger — their client, for the email
 * they tried — never the admin signing in from elsewhere.
 */
import { sql } from 'kysely';
import type { Db } from '../db/index.ts';

export interface ThrottleRules {
  /** Attempts per client and email in a round. */
  maxFailures: number;
  /** Attempts per client in a round, over every email. */
  clientMaxAttempts: number;
  /** The first block; each further one doubles. */
  lockoutSeconds: number;
}

/** The longest block, however many strikes. */
export const BLOCK_CAP_SECONDS = 24 * 3600;
/** A key with no attempt for this long is forgotten (must exceed BLOCK_CAP_SECONDS). */
export const FORGET_AFTER_SECONDS = 2 * 24 * 3600;

export const throttleKeys = (client: string, email: string) => ({
  client: `client:${client}`,
  pair: `pair:${client}|${email.trim().toLowerCase()}`,
});

/**
 * Counts one attempt against `key`. Returns 0 when the attempt may be verified, else the seconds
 * until the key's block ends (the attempt was not counted).
 */
async function consume(db: Db, key: string, max: number, lockoutSeconds: number): Promise<number> {
  // Every SET expression reads the row as it was (t.*). A round restarts after a block ended
  // (`over`) or after FORGET_AFTER_SECONDS of quiet (`forgotten`, which also clears strikes).
  const forgotten = sql`t.last_attempt_at < now() - make_interval(secs => ${FORGET_AFTER_SECONDS})`;
  const over = sql`(t.blocked_until IS NOT NULL AND t.blocked_until <= now())`;
  const attempts = sql`CASE WHEN ${forgotten} OR ${over} THEN 1 ELSE t.attempts + 1 END`;
  const strikes = sql`CASE WHEN ${forgotten} THEN 0 ELSE t.strikes END`;
  const block = (s: unknown) => sql`now() + make_interval(secs => least(${lockoutSeconds}::float8 * power(2, ${s}), ${BLOCK_CAP_SECONDS}))`;
  const counted = await sql<{ attempts: number }>`
    INSERT INTO login_throttle AS t (key, attempts, strikes, blocked_until, last_attempt_at)
    VALUES (${key}, 1, ${max <= 1 ? 1 : 0}, ${max <= 1 ? block(0) : null}, now())
    ON CONFLICT (key) DO UPDATE SET
      attempts = ${attempts},
      strikes = CASE WHEN ${attempts} >= ${max} THEN ${strikes} + 1 ELSE ${strikes} END,
      blocked_until = CASE WHEN ${attempts} >= ${max} THEN ${block(strikes)} ELSE NULL END,
      last_attempt_at = now()
    WHERE t.blocked_until IS NULL OR t.blocked_until <= now()
    RETURNING attempts`.execute(db);
  if (counted.rows.length > 0) return 0;
  // The row is blocked (nothing was updated): how long for.
  const row = await db.selectFrom('loginThrottle').select(sql<number>`extract(epoch FROM blocked_until - now())`.as('left')).where('key', '=', key).executeTakeFirst();
  return Math.max(1, Math.ceil(Number(row?.left ?? 1)));
}

/**
 * Counts a sign-in attempt of `client` for `email` before it is verified. Returns 0 when the
 * password may be checked, else the Retry-After seconds of the block that refuses it.
 */
export async function countAttempt(db: Db, client: string, email: string, rules: ThrottleRules): Promise<number> {
  const keys = throttleKeys(client, email);
  const clientWait = await consume(db, keys.client, rules.clientMaxAttempts, rules.lockoutSeconds);
  if (clientWait > 0) return clientWait;
  return consume(db, keys.pair, rules.maxFailures, rules.lockoutSeconds);
}

/** After a correct password: the pair starts over, and the client gets its attempt back. */
export async function attemptSucceeded(db: Db, client: string, email: string, rules: ThrottleRules): Promise<void> {
  const keys = throttleKeys(client, email);
  await db.deleteFrom('loginThrottle').where('key', '=', keys.pair).execute();
  await db
    .updateTable('loginThrottle')
    .set({
      attempts: sql`greatest(attempts - 1, 0)`,
      // The refunded attempt may be the one that ended the round.
      blockedUntil: sql`CASE WHEN attempts - 1 < ${rules.clientMaxAttempts} THEN NULL ELSE blocked_until END`,
    })
    .where('key', '=', keys.client)
    .execute();
}
