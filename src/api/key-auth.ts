/**
 * The API-key half of the authentication gate (src/api/app.ts): a request presenting
 * `Authorization: Bearer …` is authenticated by its key (src/auth/api-keys.ts), counted against
 * the client's and the key's rate limits (src/api/rate-limit.ts) and checked against the route's
 * scope. It sets the context variables `auth` ({kind: 'apiKey', …}) and `adminUserId` (the admin
 * who created the key: the actions it takes are recorded in their name).
 */
import type { Context } from 'hono';
import { authenticateApiKey, bearerToken, checkScope } from '../auth/api-keys.ts';
import type { AppContext } from '../context.ts';
import { clientAddress } from '../auth/client.ts';
import { RateLimits } from './rate-limit.ts';
import type { AppEnv } from './router.ts';

/**
 * Returns the gate's key check: resolves true when the request was authenticated by a key, false
 * when it carries no bearer token (the session cookie decides); throws 401 (unknown, expired or
 * revoked key), 403 (outside the key's scopes) or 429 (rate limit).
 */
export function keyAuthentication(ctx: Pick<AppContext, 'database' | 'logger' | 'config'>) {
  const limits = new RateLimits(ctx.database.db, ctx.logger, ctx.config.TRUST_PROXY_HOPS);
  return async (c: Context<AppEnv>): Promise<boolean> => {
    const token = bearerToken(c);
    if (token === null) return false;
    // Counted before the key is checked, so guessing keys is limited too.
    await limits.consume(c, 'client', clientAddress(c, limits.trustProxyHops));
    const key = await authenticateApiKey(ctx.database.db, token);
    await limits.consume(c, 'key', String(key.id));
    checkScope(c, key.scopes);
    c.set('auth', { kind: 'apiKey', apiKeyId: key.id, scopes: key.scopes, adminUserId: key.createdBy });
    c.set('adminUserId', key.createdBy);
    return true;
  };
}
