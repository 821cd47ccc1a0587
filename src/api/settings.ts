import type { AppContext } from '../context.ts';
import { createRouter } from './router.ts';

// TODO(issue 2): routes for /api/settings.
export function settingRoutes(_ctx: AppContext) {
  return createRouter();
}
