/**
 * The reconciler: level-triggered passes, one at a time across every process (a PostgreSQL
 * advisory lock), woken at once by API changes and on an interval as a resync. Each pass runs
 * the registered steps in order; a step reads desired and observed state fresh and moves each
 * object one idempotent step closer. A failing step is reported and the next still runs.
 */
import type { AppContext } from '../src/context.ts';
import { LOCK_BUSY, LOCKS } from '../src/db/index.ts';
import { metrics } from '../src/metrics.ts';

export interface StepReport {
  /** Human-readable lines: what this step did ("annotator 3: container created"). */
  actions: string[];
  errors: string[];
  /** Counters a step wants surfaced (e.g. reconciled/completed assignments). */
  counts?: Record<string, number>;
}

export interface ReconcileStep {
  name: string;
  run(ctx: AppContext): Promise<StepReport>;
}

export interface PassReport {
  startedAt: string;
  durationMs: number;
  steps: Record<string, StepReport>;
}

export class Reconciler {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #again = false;
  #stopped = false;

  constructor(
    private readonly ctx: AppContext,
    private readonly steps: ReconcileStep[],
    private readonly intervalMs: number,
  ) {}

  /** One pass now. Returns 'busy' when another process (or call) holds the pass lock. */
  async runOnce(opts: { wait?: boolean } = {}): Promise<PassReport | 'busy'> {
    const result = await this.ctx.database.withAdvisoryLock(LOCKS.reconcile, () => this.#pass(), {
      wait: opts.wait ?? false,
    });
    return result === LOCK_BUSY ? 'busy' : result;
  }

  async #pass(): Promise<PassReport> {
    const started = performance.now();
    const report: PassReport = { startedAt: new Date().toISOString(), durationMs: 0, steps: {} };
    for (const step of this.steps) {
      try {
        report.steps[step.name] = await step.run(this.ctx);
      } catch (err) {
        this.ctx.logger.error({ err, step: step.name }, 'reconcile step failed');
        report.steps[step.name] = { actions: [], errors: [(err as Error).message] };
      }
    }
    report.durationMs = Math.round(performance.now() - started);
    metrics.reconcilePass.observe((performance.now() - started) / 1000);
    const stepErrors = Object.values(report.steps).reduce((n, s) => n + s.errors.length, 0);
    if (stepErrors) metrics.errors.inc({ source: 'reconcile' }, stepErrors);
    const acted = Object.values(report.steps).some((s) => s.actions.length || s.errors.length);
    if (acted) this.ctx.logger.info({ pass: report }, 'reconcile pass');
    return report;
  }

  /** Starts the interval loop (fleet serve). */
  start(): void {
    this.#stopped = false;
    this.#schedule(0);
  }

  /** Requests a pass as soon as the current one (if any) ends. Coalesces bursts of wake-ups. */
  wake(reason: string): void {
    if (this.#stopped || !this.#timer) return;
    this.ctx.logger.debug({ reason }, 'reconciler woken');
    if (this.#running) this.#again = true;
    else this.#schedule(0);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#tick(), delayMs);
  }

  async #tick(): Promise<void> {
    this.#again = false;
    this.#running = this.runOnce().catch((err) => this.ctx.logger.error({ err }, 'reconcile pass failed'));
    await this.#running;
    this.#running = undefined;
    this.#schedule(this.#again ? 0 : this.intervalMs);
  }

  /** Stops scheduling and waits for the pass in flight to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}
