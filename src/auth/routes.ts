/** NextAuth-compatible credentials login: csrf → callback/credentials → session → signout. */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { DUMMY_PASSWORD_HASH, verifyPassword } from '../crypto.ts';
import { DEFAULT_ADMIN_PASSWORD } from '../config.ts';
import { AppError, badRequest, tooManyRequests, unauthorized } from '../errors.ts';
import { errors, jsonContent } from '../api/common.ts';
import { createRouter } from '../api/router.ts';
import { findAdminByEmail } from './admins.ts';
import { issueCsrfToken, verifyCsrfToken } from './csrf.ts';
import { clientAddress, fromThisMachine } from './client.ts';
import { sameOriginPath } from './redirect.ts';
import { createSession, currentSession, revokeSession } from './sessions.ts';
import { attemptSucceeded, countAttempt } from './throttle.ts';

const Credentials = z
  .object({
    email: z.string().max(255).openapi({ example: 'admin@fleet.local' }),
    password: z.string().max(1024),
    csrfToken: z.string().max(200).optional(),
    callbackUrl: z.string().max(2048).optional(),
  })
  .openapi('Credentials');

const SessionSchema = z
  .object({
    user: z.object({ email: z.string(), name: z.string().nullable() }).optional(),
    expires: z.string().optional(),
  })
  .openapi('Session');

export function authRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/auth/csrf',
      tags: ['auth'],
      summary: 'A CSRF token for the credentials login',
      responses: { 200: jsonContent(z.object({ csrfToken: z.string() }), 'A fresh token') },
    }),
    (c) => c.json({ csrfToken: issueCsrfToken(ctx.secrets) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/auth/callback/credentials',
      tags: ['auth'],
      summary: 'Sign in with email, password and csrfToken (form-urlencoded or JSON); sets the session cookie',
      request: {
        // Not `required`: zod-openapi then validates only the body type the request declares.
        body: {
          content: {
            'application/x-www-form-urlencoded': { schema: Credentials },
            'application/json': { schema: Credentials },
          },
        },
      },
      responses: {
        200: jsonContent(z.object({ url: z.string(), user: z.object({ email: z.string() }) }), 'Signed in; cookie set'),
        400: errors[400],
        401: errors[401],
        403: jsonContent(z.object({ error: z.string() }), 'Cross-site request, or the default password from another machine (README "Security")'),
        429: jsonContent(z.object({ error: z.string() }), 'Too many failed attempts; see Retry-After'),
      },
    }),
    async (c) => {
      const type = c.req.header('content-type') ?? '';
      if (!/application\/json|application\/x-www-form-urlencoded/.test(type)) {
        throw badRequest('Send email, password and csrfToken as form-urlencoded or JSON');
      }
      const body = type.includes('application/json') ? c.req.valid('json') : c.req.valid('form');
      const email = body.email.trim();
      if (!verifyCsrfToken(ctx.secrets, body.csrfToken)) throw unauthorized('Invalid or missing CSRF token');

      // Counted before the password is verified (auth/throttle.ts): parallel guesses cannot overtake it.
      const client = clientAddress(c, ctx.config.TRUST_PROXY_HOPS);
      const rules = {
        maxFailures: ctx.config.LOGIN_MAX_FAILURES,
        clientMaxAttempts: ctx.config.LOGIN_CLIENT_MAX_ATTEMPTS,
        lockoutSeconds: ctx.config.LOGIN_LOCKOUT_SECONDS,
      };
      const wait = await countAttempt(db, client, email, rules);
      if (wait > 0) throw tooManyRequests('Too many failed sign-in attempts; try again later', wait);

      const admin = await findAdminByEmail(db, email);
      const ok = await verifyPassword(body.password, admin?.passwordHash ?? DUMMY_PASSWORD_HASH);
      if (!admin || !ok) {
        c.get('log').warn({ email, client }, 'failed sign-in');
        throw unauthorized('Invalid email or password');
      }
      // The published default opens the API only to someone at this machine: not to the network
      // `HOST=0.0.0.0` exposes, nor to a DNS-rebinding page in the local browser (auth/client.ts).
      if (body.password === DEFAULT_ADMIN_PASSWORD && !fromThisMachine(c, ctx.config.TRUST_PROXY_HOPS)) {
        c.get('log').warn({ email, client }, 'refused the default password from another machine');
        throw new AppError(403, 'The default password signs in only from this machine (http://localhost): set ADMIN_PASSWORD or run `fleet admin passwd`');
      }
      await attemptSucceeded(db, client, email, rules);
      await createSession(db, c, admin.id, ctx.config.SESSION_TTL_HOURS);
      const url = sameOriginPath(body.callbackUrl, new URL(c.req.url).origin);
      return c.json({ url, user: { email: admin.email } }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/auth/session',
      tags: ['auth'],
      summary: 'The current session, or {} when signed out (as NextAuth answers)',
      responses: { 200: jsonContent(SessionSchema, 'Session') },
    }),
    async (c) => {
      const session = await currentSession(db, c);
      if (!session) return c.json({}, 200);
      return c.json({ user: { email: session.email, name: null }, expires: session.expiresAt.toISOString() }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/auth/signout',
      tags: ['auth'],
      summary: 'Revoke the current session and clear the cookie',
      responses: { 200: jsonContent(z.object({ url: z.string() }), 'Signed out') },
    }),
    async (c) => {
      await revokeSession(db, c);
      return c.json({ url: '/' }, 200);
    },
  );

  return app;
}

