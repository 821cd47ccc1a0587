import type { AppContext } from '../context.ts';
import { createRouter } from './router.ts';

// TODO(issue 2): routes for /api/rejections.
export function rejectionRoutes(_ctx: AppContext) {
  return createRouter();
}
