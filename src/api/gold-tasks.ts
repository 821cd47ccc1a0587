import type { AppContext } from '../context.ts';
import { createRouter } from './router.ts';

// TODO(issue 2): routes for /api/gold-tasks.
export function goldTaskRoutes(_ctx: AppContext) {
  return createRouter();
}
