import type { AppContext } from '../context.ts';
import { createRouter } from './router.ts';

// TODO(issue 2): routes for /api/annotators.
export function annotatorRoutes(_ctx: AppContext) {
  return createRouter();
}
