/**
 * The admin console, served at / by the same service as the API (README "Console").
 *
 * Pages are rendered on the server (Hono JSX) from the repository functions the API uses
 * (src/db/, src/workflows/, and the exported read functions of src/api/). Every change is made by
 * the browser calling the API itself (same origin, the session cookie), so the API's validation is
 * the console's validation. A small script (src/console/client/) sends forms as JSON, places the
 * API's error details at their fields, localises times, draws charts, and refreshes the page's live
 * regions when the change stream (GET /api/changes) says a topic it shows has changed.
 *
 * Without a session a page redirects to /login. Every console response carries a
 * Content-Security-Policy without inline scripts or styles, `frame-ancestors 'none'` and
 * X-Frame-Options DENY.
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import type { Child } from 'hono/jsx';
import type { AppContext } from '../context.ts';
import { currentSession, hasSessionCookie } from '../auth/sessions.ts';
import { sameOriginPath } from '../auth/redirect.ts';
import { issueCsrfToken } from '../auth/csrf.ts';
import { AppError } from '../errors.ts';
import { monitoringTimeZone } from '../db/monitoring.ts';
import type { AppEnv } from '../api/router.ts';
import { ASSET_PREFIX, consoleAssets, type AssetBundle } from './assets.ts';
import { pickEncoding, sendPage } from './send-page.ts';
import { BarePage, Page, type PageProps, type SessionView } from './layout.tsx';
import { LoginPage } from './pages/login.tsx';
import { overviewPage } from './pages/overview.tsx';
import { annotatorPage, annotatorsPage } from './pages/annotators.tsx';
import { workflowFormPage, workflowPage, workflowsPage } from './pages/workflows.tsx';
import { batchesPage } from './pages/batches.tsx';
import { qualityPage } from './pages/quality.tsx';
import { labelingConfigPage, labelingConfigsPage } from './pages/labeling-configs.tsx';
import { goldTaskPage, goldTasksPage } from './pages/gold-tasks.tsx';
import { rolePage, rolesPage } from './pages/roles.tsx';
import { eventsPage } from './pages/events.tsx';
import { pageQuery } from './pages/params.ts';
import { settingsPage } from './pages/settings.tsx';

/** What a page is rendered from. */
export interface PageContext {
  ctx: AppContext;
  c: Context<ConsoleEnv>;
  /** The request's query parameters (first value of each). */
  query: Record<string, string>;
  /** The page's content and shell settings. */
  render(props: Omit<PageProps, 'assets' | 'session' | 'fleetTimeZone'> & { body: Child }): Promise<Response>;
  fleetTimeZone(): Promise<string>;
}

export type ConsoleEnv = AppEnv & { Variables: AppEnv['Variables'] & { session: SessionView; assets: AssetBundle } };

type PageHandler = (p: PageContext) => Promise<Response>;

/** Content-Security-Policy of every console response: only this origin's files, no inline code. */
export const CONSOLE_CSP = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  fontSrc: ["'self'"],
  connectSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
};

/** Paths the console serves (the API's authentication gate leaves them to the console). */
export const CONSOLE_PATHS = /^\/(?!api(?:\/|$)|metrics$)/;

export function consoleRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  const { db } = ctx.database;

  // Mounted at / beside the API: the console's middleware must leave /api and /metrics alone.
  const onlyConsole =
    (mw: MiddlewareHandler<ConsoleEnv>): MiddlewareHandler<ConsoleEnv> =>
    (c, next) =>
      CONSOLE_PATHS.test(c.req.path) ? mw(c, next) : next();

  app.use(
    '*',
    onlyConsole(
      secureHeaders({
        contentSecurityPolicy: CONSOLE_CSP,
        xFrameOptions: 'DENY',
        referrerPolicy: 'same-origin',
        crossOriginEmbedderPolicy: false,
        // The TLS terminator's call, as for the API (README "Security").
        strictTransportSecurity: false,
      }),
    ),
  );

  app.get(`${ASSET_PREFIX}:name`, async (c) => {
    const asset = (await consoleAssets()).files.get(c.req.param('name'));
    if (!asset) return c.text('Not found', 404);
    c.header('Content-Type', asset.type);
    c.header('Cache-Control', 'public, max-age=31536000, immutable');
    c.header('ETag', asset.etag);
    c.header('Vary', 'Accept-Encoding');
    if (c.req.header('if-none-match') === asset.etag) return c.body(null, 304);
    // Assets are stored gzip-compressed only: sent so when the browser accepts gzip (q > 0).
    if (pickEncoding(c.req.header('accept-encoding'), ['gzip'])) {
      c.header('Content-Encoding', 'gzip');
      return c.body(asset.gzip as Uint8Array<ArrayBuffer>);
    }
    return c.body(asset.body as Uint8Array<ArrayBuffer>);
  });

  // Pages: never cached (they show live state and the session); compressed by sendPage.
  app.use(
    '*',
    onlyConsole(async (c, next) => {
      c.header('Cache-Control', 'no-store');
      c.set('assets', await consoleAssets());
      await next();
    }),
  );

  app.get('/login', async (c) => {
    const next = safeNext(c.req.query('next'), new URL(c.req.url).origin);
    if (await currentSession(db, c)) return c.redirect(next, 303);
    return sendPage(
      c,
      <BarePage title="Sign in" assets={c.get('assets')}>
        <LoginPage csrfToken={issueCsrfToken(ctx.secrets)} next={next} expired={c.req.query('expired') === '1'} />
      </BarePage>,
    );
  });

  // Every other page needs a session; without one the browser goes to the sign-in page and back.
  app.use(
    '*',
    onlyConsole(async (c, next) => {
      const session = await currentSession(db, c);
      if (!session) {
        const target = c.req.path + (new URL(c.req.url).search || '');
        // A browser still holding a cookie had a session that ended (expired, signed out in
        // another tab, revoked): the sign-in page says so.
        const ended = hasSessionCookie(c) ? '&expired=1' : '';
        return c.redirect(`/login?next=${encodeURIComponent(target)}${ended}`, 303);
      }
      c.set('session', { email: session.email, expiresAt: session.expiresAt });
      c.set('adminUserId', session.adminUserId);
      await next();
    }),
  );

  const page = (handler: PageHandler) => async (c: Context<ConsoleEnv>) => {
    // Read beside the page's own queries rather than after them (every page shows the zone).
    const tz = monitoringTimeZone(db, c.get('log'));
    tz.catch(() => {});
    const fleetTimeZone = () => tz;
    const p: PageContext = {
      ctx,
      c,
      query: pageQuery(c.req.query()),
      fleetTimeZone,
      async render({ body, ...props }) {
        return sendPage(
          c,
          <Page {...props} assets={c.get('assets')} session={c.get('session')} fleetTimeZone={await fleetTimeZone()}>
            {body}
          </Page>,
        );
      },
    };
    return handler(p);
  };

  app.get('/', page(overviewPage));
  app.get('/annotators', page(annotatorsPage));
  app.get('/annotators/:id', page(annotatorPage));
  app.get('/workflows', page(workflowsPage));
  app.get('/workflows/new', page(workflowFormPage));
  app.get('/workflows/:id', page(workflowPage));
  app.get('/batches', page(batchesPage));
  app.get('/quality', page(qualityPage));
  app.get('/labeling-configs', page(labelingConfigsPage));
  app.get('/labeling-configs/:id', page(labelingConfigPage));
  app.get('/gold-tasks', page(goldTasksPage));
  app.get('/gold-tasks/:id', page(goldTaskPage));
  app.get('/roles', page(rolesPage));
  app.get('/roles/:id', page(rolePage));
  app.get('/events', page(eventsPage));
  app.get('/settings', page(settingsPage));
  // Any other console address is a page saying so, in the console's frame, not the API's JSON
  // (the API's paths, and other methods, go on to the API's 404). Middleware after every page
  // rather than a `*` route: it reaches only what no page answered, and the route table (405s,
  // allowed-methods.ts) stays the pages' own.
  app.use('*', (c, next) => {
    if (!CONSOLE_PATHS.test(c.req.path) || (c.req.method !== 'GET' && c.req.method !== 'HEAD')) return next();
    throw new AppError(404, `There is no page at ${c.req.path}`);
  });

  // A missing resource or a malformed id is a page saying so, not the API's JSON; anything else is
  // logged and shown as a failure with the request id (never a stack trace).
  app.onError((err, c) => {
    const known = err instanceof AppError && err.status < 500;
    if (!known) (c.get('log') ?? ctx.logger).error({ err }, 'console page failed');
    const status = known ? err.status : 500;
    const title = status === 404 ? 'Not found' : known ? 'Cannot show this page' : 'Something went wrong';
    const assets = c.get('assets');
    const body = (
      <>
        <p>{known ? `${err.message}.` : `The page could not be shown (request ${c.get('requestId')}).`}</p>
        <p>
          <a href="/">Back to the overview</a>
        </p>
      </>
    );
    if (!assets) return c.text(title, status as 500);
    return sendPage(
      c,
      <Page title={title} assets={assets} session={c.get('session')}>
        {body}
      </Page>,
      status as 500,
    );
  });

  return app;
}

/**
 * A same-origin path to return to after sign-in, by the rule the sign-in API applies to
 * callbackUrl (src/auth/redirect.ts, WHATWG URL parsing as browsers do): anything a browser would
 * read as another site (`//host`, `/\host`, tabs or newlines that browsers drop, other schemes)
 * is `/`. `origin` is the service's origin as the request reached it.
 */
export function safeNext(next: string | undefined, origin = 'http://localhost'): string {
  return sameOriginPath(next, origin);
}

/** A positive 32-bit id from a path segment, or a 404. */
export function pathId(c: Context, what: string): number {
  const raw = c.req.param('id') ?? '';
  const n = /^[1-9][0-9]{0,9}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n > 2_147_483_647) throw new AppError(404, `${what} not found`);
  return n;
}
