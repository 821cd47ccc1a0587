import { OpenAPIHono } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { AppError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Credential } from '../auth/cross-site.ts';
import type { RequestAuth } from '../auth/api-keys.ts';
import type { SessionCheck } from '../auth/sessions.ts';

export interface AppEnv {
  Variables: {
    requestId: string;
    log: Logger;
    adminUserId: number;
    /** How the request authenticates (set by the gate in app.ts; read by auth/cross-site.ts). */
    credential: Credential;
    /** Who the request acts for (session or API key, with the key's scopes); unset on public routes. */
    auth: RequestAuth;
    /** A session cookie the route's own statement checks (app.ts SESSION_IN_STATEMENT); unset otherwise. */
    sessionCheck?: SessionCheck;
  };
}

/** A router whose validation failures become 400s in the documented `{error, details}` shape. */
export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        throw new AppError(400, 'Validation failed', result.error.issues);
      }
    },
  });
}

export type Router = ReturnType<typeof createRouter>;
export type RouteFactory = (ctx: AppContext) => Router;
