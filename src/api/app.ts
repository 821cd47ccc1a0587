/**
 * The HTTP application: middleware, authentication gate, every resource's routes, the OpenAPI
 * document and the one place where errors become HTTP responses.
 */
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import type { AppContext } from '../context.ts';
import { AppError, PG, pgCode } from '../errors.ts';
import { isDatabaseUnavailable } from '../db/connect-errors.ts';
import { authRoutes } from '../auth/routes.ts';
import { refuseCrossSite } from '../auth/cross-site.ts';
import { SessionCheck, sessionTokenHash, unauthorized } from '../auth/sessions.ts';
import { allowedMethods } from './allowed-methods.ts';
import { limitBodies, lingerOnUnreadBody } from './body-limits.ts';
import { registerDocs, type SecurityScheme } from './docs.ts';
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
import { lazyChild } from '../logger.ts';
import { keyAuthentication } from './key-auth.ts';
import { idempotency } from './idempotency.ts';
import { apiKeyRoutes } from './api-keys.ts';
import { webhookSubscriptionRoutes } from './webhook-subscriptions.ts';
import { exportRoutes } from './exports.ts';
import { throughputRoutes } from './throughput.ts';
import { decoratePipeline, registerPipelineDocs, type Doc } from './openapi-pipeline.ts';
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
  reconcileRoutes,
  apiKeyRoutes,
  webhookSubscriptionRoutes,
  exportRoutes,
  throughputRoutes,
];

/**
 * Paths that answer without a session, and the credential each takes instead: `none` (public),
 * or an OpenAPI security scheme carried in a header (docs.ts SECURITY_SCHEMES). The gate, the
 * cross-site rule and the OpenAPI document all read this one table.
 */
export const PUBLIC_ROUTES: ReadonlyArray<{ path: RegExp; credential: 'none' | SecurityScheme }> = [
  { path: /^\/api\/health$/, credential: 'none' },
  { path: /^\/api\/version$/, credential: 'none' },
  { path: /^\/api\/auth\//, credential: 'none' },
  { path: /^\/api\/webhook$/, credential: 'webhookSecret' },
  { path: /^\/api\/annotators\/[^/]+\/token$/, credential: 'webhookSecret' },
  { path: /^\/api\/openapi\.json$/, credential: 'none' },
  { path: /^\/api\/docs(\/[\w.-]+)?$/, credential: 'none' },
  { path: /^\/metrics$/, credential: 'metricsToken' },
  // The console's pages check the session themselves and send a browser without one to /login.
  { path: CONSOLE_PATHS, credential: 'none' },
];

const publicRoute = (path: string) => PUBLIC_ROUTES.find((r) => r.path.test(path));

/**
 * Reads whose one statement checks a session cookie itself (SessionCheck, src/auth/sessions.ts):
 * the gate does not look the session up before them, which saves a round trip per request. Only
 * reads whose handler runs that one statement before anything else and uses nothing of `auth`;
 * the gate still checks the session after any of them that did not.
 */
export const SESSION_IN_STATEMENT: ReadonlyArray<{ method: string; path: RegExp }> = [{ method: 'GET', path: /^\/api\/annotators$/ }];

const sessionInStatement = (method: string, path: string) => SESSION_IN_STATEMENT.some((r) => r.method === method && r.path.test(path));

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

  // Label Studio's webhooks (1 s each), ahead of the rest of the chain: they authenticate by their
  // own secret, limit their own body and count their own outcomes (webhook.ts).
  app.route('/api', webhookRoutes(ctx));

  // Each request's logger carries its id; it is made only if the request logs something itself
  // (lazyChild). The request line is the service logger's, with the same fields, when `info` is on.
  app.use(async (c, next) => {
    const reqId = c.get('requestId');
    c.set('log', lazyChild(ctx.logger, { reqId }));
    const started = performance.now();
    await next();
    if (ctx.logger.isLevelEnabled('info')) {
      ctx.logger.info({ reqId, method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - started) }, 'request');
    }
  });

  // Browser hardening for every answer (nosniff, no framing, no referrer). HSTS is the TLS
  // terminator's call (README "Security"); the docs page sets its own CSP (docs.ts). These are
  // defaults: a header a route set itself (the console's framing and referrer rules) is kept.
  // Nothing here sets X-Powered-By, so there is none to remove.
  app.use(secureHeaders({ strictTransportSecurity: false, crossOriginResourcePolicy: 'same-origin', overwrite: false, removePoweredBy: false }));

  // Before anything reads a body (body-limits.ts).
  app.use(lingerOnUnreadBody());
  app.use(limitBodies());

  // Authentication gate. Sets `credential`, the one signal the cross-site rule reads (an API key
  // is a header credential: browsers never attach it on their own), and `auth`, who the request
  // acts for (key-auth.ts checks a key's scope and rate limits).
  const authenticateKey = keyAuthentication(ctx);
  app.use('*', async (c, next) => {
    const pub = publicRoute(c.req.path);
    if (pub) {
      c.set('credential', pub.credential === 'none' ? 'none' : 'header');
      return next();
    }
    if (await authenticateKey(c)) {
      c.set('credential', 'header');
      return next();
    }
    const tokenHash = sessionTokenHash(c);
    if (tokenHash === null) throw unauthorized();
    const session = new SessionCheck(ctx.database.db, tokenHash);
    c.set('credential', 'cookie');
    const signedIn = async () => {
      const adminUserId = await session.settle();
      if (adminUserId === null) throw unauthorized();
      c.set('adminUserId', adminUserId);
      c.set('auth', { kind: 'session', adminUserId });
    };
    if (sessionInStatement(c.req.method, c.req.path)) {
      c.set('sessionCheck', session);
      await next();
      // Whatever the route answered (rows, a 400, an error), it goes out only on a valid session.
      return signedIn();
    }
    await signedIn();
    return next();
  });

  // Every state-changing request of the service, not only /api (auth/cross-site.ts).
  app.use(refuseCrossSite());

  // A served path asked with a method it does not serve: 405 with Allow, from the route table
  // (allowed-methods.ts), before a handler of an overlapping template can see it.
  let methodsOf: ReturnType<typeof allowedMethods> | undefined;
  app.use(async (c, next) => {
    methodsOf ??= allowedMethods(app.routes);
    const allow = methodsOf(c.req.path);
    if (allow && !allow.includes(c.req.method)) {
      c.header('Allow', allow.join(', '));
      return c.json({ error: `Method ${c.req.method} not allowed on ${c.req.path}`, details: { allow } }, 405);
    }
    return next();
  });
  app.use('/api/*', idempotency(ctx));

  for (const routes of ROUTES) app.route('/api', routes(ctx));
  registerMetricsRoute(app, ctx);
  registerPipelineDocs(app);
  const securityOf = (documentPath: string) => publicRoute(documentPath)?.credential ?? 'session';
  registerDocs(app, securityOf, (doc) => decoratePipeline(doc as Doc, (path) => securityOf(path) !== 'session') as typeof doc);
  app.route('/', consoleRoutes(ctx));

  app.notFound((c) => c.json({ error: `No route for ${c.req.method} ${c.req.path}` }, 404));

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
    // The database away (restarting, failing over, connection cut): a passing condition, not a
    // bug. A request's change is one transaction — committed whole or not at all — and writes
    // are idempotent or keyed (Idempotency-Key), so the client may retry.
    if (isDatabaseUnavailable(err)) {
      (c.get('log') ?? ctx.logger).warn({ err: (err as Error).message, code: pgCode(err) }, 'database unavailable');
      metrics.databaseUnavailable.inc();
      c.header('Retry-After', '5');
      return c.json({ error: 'Service unavailable: the database cannot be reached', details: { retryAfterSeconds: 5, requestId: c.get('requestId') } }, 503);
    }
    (c.get('log') ?? ctx.logger).error({ err }, 'unhandled error');
    // The webhook route counts its own failures (source webhook).
    if (c.req.path !== '/api/webhook') metrics.errors.inc({ source: 'api' });
    return c.json({ error: 'Internal server error', details: { requestId: c.get('requestId') } }, 500);
  });

  return app;
}

export type App = ReturnType<typeof createApp>;
