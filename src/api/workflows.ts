import type { AppContext } from '../context.ts';
import { createRouter } from './router.ts';

// TODO(issue 2): routes for /api/workflows.
export function workflowRoutes(_ctx: AppContext) {
  return createRouter();
}
