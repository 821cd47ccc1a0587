/** The reconciler's steps, in pass order. Each feature adds its step here. */
import type { AppContext } from '../src/context.ts';
import type { ReconcileStep } from './reconciler.ts';
import { runQualityChecks } from '../src/workflows/quality.ts';

export function reconcileSteps(_ctx: AppContext): ReconcileStep[] {
  return [
    // Gold-accuracy flags for annotators whose gold results changed (src/workflows/quality.ts).
    { name: 'quality', run: (ctx) => runQualityChecks(ctx.database.db, ctx.logger) },
  ];
}
