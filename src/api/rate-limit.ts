/**
 * Rate limits for API-key traffic, per key and per client address, counted in PostgreSQL by
 * rate-limiter-flexible's RateLimiterPostgres (table rate_limits), so every replica shares the
 * counts. Each limit is a fixed one-minute window; the sizes are the settings
 * `rateLimit.keyRequestsPerMinute` and `rateLimit.clientRequestsPerMinute` (0 = unlimited; read
 * at most every 5 seconds). Session (browser) requests are not limited here.
 *
 * Every limited response carries the IETF httpapi RateLimit header fields
 * (draft-ietf-httpapi-ratelimit-headers-10: `RateLimit-Policy: "key";q=600;w=60` and
 * `RateLimit: "key";r=599;t=42`, one item per policy); past a limit the answer is 429 with
 * `Retry-After` (seconds) and the request goes no further.
 *
 * The store runs its SQL through Kysely (`executeQuery`), so the same limiter works on PostgreSQL
 * and on the embedded PGlite database. A failing store lets the request through (logged): the
 * limiter protects the service, it must not be the reason it is down.
 */
import type { Context } from 'hono';
import { CompiledQuery } from 'kysely';
import { RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import type { Config } from '../config.ts';
import type { Db } from '../db/index.ts';
import { AppError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { SETTING_DEFAULTS } from '../settings.ts';

export type RatePolicy = 'key' | 'client';

const SETTING: Record<RatePolicy, 'rateLimit.keyRequestsPerMinute' | 'rateLimit.clientRequestsPerMinute'> = {
  key: 'rateLimit.keyRequestsPerMinute',
  client: 'rateLimit.clientRequestsPerMinute',
};
const WINDOW_SECONDS = 60;
const SETTINGS_TTL_MS = 5_000;

interface Outcome {
  policy: RatePolicy;
  limit: number;
  remaining: number;
  resetSeconds: number;
}

export class RateLimits {
  readonly #db: Db;
  readonly #log: Logger;
  readonly #store: { query(q: { text: string; values?: unknown[] }): Promise<{ rows: unknown[]; rowCount: number }> };
  readonly #limiters = new Map<string, RateLimiterPostgres>();
  #settings: { at: number; value: Promise<Record<RatePolicy, number>> } | undefined;

  constructor(db: Db, log: Logger, readonly trustProxyHops: Config['TRUST_PROXY_HOPS']) {
    this.#db = db;
    this.#log = log;
    this.#store = {
      query: async (q) => {
        const r = await db.executeQuery(CompiledQuery.raw(q.text, q.values ?? []));
        return { rows: r.rows, rowCount: r.rows.length };
      },
    };
  }

  /** Requests per minute of each policy (0 = unlimited); invalid stored values fall back to the default. */
  async limits(): Promise<Record<RatePolicy, number>> {
    if (!this.#settings || Date.now() - this.#settings.at > SETTINGS_TTL_MS) {
      const value = this.#db
        .selectFrom('settings')
        .select(['key', 'value'])
        .where('key', 'in', Object.values(SETTING))
        .execute()
        .then((rows) => {
          const read = (p: RatePolicy) => {
            const v = rows.find((r) => r.key === SETTING[p])?.value;
            return Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 1_000_000 ? (v as number) : SETTING_DEFAULTS[SETTING[p]];
          };
          return { key: read('key'), client: read('client') };
        });
      this.#settings = { at: Date.now(), value };
      value.catch(() => (this.#settings = undefined));
    }
    return this.#settings.value;
  }

  #limiter(policy: RatePolicy, points: number): RateLimiterPostgres {
    const id = `${policy}:${points}`;
    let limiter = this.#limiters.get(id);
    if (!limiter) {
      limiter = new RateLimiterPostgres({
        storeClient: this.#store,
        storeType: 'client',
        tableName: 'rate_limits',
        tableCreated: true,
        keyPrefix: policy,
        points,
        duration: WINDOW_SECONDS,
      });
      this.#limiters.set(id, limiter);
    }
    return limiter;
  }

  /**
   * Counts one request against `policy` for `subject` (a key id or a client address), sets the
   * RateLimit fields on the response, and throws 429 when the window's quota is spent.
   */
  async consume(c: Context, policy: RatePolicy, subject: string): Promise<void> {
    const limit = (await this.limits())[policy];
    if (limit === 0) return;
    let res: RateLimiterRes;
    let limited = false;
    try {
      res = await this.#limiter(policy, limit).consume(subject);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) {
        this.#log.warn({ err, policy }, 'rate limit store failed; request let through');
        return;
      }
      res = err;
      limited = true;
    }
    const outcome: Outcome = {
      policy,
      limit,
      remaining: res.remainingPoints,
      resetSeconds: Math.max(0, Math.ceil(res.msBeforeNext / 1000)),
    };
    appendRateLimitFields(c, outcome);
    if (limited) {
      throw new AppError(429, `Too many requests: the ${policy} limit of ${limit} per minute is reached`, { policy, limit, retryAfterSeconds: outcome.resetSeconds }, {
        'Retry-After': String(Math.max(1, outcome.resetSeconds)),
      });
    }
  }
}

/** Adds one policy to the RateLimit-Policy and RateLimit fields of the response being built. */
function appendRateLimitFields(c: Context, o: Outcome) {
  c.header('RateLimit-Policy', `"${o.policy}";q=${o.limit};w=${WINDOW_SECONDS}`, { append: true });
  c.header('RateLimit', `"${o.policy}";r=${o.remaining};t=${o.resetSeconds}`, { append: true });
}
