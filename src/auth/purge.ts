/**
 * The scheduled purge of sign-in records nobody can use any more: sessions that expired or were
 * revoked, and throttle rows forgotten by the throttle's own rule (auth/throttle.ts) whose block,
 * if any, is over. Run as the reconciler's `purge` step (orchestrator/steps.ts), so one replica
 * at a time does it, at most every PURGE_INTERVAL_MS.
 */
import { sql } from 'kysely';
import type { Db } from '../db/index.ts';
import { FORGET_AFTER_SECONDS } from './throttle.ts';

export const PURGE_INTERVAL_MS = 10 * 60_000;

/** Deletes what is dead now. Out: how many rows of each kind went. */
export async function purgeAuthRecords(db: Db): Promise<{ sessions: number; throttle: number }> {
  const sessions = await db
    .deleteFrom('sessions')
    .where((eb) => eb.or([eb('expiresAt', '<=', sql<Date>`now()`), eb('revokedAt', 'is not', null)]))
    .executeTakeFirst();
  const throttle = await db
    .deleteFrom('loginThrottle')
    .where('lastAttemptAt', '<', sql<Date>`now() - make_interval(secs => ${FORGET_AFTER_SECONDS})`)
    .where((eb) => eb.or([eb('blockedUntil', 'is', null), eb('blockedUntil', '<=', sql<Date>`now()`)]))
    .executeTakeFirst();
  return { sessions: Number(sessions.numDeletedRows), throttle: Number(throttle.numDeletedRows) };
}

/** A reconcile step body that purges when PURGE_INTERVAL_MS has passed since its last run. */
export function scheduledPurge(intervalMs = PURGE_INTERVAL_MS) {
  let nextAt = 0;
  return async (db: Db): Promise<{ actions: string[]; errors: string[] }> => {
    if (Date.now() < nextAt) return { actions: [], errors: [] };
    const purged = await purgeAuthRecords(db);
    nextAt = Date.now() + intervalMs;
    const actions = purged.sessions || purged.throttle ? [`purged ${purged.sessions} dead session(s), ${purged.throttle} forgotten throttle row(s)`] : [];
    return { actions, errors: [] };
  };
}
