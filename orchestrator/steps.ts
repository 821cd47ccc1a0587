/** The reconciler's steps, in pass order. Each feature adds its step here. */
import type { AppContext } from '../src/context.ts';
import type { ReconcileStep } from './reconciler.ts';

export function reconcileSteps(_ctx: AppContext): ReconcileStep[] {
  return [];
}
