import type { AppContext } from '../context.ts';
import { createRouter } from './router.ts';

// TODO(issue 2): routes for /api/labeling-configs.
export function labelingConfigRoutes(_ctx: AppContext) {
  return createRouter();
}
