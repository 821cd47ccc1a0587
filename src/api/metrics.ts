/**
 * GET /metrics: Prometheus text exposition, at the root (not under /api), behind
 * `Authorization: Bearer <METRICS_TOKEN>`. Without METRICS_TOKEN the endpoint is disabled and
 * answers 404, so an unconfigured deployment exposes nothing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AppContext } from '../context.ts';
import { AppError, notFound } from '../errors.ts';
import { renderMetrics } from '../metrics.ts';
import type { Router } from './router.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time check of an Authorization header against the configured token. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  // Hashing first gives equal-length buffers, so the comparison time says nothing about the token.
  return m !== null && timingSafeEqual(digest(m[1]!), digest(token));
}

export function registerMetricsRoute(app: Router, ctx: AppContext) {
  const token = ctx.config.METRICS_TOKEN;
  if (!token) {
    // Not served at all: every method gets the 404 (a 405 would name methods that are not served).
    app.all('/metrics', () => {
      throw notFound('Metrics endpoint (set METRICS_TOKEN to enable it)');
    });
    return;
  }
  app.get('/metrics', async (c) => {
    if (!bearerMatches(c.req.header('authorization'), token)) {
      throw new AppError(401, 'Unauthorized', undefined, { 'WWW-Authenticate': 'Bearer realm="metrics"' });
    }
    const { contentType, body } = await renderMetrics(ctx.database.db);
    return c.body(body, 200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
  });
}
