import { OpenAPIHono } from '@hono/zod-openapi';
import type { Result, Router as HonoRouter } from 'hono/router';
import { TrieRouter } from 'hono/router/trie-router';
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

/** How many request paths RememberingRouter keeps the match of (then it starts again: ids make paths unbounded). */
export const REMEMBERED_PATHS = 1_000;
/** Longer paths are matched each time (no route of ours is near it): what is kept stays under ~0.3 MB. */
const REMEMBERED_PATH_LENGTH = 256;

/**
 * A router that remembers the match of each method and path it has seen, so a request to a path
 * asked before skips the route table. Hono's own choice (SmartRouter) cannot take its fast
 * RegExpRouter here — a literal segment beside a parameter (`/workflows/graph` and
 * `/workflows/:id`) is a table it refuses — and falls back to walking a TrieRouter, whose match
 * (the 15 handlers of GET /api/annotators) costs 2–7 µs a request. A match depends only on the
 * method, the path and the table, so a remembered match is the one the trie gives; a route added
 * forgets them all. At most REMEMBERED_PATHS paths, each short, are kept: a client asking for ever
 * new paths costs a walk each, not memory.
 */
export class RememberingRouter<T> implements HonoRouter<T> {
  readonly name = 'RememberingRouter';
  readonly #trie = new TrieRouter<T>();
  readonly #seen = new Map<string, Result<T>>();

  add(method: string, path: string, handler: T): void {
    this.#trie.add(method, path, handler);
    this.#seen.clear();
  }

  match(method: string, path: string): Result<T> {
    if (path.length > REMEMBERED_PATH_LENGTH) return this.#trie.match(method, path);
    const key = `${method} ${path}`;
    let result = this.#seen.get(key);
    if (result === undefined) {
      result = this.#trie.match(method, path);
      if (this.#seen.size >= REMEMBERED_PATHS) this.#seen.clear();
      this.#seen.set(key, result);
    }
    return result;
  }
}

/** A router whose validation failures become 400s in the documented `{error, details}` shape. */
export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    router: new RememberingRouter(),
    defaultHook: (result) => {
      if (!result.success) {
        throw new AppError(400, 'Validation failed', result.error.issues);
      }
    },
  });
}

export type Router = ReturnType<typeof createRouter>;
export type RouteFactory = (ctx: AppContext) => Router;
