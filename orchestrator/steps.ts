/** The reconciler's steps, in pass order. Each feature adds its step here. */
import type { AppContext } from '../src/context.ts';
import type { ReconcileStep } from './reconciler.ts';
import { annotatorsStep } from './annotators-step.ts';
import { runQualityChecks } from '../src/workflows/quality.ts';
import { batchesStep } from './batches-step.ts';
import { scheduledPurge } from '../src/auth/purge.ts';
import { outboundStep } from './outbound-step.ts';
import { refreshOverlapExports } from '../src/workflows/overlap-exports.ts';
import { fitConsensus } from '../src/workflows/consensus-fit.ts';
import { rollupsStep } from '../src/db/graph-stats.ts';
import { webhookInbox } from '../src/workflows/inbox.ts';

export function reconcileSteps(_ctx: AppContext): ReconcileStep[] {
  const purge = scheduledPurge();
  return [
    // Webhook events acknowledged and not yet applied (a crash, a failed drain): applied first (src/workflows/inbox.ts).
    // An event the drains set aside (it failed alone) is an error of the pass that follows.
    { name: 'webhook-inbox', run: async (ctx) => (await webhookInbox(ctx).drain(), { actions: [], errors: await webhookInbox(ctx).takeSetAside() }) },
    // Annotators' Label Studio instances: start, keep up, stop, clean up (orchestrator/annotators-step.ts).
    annotatorsStep(),
    // Gold-accuracy flags for annotators whose gold results changed (src/workflows/quality.ts).
    { name: 'quality', run: (ctx) => runQualityChecks(ctx.database.db, ctx.logger) },
    // Batches: catalog sync, provisioning, comparison with Label Studio, reviews, export, chaining, auto-assignment.
    batchesStep(),
    // Overlap batches' JSONL exports, written again once their items' consensus is settled (src/workflows/overlap-exports.ts).
    { name: 'overlap-exports', run: (ctx) => refreshOverlapExports(ctx) },
    // Dawid–Skene fits for overlap workflows' choices, refitted at 10 % more finished items (src/workflows/consensus-fit.ts).
    { name: 'consensus-fit', run: (ctx) => fitConsensus(ctx) },
    // Expired or revoked sessions and forgotten sign-in throttle rows (src/auth/purge.ts).
    { name: 'purge', run: (ctx) => purge(ctx.database.db) },
    // The workflow graph's stats: fold the deltas facts appended into one row per workflow (src/db/graph-stats.ts).
    { name: 'rollups', run: (ctx) => rollupsStep(ctx.database.db) },
    // Outbound webhooks: deliver due ones, retry with backoff; purge expired idempotency keys and old logs.
    outboundStep(),
  ];
}
