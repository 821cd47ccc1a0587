/**
 * What happens to an outbound webhook delivery after an attempt (pure).
 *
 * - A 2xx answer delivers it.
 * - A refusal (the destination is not allowed) fails it at once: retrying cannot help until an
 *   admin changes the setting, and then they redeliver.
 * - Anything else (another status, a connection error, a timeout) schedules a retry after
 *   base × 2^(n−1) seconds for the n-th failed attempt, capped at one hour, ±10 % jitter
 *   (exponential backoff, as the Standard Webhooks guidance recommends); once the retry would fall
 *   past the window (`webhooks.retryWindowHours` after the first attempt or the last redelivery)
 *   the delivery fails.
 */

export const MAX_RETRY_DELAY_MS = 3_600_000;

export interface AttemptOutcome {
  statusCode: number | null;
  refused: boolean;
}

export type DeliveryDecision =
  | { status: 'delivered' }
  | { status: 'failed'; reason: 'refused' | 'window' }
  | { status: 'pending'; nextAttemptAt: Date };

/** The delay before the attempt after `failures` failed ones, ms (without jitter). */
export function retryDelayMs(failures: number, baseSeconds: number): number {
  const exp = Math.min(Math.max(failures, 1) - 1, 30);
  return Math.min(baseSeconds * 1000 * 2 ** exp, MAX_RETRY_DELAY_MS);
}

export function decideAfterAttempt(
  outcome: AttemptOutcome,
  opts: { failures: number; windowStartedAt: Date; now: Date; baseSeconds: number; windowHours: number; random?: () => number },
): DeliveryDecision {
  if (outcome.statusCode !== null && outcome.statusCode >= 200 && outcome.statusCode < 300) return { status: 'delivered' };
  if (outcome.refused) return { status: 'failed', reason: 'refused' };
  const jitter = 0.9 + 0.2 * (opts.random ?? Math.random)();
  const next = opts.now.getTime() + Math.round(retryDelayMs(opts.failures, opts.baseSeconds) * jitter);
  if (next > opts.windowStartedAt.getTime() + opts.windowHours * 3_600_000) return { status: 'failed', reason: 'window' };
  return { status: 'pending', nextAttemptAt: new Date(next) };
}
