/**
 * The reconciler step for what LabelFleet tells the outside world (src/outbound/): delivers due
 * outbound webhooks, and purges what outlived its window — idempotency keys after 24 h, webhook
 * events with their deliveries and attempts after `webhooks.logRetentionDays`. When a retry falls
 * due before the next resync, it asks for a pass then, so backoff is kept to the second.
 */
import { purgeIdempotencyKeys } from '../src/api/idempotency.ts';
import { deliverDue, nextDeliveryDueInMs, purgeOldEvents, readWebhookSettings } from '../src/outbound/deliveries.ts';
import type { ReconcileStep, StepReport } from './reconciler.ts';

export function outboundStep(): ReconcileStep {
  let timer: NodeJS.Timeout | undefined;
  return {
    name: 'outbound',
    async run(ctx): Promise<StepReport> {
      const { db } = ctx.database;
      const report = await deliverDue(ctx);
      const keys = await purgeIdempotencyKeys(db);
      const events = await purgeOldEvents(db, (await readWebhookSettings(db)).logRetentionDays);
      if (keys) report.actions.push(`purged ${keys} expired idempotency keys`);
      if (events) report.actions.push(`purged ${events} old webhook events`);
      const dueInMs = await nextDeliveryDueInMs(db);
      clearTimeout(timer);
      if (dueInMs !== null && dueInMs < ctx.config.RECONCILE_INTERVAL_MS) {
        timer = setTimeout(() => ctx.wake('webhook delivery due'), Math.max(dueInMs, 100));
        timer.unref();
      }
      return report;
    },
  };
}
