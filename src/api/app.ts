/**
 * The HTTP application: middleware, authentication gate, every resource's routes, the OpenAPI
 * document and the one place where errors become HTTP responses.
 */
import { Scalar } from '@scalar/hono-api-reference';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import type { AppContext } from '../context.ts';
import { AppError, PG, pgCode } from '../errors.ts';
import { authRoutes } from '../auth/routes.ts';
import { sessionAdmin } from '../auth/sessions.ts';
import { createRouter, type RouteFactory } from './router.ts';
import { systemRoutes } from './system.ts';
import { roleRoutes } from './roles.ts';
import { labelingConfigRoutes } from './labeling-configs.ts';
import { goldTaskRoutes } from './gold-tasks.ts';
import { settingRoutes } from './settings.ts';
import { workflowRoutes } from './workflows.ts';
import { annotatorRoutes } from './annotators.ts';
import { annotatorLifecycleRoutes } from './annotator-lifecycle.ts';
import { assignmentRoutes } from './assignments.ts';
import { rejectionRoutes } from './rejections.ts';
import { eventRoutes } from './events.ts';
import { monitoringRoutes } from './monitoring.ts';
import { qualityRoutes } from './quality.ts';
import { workflowAssignRoutes } from './workflow-assign.ts';
import { webhookRoutes } from './webhook.ts';
import { reconcileRoutes } from './reconcile.ts';
import { liveRoutes } from './live.ts';
import { registerMetricsRoute } from './metrics.ts';
import { metrics } from '../metrics.ts';
import { CONSOLE_PATHS, consoleRoutes } from '../console/index.tsx';

/** Every resource's routes, mounted under /api. Later features add their factory here. */
const ROUTES: RouteFactory[] = [
  systemRoutes,
  authRoutes,
  roleRoutes,
  labelingConfigRoutes,
  goldTaskRoutes,
  settingRoutes,
  workflowRoutes,
  liveRoutes,
  annotatorLifecycleRoutes,
  annotatorRoutes,
  assignmentRoutes,
  rejectionRoutes,
  eventRoutes,
  monitoringRoutes,
  qualityRoutes,
  workflowAssignRoutes,
  webhookRoutes,
  reconcileRoutes,
];

/** Paths that answer without a session: their own auth (webhook secret, bearer) or none. */
const PUBLIC_PATHS = [
  /^\/api\/health$/,
  /^\/api\/version$/,
  /^\/api\/auth\//,
  /^\/api\/webhook$/,
  /^\/api\/annotators\/[^/]+\/token$/,
  /^\/api\/openapi\.json$/,
  /^\/api\/docs$/,
  /^\/metrics$/,
  // The console's pages check the session themselves and send a browser without one to /login.
  CONSOLE_PATHS,
];

export function createApp(ctx: AppContext) {
  const app = createRouter();

  app.use(
    requestId({
      headerName: 'X-Request-Id',
      // Accept a caller's id only when it is short and plain; otherwise mint one.
      generator: () => crypto.randomUUID(),
      limitLength: 128,
    }),
  );

  app.use(async (c, next) => {
    const log = ctx.logger.child({ reqId: c.get('requestId') });
    c.set('log', log);
    const started = performance.now();
    await next();
    log.info(
      { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - started) },
      'request',
    );
  });

  app.use('*', async (c, next) => {
    if (PUBLIC_PATHS.some((p) => p.test(c.req.path))) return next();
    const adminUserId = await sessionAdmin(ctx.database.db, c);
    if (adminUserId === null) throw new AppError(401, 'Unauthorized');
    c.set('adminUserId', adminUserId);
    return next();
  });

  for (const routes of ROUTES) app.route('/api', routes(ctx));
  registerMetricsRoute(app, ctx);
  app.route('/', consoleRoutes(ctx));

  app.doc31('/api/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'LabelFleet admin API', version: '0.1.0', description: 'See README.md for conventions.' },
  });
  app.get('/api/docs', Scalar({ url: '/api/openapi.json', pageTitle: 'LabelFleet API' }));

  // A path the API serves, asked with a method it does not serve, is a 405 with Allow, not a 404.
  const routeMethods = app.routes
    .filter((r) => r.method !== 'ALL')
    .map((r) => ({
      method: r.method,
      pattern: new RegExp(
        `^${r.path
          .split('/')
          .map((s) => (s.startsWith(':') ? '[^/]+' : s === '*' ? '.*' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
          .join('/')}$`,
      ),
    }));
  app.notFound((c) => {
    const allow = new Set(routeMethods.filter((r) => r.pattern.test(c.req.path)).map((r) => r.method));
    if (allow.size > 0) {
      if (allow.has('GET')) allow.add('HEAD');
      c.header('Allow', [...allow].sort().join(', '));
      return c.json({ error: `Method ${c.req.method} not allowed on ${c.req.path}`, details: { allow: [...allow].sort() } }, 405);
    }
    return c.json({ error: `No route for ${c.req.method} ${c.req.path}` }, 404);
  });

  app.onError((err, c) => {
    if (err instanceof AppError) {
      for (const [k, v] of Object.entries(err.headers ?? {})) c.header(k, v);
      const body = err.details === undefined ? { error: err.message } : { error: err.message, details: err.details };
      return c.json(body, err.status);
    }
    if (err instanceof HTTPException) {
      const status = err.status;
      if (status >= 400 && status < 500) return c.json({ error: err.message || 'Bad request' }, status);
    }
    // A constraint the validation layer missed is still the client's fault, not a 500.
    const code = pgCode(err);
    if (code === PG.uniqueViolation) return c.json({ error: 'Conflict: a unique value is already in use' }, 409);
    if (code === PG.foreignKeyViolation) return c.json({ error: 'Conflict: a referenced resource does not exist or is in use' }, 409);
    if (code === PG.checkViolation || code === PG.stringTooLong || code === PG.numericOutOfRange || code === PG.notNullViolation) {
      return c.json({ error: 'Validation failed: a value is out of its allowed range' }, 400);
    }
    if (code === PG.invalidText || code === PG.characterNotInRepertoire || code === PG.untranslatableCharacter) {
      return c.json({ error: 'Validation failed: a value contains characters or text the database cannot store' }, 400);
    }
    (c.get('log') ?? ctx.logger).error({ err }, 'unhandled error');
    // The webhook route counts its own failures (source webhook).
    if (c.req.path !== '/api/webhook') metrics.errors.inc({ source: 'api' });
    return c.json({ error: 'Internal server error', details: { requestId: c.get('requestId') } }, 500);
  });

  return app;
}

export type App = ReturnType<typeof createApp>;
