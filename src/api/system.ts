/** Unauthenticated service endpoints: health and version. */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { ping } from '../db/index.ts';
import { VERSION } from '../version.ts';
import { jsonContent } from './common.ts';
import { createRouter } from './router.ts';

const FEATURES = [
  'container-orchestration',
  'workflow-chaining',
  'gold-standard-quality',
  'rejection-routing',
  'bulk-operations',
  'assignment-tracking',
  'event-audit-log',
  'system-settings',
];

const Health = z
  .object({
    status: z.enum(['ok', 'error']),
    database: z.enum(['connected', 'unreachable']),
    error: z.string().optional(),
  })
  .openapi('Health');

export function systemRoutes(ctx: AppContext) {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: 'get',
      path: '/health',
      tags: ['system'],
      summary: 'Liveness and database reachability (no auth)',
      responses: { 200: jsonContent(Health, 'Healthy'), 503: jsonContent(Health, 'Database unreachable') },
    }),
    async (c) => {
      const up = await Promise.race([
        ping(ctx.database.db),
        new Promise<false>((r) => setTimeout(() => r(false), 3_000).unref()),
      ]);
      return up
        ? c.json({ status: 'ok' as const, database: 'connected' as const }, 200)
        : c.json({ status: 'error' as const, database: 'unreachable' as const, error: 'Database unreachable' }, 503);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/version',
      tags: ['system'],
      summary: 'Service version and features (no auth)',
      responses: {
        200: jsonContent(
          z.object({ version: z.string(), apiVersion: z.string(), features: z.array(z.string()), node: z.string() }),
          'Version',
        ),
      },
    }),
    (c) => c.json({ version: VERSION, apiVersion: 'v1', features: FEATURES, node: process.version }, 200),
  );

  return app;
}
