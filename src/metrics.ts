/**
 * Prometheus instruments (prom-client) on a dedicated registry, not prom-client's global one, so
 * tests and several services in one process never collide. Code anywhere records with e.g.
 *
 *   metrics.webhookEvents.inc({ action: 'ANNOTATION_CREATED', result: 'recorded' });
 *   metrics.webhookLatency.observe(seconds);
 *   metrics.lsApiLatency.observe({ operation: 'create_project' }, seconds);
 *   metrics.reconcilePass.observe(seconds);
 *   metrics.errors.inc({ source: 'webhook' });
 *   metrics.containerEvents.inc({ kind: 'start' });
 *
 * GET /metrics (src/api/metrics.ts) adds gauges read from the database at scrape time
 * (annotators and batches by status). README "Metrics" lists every series.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { sql } from 'kysely';
import { ANNOTATOR_STATUSES } from './domain/annotator-status.ts';
import type { Executor } from './db/index.ts';

export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry, prefix: 'labelfleet_' });

/** Seconds, from 1 ms (a local call) to 30 s (a Label Studio call at its timeout). */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Seconds, for reconcile passes: from 10 ms to 5 minutes. */
const PASS_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** Webhook actions LabelFleet receives (Label Studio's names) and what became of each. */
export type WebhookAction = 'ANNOTATION_CREATED' | 'ANNOTATION_UPDATED' | 'ANNOTATION_DELETED' | 'ANNOTATIONS_DELETED' | 'other';
/** recorded: a new event row; duplicate: already recorded, nothing changed; unauthorized: bad secret; invalid: bad payload; error: failed. */
export type WebhookResult = 'recorded' | 'duplicate' | 'unauthorized' | 'invalid' | 'error';
export type ContainerEventKind = 'start' | 'restart' | 'failure';
/** Where an error happened. */
export type ErrorSource = 'api' | 'webhook' | 'reconcile' | 'labelstudio' | 'backend' | 'storage';

export const metrics = {
  webhookEvents: new Counter<'action' | 'result'>({
    name: 'labelfleet_webhook_events_total',
    help: 'Webhook events received, by action (ANNOTATION_CREATED, ...) and result (recorded, duplicate, unauthorized, invalid, error)',
    labelNames: ['action', 'result'],
    registers: [metricsRegistry],
  }),
  webhookLatency: new Histogram({
    name: 'labelfleet_webhook_ingest_seconds',
    help: 'Time to ingest one webhook (request received to response), seconds',
    buckets: LATENCY_BUCKETS,
    registers: [metricsRegistry],
  }),
  reconcilePass: new Histogram({
    name: 'labelfleet_reconcile_pass_seconds',
    help: 'Duration of one reconciler pass (all steps), seconds',
    buckets: PASS_BUCKETS,
    registers: [metricsRegistry],
  }),
  reconcilePassFailures: new Counter<'reason'>({
    name: 'labelfleet_reconcile_pass_failures_total',
    help: 'Reconcile passes that failed or were abandoned, by reason (lock_lost: the lock connection was lost mid-pass; database_unavailable; error)',
    labelNames: ['reason'],
    registers: [metricsRegistry],
  }),
  databaseUnavailable: new Counter({
    name: 'labelfleet_database_unavailable_responses_total',
    help: 'API requests answered 503 because the database could not be reached',
    registers: [metricsRegistry],
  }),
  errors: new Counter<'source'>({
    name: 'labelfleet_errors_total',
    help: 'Errors, by source (api, webhook, reconcile, labelstudio, backend, storage)',
    labelNames: ['source'],
    registers: [metricsRegistry],
  }),
  lsApiLatency: new Histogram<'operation'>({
    name: 'labelfleet_labelstudio_request_seconds',
    help: 'Label Studio API call latency by operation, seconds',
    labelNames: ['operation'],
    buckets: LATENCY_BUCKETS,
    registers: [metricsRegistry],
  }),
  containerEvents: new Counter<'kind'>({
    name: 'labelfleet_container_events_total',
    help: 'Label Studio container starts, restarts and failures',
    labelNames: ['kind'],
    registers: [metricsRegistry],
  }),
};

// Series that exist from the first scrape, so rate() and alerts work before the first event.
for (const kind of ['start', 'restart', 'failure'] satisfies ContainerEventKind[]) metrics.containerEvents.inc({ kind }, 0);
for (const reason of ['lock_lost', 'database_unavailable', 'error']) metrics.reconcilePassFailures.inc({ reason }, 0);
for (const source of ['api', 'webhook', 'reconcile', 'labelstudio', 'backend', 'storage'] satisfies ErrorSource[]) {
  metrics.errors.inc({ source }, 0);
}

export const ASSIGNMENT_STATUSES = ['pending', 'in_progress', 'completed', 'failed', 'cancelled'] as const;

/**
 * The exposition text: every instrument above plus gauges read now from the database with two
 * grouped queries. If the database cannot answer, labelfleet_database_up is 0 and the gauges are
 * left out; the rest is still served.
 */
export async function renderMetrics(db: Executor): Promise<{ contentType: string; body: string }> {
  const scrape = new Registry();
  const up = new Gauge({ name: 'labelfleet_database_up', help: 'Whether the database answered this scrape (1) or not (0)', registers: [scrape] });
  try {
    const [annotators, batches] = await Promise.all([
      sql<{ status: string; n: number }>`SELECT status, count(*)::int AS n FROM annotators GROUP BY status`.execute(db),
      sql<{ status: string; n: number }>`SELECT status, count(*)::int AS n FROM assignments GROUP BY status`.execute(db),
    ]);
    const byStatus = new Gauge<'status'>({
      name: 'labelfleet_annotators',
      help: 'Annotators by status',
      labelNames: ['status'],
      registers: [scrape],
    });
    const counts = new Map(annotators.rows.map((r) => [r.status, r.n]));
    for (const status of ANNOTATOR_STATUSES) byStatus.set({ status }, counts.get(status) ?? 0);
    const batchGauge = new Gauge<'status'>({
      name: 'labelfleet_batches',
      help: 'Batches (assignments) by status',
      labelNames: ['status'],
      registers: [scrape],
    });
    const batchCounts = new Map(batches.rows.map((r) => [r.status, r.n]));
    for (const status of ASSIGNMENT_STATUSES) batchGauge.set({ status }, batchCounts.get(status) ?? 0);
    up.set(1);
  } catch {
    up.set(0);
  }
  const merged = Registry.merge([metricsRegistry, scrape]);
  return { contentType: metricsRegistry.contentType, body: await merged.metrics() };
}
