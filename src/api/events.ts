import type { AppContext } from '../context.ts';
import { createRouter } from './router.ts';

// TODO(issue 2): routes for /api/events.
export function eventRoutes(_ctx: AppContext) {
  return createRouter();
}
