import type { AppContext } from '../context.ts';
import { createRouter } from './router.ts';

// TODO(issue 2): routes for /api/assignments.
export function assignmentRoutes(_ctx: AppContext) {
  return createRouter();
}
