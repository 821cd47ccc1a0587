/**
 * The reconciler: level-triggered passes, one at a time across every process (a PostgreSQL
 * advisory lock), woken at once by API changes and on an interval as a resync. Each pass runs
 * the registered steps in order; a step reads desired and observed state fresh and moves each
 * object one idempotent step closer. A failing step is reported and the next still runs.
 */
import type { AppContext } from '../src/context.ts';
import { LOCK_BUSY, LOCKS, LockLostError } from '../src/db/index.ts';
import { isDatabaseUnavailable } from '../src/db/connect-errors.ts';
import { metrics } from '../src/metrics.ts';

/** After a failed pass, the next one waits at least this long even when woken (no hot loop while the database is away). */
const FAILED_PASS_PAUSE_MS = 1_000;

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
  /** Called when this process wakes the reconciler while a pass runs (a step may take the news in the running pass). */
  woken?(): void;
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
  /** No pass before this time (ms since epoch): set after a failed pass. */
  #pausedUntil = 0;

  constructor(
    private readonly ctx: AppContext,
    private readonly steps: ReconcileStep[],
    private readonly intervalMs: number,
  ) {}

  /**
   * One pass now. Returns 'busy' when another process (or call) holds the pass lock. Rejects when
   * the pass could not run or was abandoned — the lock's connection lost mid-pass (LockLostError:
   * the steps still to run are skipped), the database unreachable — after logging it and counting
   * it in labelfleet_reconcile_pass_failures_total; the next pass takes the lock again.
   */
  async runOnce(opts: { wait?: boolean } = {}): Promise<PassReport | 'busy'> {
    try {
      const result = await this.ctx.database.withAdvisoryLock(LOCKS.reconcile, ({ signal }) => this.#pass(signal), {
        wait: opts.wait ?? false,
      });
      return result === LOCK_BUSY ? 'busy' : result;
    } catch (err) {
      const reason = err instanceof LockLostError ? 'lock_lost' : isDatabaseUnavailable(err) ? 'database_unavailable' : 'error';
      metrics.reconcilePassFailures.inc({ reason });
      this.ctx.logger.error({ err, reason }, 'reconcile pass failed');
      throw err;
    }
  }

  async #pass(lockLost: AbortSignal): Promise<PassReport> {
    const started = performance.now();
    const report: PassReport = { startedAt: new Date().toISOString(), durationMs: 0, steps: {} };
    for (const step of this.steps) {
      // The lock is gone (its connection was lost): another process may be passing now.
      lockLost.throwIfAborted();
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
    if (this.#running) {
      this.#again = true;
      for (const step of this.steps) step.woken?.();
    } else this.#schedule(Math.max(0, this.#pausedUntil - Date.now()));
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#tick(), delayMs);
  }

  async #tick(): Promise<void> {
    this.#again = false;
    let failed = false;
    this.#running = this.runOnce().catch(() => (failed = true)); // logged and counted by runOnce
    await this.#running;
    this.#running = undefined;
    // After a failure: retry soon (the lock or the database may be back), but never in a hot loop.
    this.#pausedUntil = failed ? Date.now() + FAILED_PASS_PAUSE_MS : 0;
    this.#schedule(failed ? Math.max(FAILED_PASS_PAUSE_MS, Math.min(this.intervalMs, 5 * FAILED_PASS_PAUSE_MS)) : this.#again ? 0 : this.intervalMs);
  }

  /** Stops scheduling and waits for the pass in flight to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}
