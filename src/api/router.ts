import { OpenAPIHono } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { AppError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { RequestAuth } from '../auth/api-keys.ts';

export interface AppEnv {
  Variables: {
    requestId: string;
    log: Logger;
    adminUserId: number;
    /** How the request was authenticated (session cookie or API key); unset on public routes. */
    auth: RequestAuth;
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
