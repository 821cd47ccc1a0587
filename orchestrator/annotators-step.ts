/**
 * The reconciler step for annotators' instances (`annotators`): when annotators are due and on
 * every drift sweep it lists what the backend runs for this fleet, removes orphans, and moves each
 * annotator that needs attention one idempotent action at a time toward its status (decisions in
 * src/domain/instance-decision.ts):
 *
 *   created:  make the database and role ahead of the first start (at most 4 a pass)
 *   starting: database → container → healthy → token → route → active (per-phase time limits)
 *   active:   restart what died or vanished (backoff), recreate on a changed spec between batches
 *   stopping: stop the instance → stopped;  created/error/stopped: remove or stop leftovers
 *   deleted:  remove instance, route and (setting fleet.deleteDatabaseOnDelete) database + role
 *
 * Every write is guarded by the status and start generation the decision was made on, so an
 * admin's stop during a slow container create wins, and a fleet killed at any line converges on
 * the next pass: names are deterministic and every action is idempotent.
 */
import { sql, type Expression, type SqlBool } from 'kysely';
import type { AppContext } from '../src/context.ts';
import type { Executor } from '../src/db/index.ts';
import type { Annotator, AnnotatorStatus } from '../src/db/types.ts';
import {
  decide,
  orphanIds,
  type Decision,
  type DecisionInput,
  type FleetPolicy,
  type StartPhase,
} from '../src/domain/instance-decision.ts';
import { faultPoint } from '../src/fault-point.ts';
import { metrics } from '../src/metrics.ts';
import { SETTING_DEFAULTS } from '../src/settings.ts';
import { lockAnnotator, transitionAnnotator, writeContainerEvent } from '../src/workflows/annotators.ts';
import type { InstanceSpec, ObservedInstance } from './backends/types.ts';
import { DatabaseUnavailableError } from './databases.ts';
import { ForeignResourceError } from './ownership.ts';
import { httpGet, labelStudioHealthy } from './http-probe.ts';
import { buildInstanceSpec, databasePassword, PortRangeError, publicHost, publicUrl } from './instance-spec.ts';
import { backoffMs, claimDue, type Claimed, FailureStreaks, FullResync, instanceNextDue, requeue } from './due.ts';
import type { ReconcileStep, StepReport } from './reconciler.ts';

// ------------------------------------------------------------------------------------ settings

export interface FleetSettings {
  image: string;
  memoryMb: number;
  cpus: number;
  deleteDatabaseOnDelete: boolean;
  policy: FleetPolicy;
}

type FleetKey = Extract<keyof typeof SETTING_DEFAULTS, `fleet.${string}`>;

/** The fleet.* settings in one query; a value of the wrong type or out of range falls back to its default. */
export async function readFleetSettings(ctx: AppContext): Promise<FleetSettings> {
  const rows = await ctx.database.db.selectFrom('settings').select(['key', 'value']).where('key', 'like', 'fleet.%').execute();
  const stored = new Map(rows.map((r) => [r.key, r.value as unknown]));
  const num = (key: FleetKey, min: number, max: number): number => {
    const v = stored.get(key);
    const fallback = SETTING_DEFAULTS[key] as number;
    return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? v : fallback;
  };
  const seconds = (key: FleetKey) => num(key, 1, 86_400);
  const image = stored.get('fleet.image');
  const drop = stored.get('fleet.deleteDatabaseOnDelete');
  return {
    image: typeof image === 'string' && image.trim() ? image.trim() : ctx.config.FLEET_IMAGE,
    memoryMb: Math.round(num('fleet.memoryMb', 128, 65_536)),
    cpus: num('fleet.cpus', 0.1, 64),
    deleteDatabaseOnDelete: typeof drop === 'boolean' ? drop : SETTING_DEFAULTS['fleet.deleteDatabaseOnDelete'],
    policy: {
      startTimeoutSeconds: seconds('fleet.startTimeoutSeconds'),
      phaseTimeoutSeconds: {
        database: seconds('fleet.databaseTimeoutSeconds'),
        container: seconds('fleet.containerTimeoutSeconds'),
        healthy: seconds('fleet.healthTimeoutSeconds'),
        token: seconds('fleet.tokenTimeoutSeconds'),
        route: seconds('fleet.routeTimeoutSeconds'),
      },
      maxRestarts: Math.round(num('fleet.maxRestarts', 0, 1000)),
      restartBackoffSeconds: num('fleet.restartBackoffSeconds', 0, 3600),
      restartResetSeconds: seconds('fleet.restartResetSeconds'),
    },
  };
}

// ------------------------------------------------------------------------------------ helpers

/** Errors no retry can fix: the start fails at once instead of waiting for its deadline. */
const isPermanent = (err: unknown) =>
  err instanceof DatabaseUnavailableError || err instanceof PortRangeError || err instanceof ForeignResourceError;
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function specFor(ctx: AppContext, a: Annotator, settings: FleetSettings): InstanceSpec {
  return buildInstanceSpec(
    ctx.config,
    ctx.secrets,
    { id: a.id, email: a.email, subdomain: a.subdomain, startGeneration: a.startGeneration, lsPasswordEnc: a.lsPasswordEnc },
    { image: settings.image, memoryMb: settings.memoryMb, cpus: settings.cpus },
    ctx.instanceDatabases.target(a.id),
  );
}

/**
 * The spec of `a`'s next start (its start generation + 1, the one POST /start records): what an
 * instance made ahead of that start runs. Its per-start secrets are those of that generation, so
 * a made-ahead instance whose start generation has moved on no longer matches and is made anew.
 */
export function aheadSpecFor(ctx: AppContext, a: Annotator, settings: FleetSettings): InstanceSpec {
  return specFor(ctx, { ...a, startGeneration: a.startGeneration + 1 }, settings);
}

const MISSING = (annotatorId: number): ObservedInstance => ({ annotatorId, state: 'missing', health: 'unknown' });

/**
 * Whether the step makes `a`'s PostgreSQL role and database now, ahead of its first start: a
 * created annotator whose database was not made yet, when the fleet has a PostgreSQL for them
 * (LS_DATABASE_URL or DATABASE_URL; not with the embedded database alone).
 */
function preparesDatabase(ctx: AppContext, a: Pick<Annotator, 'status' | 'databasePreparedAt'>): boolean {
  return a.status === 'created' && a.databasePreparedAt === null && ctx.instanceDatabases.url !== undefined;
}

/**
 * The annotators the step looks after: those the fleet started (generation > 0: rows imported or
 * seeded as 'active' without a start are left alone until someone starts them) while starting,
 * active or stopping; every deleted one not cleaned up yet; created ones whose database is made
 * ahead of their start.
 */
const managed = (ctx: AppContext, r: Annotator) =>
  (r.startGeneration > 0 && ['starting', 'active', 'stopping'].includes(r.status)) ||
  (r.status === 'deleted' && r.cleanedUpAt === null) ||
  preparesDatabase(ctx, r);

/** Where the fleet checks a route: TRAEFIK_URL with the public Host header, else the public URL. */
async function routeAnswers(ctx: AppContext, subdomain: string): Promise<boolean> {
  const base = ctx.config.TRAEFIK_URL ?? publicUrl(ctx.config, subdomain);
  return labelStudioHealthy(base, ctx.config.TRAEFIK_URL ? publicHost(ctx.config, subdomain) : undefined);
}

/** How long a start's route phase watches the router's API within one pass (ms), and how often. */
const ROUTE_WATCH_MS = 500;
const ROUTE_WATCH_EVERY_MS = 25;

/**
 * A start's route phase (Label Studio already answered /health/ directly): the route is ready once
 * the router has loaded it — asked of the router's API (backend.routeLoaded: Traefik's API when
 * TRAEFIK_API_URL is set), one request to the router instead of one through it to a Label Studio
 * that may still be starved of CPU. The router loads a route moments after the instance turns
 * healthy (Traefik: within providersThrottleDuration, 200 ms in traefik/*.yml), so the API is
 * asked again every ROUTE_WATCH_EVERY_MS for up to ROUTE_WATCH_MS: the start ends when the route
 * appears, not at the next poll (meanwhile the pass claims other starts' wake-ups). When the
 * backend cannot tell, one request through the router.
 */
async function routeReady(ctx: AppContext, spec: InstanceSpec): Promise<boolean> {
  const until = Date.now() + ROUTE_WATCH_MS;
  for (;;) {
    const loaded = await ctx.backend.routeLoaded?.(spec);
    if (loaded === undefined) return routeAnswers(ctx, spec.subdomain);
    if (loaded || Date.now() + ROUTE_WATCH_EVERY_MS > until) return loaded;
    await new Promise((r) => setTimeout(r, ROUTE_WATCH_EVERY_MS));
  }
}

/** The annotator's own account id in their Label Studio (null when none yet: no password issued). */
async function findLsUserId(ctx: AppContext, a: Annotator, address: ObservedInstance['address']): Promise<number | null> {
  if (!address || !a.apiTokenEnc) return null;
  try {
    const token = ctx.secrets.decrypt(a.apiTokenEnc);
    const res = await httpGet(`http://${address.host}:${address.port}/api/users/`, { headers: { authorization: `Token ${token}` }, timeoutMs: 5000 });
    if (res.status !== 200) return null;
    const users = JSON.parse(res.body) as Array<{ id: number; email: string }>;
    const list = Array.isArray(users) ? users : [];
    return list.find((u) => u.email?.toLowerCase() === a.email.toLowerCase())?.id ?? null;
  } catch {
    return null;
  }
}

/** Annotators the per-annotator loop may act on at most this many times in one pass. */
const MAX_ACTIONS_PER_ANNOTATOR = 8;
const CONCURRENCY = 8;
/**
 * Databases made ahead of a start per pass at most (one CREATE DATABASE each, on a pool of 4
 * connections): a bulk create of many annotators (or an upgrade finding many never started) is
 * spread over passes, and a start or stop never waits behind them — they are claimed apart, at
 * most this many per pass, and taken after every other due annotator.
 */
const PREPARES_PER_PASS = 4;
const MAKES_AHEAD = sql<SqlBool>`status = 'created' AND database_prepared_at IS NULL`;

/**
 * Claims the due annotators (orchestrator/due.ts): every due one but those whose database is made
 * ahead, and of those at most PREPARES_PER_PASS (`withAhead` false: none, for claims during a pass).
 * Without a PostgreSQL for instance databases nothing is made ahead: one claim of every due one.
 */
async function claimInstances(ctx: AppContext, withAhead: boolean): Promise<Claimed[]> {
  const db = ctx.database.db;
  if (ctx.instanceDatabases.url === undefined) return claimDue(db, INSTANCE);
  // Two statements at once: their rows are disjoint, and a start's pass begins one round trip sooner.
  const [others, ahead] = await Promise.all([
    claimDue(db, INSTANCE, { where: sql<SqlBool>`NOT (${MAKES_AHEAD})` }),
    withAhead ? claimDue(db, INSTANCE, { where: MAKES_AHEAD, limit: PREPARES_PER_PASS }) : [],
  ]);
  return [...others, ...ahead];
}
/**
 * While a start is in progress the step asks for another pass this soon: its probes are cheap (a
 * booting Label Studio refuses at once; the route is asked of the router's API), and a start's
 * overhead beyond Label Studio's boot is mostly this wait between a condition coming true and the
 * pass that sees it (the token report wakes the reconciler at once).
 */
export const START_POLL_MS = 250;
/**
 * How long a start's health probe waits for Label Studio's answer (ms). Short: a Label Studio
 * finishing its boot on a busy machine accepts connections and answers seconds later, and a
 * probe waiting for it would hold the whole pass (every other start's token report with it). The
 * token report stands for the health check anyway; a slow answer is asked again at the next poll.
 */
const START_PROBE_TIMEOUT_MS = 250;

const pollTimers = new WeakMap<AppContext, NodeJS.Timeout>();
function pollSoon(ctx: AppContext) {
  if (pollTimers.has(ctx)) return;
  const t = setTimeout(() => {
    pollTimers.delete(ctx);
    ctx.wake('annotators: start in progress');
  }, START_POLL_MS);
  t.unref();
  pollTimers.set(ctx, t);
}

/**
 * While an annotator's action is under way (a database created, a container started), annotators
 * that become due meanwhile — a start posted during the pass — are claimed this often (ms) and
 * handled in this pass instead of waiting for it to end and the next to begin. Wake-ups of this
 * process (a POST, a token report) claim at once (the step's `woken`); this tick finds the rest
 * (another replica's, a trigger's).
 */
const CLAIM_DURING_PASS_MS = 50;

/**
 * How many times one pass reconciles a starting annotator at most: again when a wake-up changed
 * its row after the pass had taken it (the token report of a start the pass already looked at).
 */
const RECONCILES_PER_PASS = 3;

/** Whether `now` differs from `seen` (the same annotator's row) in anything but its due times. */
function changedSince(seen: Annotator, now: Annotator): boolean {
  for (const key of Object.keys(now) as Array<keyof Annotator>) {
    if (key === 'dueAt' || key === 'assignDueAt' || key === 'updatedAt') continue;
    const [a, b] = [seen[key], now[key]];
    if (a instanceof Date && b instanceof Date ? a.getTime() !== b.getTime() : JSON.stringify(a) !== JSON.stringify(b)) return true;
  }
  return false;
}

/**
 * Reconciles `rows` with up to CONCURRENCY at a time; while any is still being worked on,
 * annotators that became due since the pass began (orchestrator/due.ts) are claimed — at once
 * when this process wakes the reconciler (the step's `woken`), else every CLAIM_DURING_PASS_MS —
 * and taken too. One the pass already took is taken again when the wake-up changed its row
 * (status starting, up to RECONCILES_PER_PASS times; otherwise it is requeued due now), so a
 * token report during a long pass is not left to the next poll. Returns the rows claimed during
 * the pass (their leases added to `leases`), for the requeue.
 */
async function reconcileAll(pass: Pass, rows: Annotator[], leases: Map<number, Date>): Promise<Annotator[]> {
  const { ctx } = pass;
  const db = ctx.database.db;
  // Two lanes: databases made ahead of a start come after everything else, PREPARES_PER_PASS at most.
  const queue: Annotator[] = [];
  const later: Annotator[] = [];
  const queued = new Set<number>();
  let idle: Array<() => void> = [];
  const enqueue = (row: Annotator) => {
    queued.add(row.id);
    (preparesDatabase(ctx, row) ? later : queue).push(row);
    for (const resume of idle.splice(0)) resume();
  };
  rows.forEach(enqueue);
  let preparesLeft = PREPARES_PER_PASS;
  const next = () => {
    const row = queue.shift() ?? (later.length && preparesLeft > 0 ? (preparesLeft--, later.shift()) : undefined);
    if (row) queued.delete(row.id);
    return row;
  };
  const taken = new Set(rows.map((r) => r.id));
  const claimedLater: Annotator[] = [];
  /** Each annotator's row as its last reconcile in this pass left it; those being reconciled; how often each was. */
  const seen = new Map<number, Annotator | undefined>();
  const working = new Set<number>();
  const claimedWhileWorking = new Set<number>();
  const runs = new Map<number, number>();
  let busy = 0;
  let claiming: Promise<void> | undefined;
  let lastClaim = Date.now();
  let claimFailed = false;
  /** Annotators taken before and claimed again: reconciled again when their row changed meanwhile (not by their own reconcile). */
  const takeAgain = async (ids: number[]) => {
    try {
      const found = await db.selectFrom('annotators').selectAll().where('id', 'in', ids).orderBy('id').execute();
      for (const row of found) {
        const last = seen.get(row.id);
        // Unchanged but for its own reconcile's writes, or failed (retried with backoff): the requeue decides.
        if ((last && !changedSince(last, row)) || pass.failed.has(row.id)) continue;
        // Taken meanwhile (two claims' reads of one annotator overlapped): one reconcile at a time,
        // of the row as read last.
        if (queued.has(row.id)) {
          for (const lane of [queue, later]) lane.forEach((r, i) => r.id === row.id && (lane[i] = row));
          continue;
        }
        if (working.has(row.id)) {
          claimedWhileWorking.add(row.id);
          continue;
        }
        if (row.status === 'starting' && (runs.get(row.id) ?? 0) < RECONCILES_PER_PASS && managed(ctx, row)) enqueue(row);
        else pass.dueNow.add(row.id);
      }
    } catch (err) {
      for (const id of ids) pass.dueNow.add(id);
      ctx.logger.warn({ err }, 'reading annotators due again during the pass failed');
    }
  };
  const claimMore = async () => {
    lastClaim = Date.now();
    try {
      const claimed = await claimInstances(ctx, false);
      // Claimed again (due once more since it was read): its new lease is what the requeue replaces.
      for (const c of claimed) leases.set(c.id, c.lease);
      const fresh: number[] = [];
      const again: number[] = [];
      for (const { id } of claimed) {
        if (!taken.has(id)) fresh.push(id);
        else if (working.has(id)) claimedWhileWorking.add(id);
        else if (!queued.has(id)) again.push(id);
      }
      if (fresh.length) {
        const found = await db.selectFrom('annotators').selectAll().where('id', 'in', fresh).orderBy('id').execute();
        for (const row of found) {
          taken.add(row.id);
          claimedLater.push(row);
          if (managed(ctx, row) || pass.listed.has(row.id)) enqueue(row);
        }
      }
      if (again.length) await takeAgain(again);
    } catch (err) {
      // Left for the next pass (claimed rows come due again when their lease ends); this pass finishes what it has.
      claimFailed = true;
      pass.ctx.logger.warn({ err }, 'claiming annotators due during the pass failed');
    }
  };
  const claimNow = () => {
    if (busy > 0 && !claimFailed) claiming ??= claimMore().finally(() => (claiming = undefined));
    return claiming;
  };
  pass.schedule.claimNow = () => void claimNow();
  const worker = async (): Promise<void> => {
    for (;;) {
      const row = next();
      if (row) {
        busy++;
        try {
          working.add(row.id);
          runs.set(row.id, (runs.get(row.id) ?? 0) + 1);
          try {
            seen.set(row.id, await reconcileAnnotator(pass, row));
          } finally {
            working.delete(row.id);
          }
          // Not working on it any more: what takeAgain enqueues may be taken by another worker at
          // once, and that worker's mark is its own.
          if (claimedWhileWorking.delete(row.id)) await takeAgain([row.id]);
        } finally {
          busy--;
        }
        continue;
      }
      if (busy === 0 || claimFailed) return;
      await new Promise<void>((resume) => {
        const timer = setTimeout(resume, Math.max(0, lastClaim + CLAIM_DURING_PASS_MS - Date.now()));
        idle.push(() => (clearTimeout(timer), resume()));
      });
      if (!queue.length && busy > 0) await claimNow();
    }
  };
  try {
    for (;;) {
      // Every worker is waited for, even when one fails: nothing the pass began outlives it.
      const ended = await Promise.allSettled(Array.from({ length: CONCURRENCY }, worker));
      const failed = ended.find((e) => e.status === 'rejected');
      if (failed) throw failed.reason;
      // A claim a wake-up began as the last worker finished: waited for, and what it took reconciled
      // (its rows are leased; left alone they would wait for the lease to end).
      if (!claiming) break;
      await claiming;
      if (!queue.length) break;
    }
  } finally {
    pass.schedule.claimNow = undefined;
    idle = [];
  }
  // Nothing the pass began outlives it (a start whose password failed while its container started).
  await Promise.all(pass.starting.values());
  // Databases left for the next pass (due again after START_POLL_MS: instanceNextDue).
  if (later.length || pass.dueNow.size) pass.pending = true;
  return claimedLater;
}

// ------------------------------------------------------------------------------------ the step

interface Pass {
  ctx: AppContext;
  settings: FleetSettings;
  report: StepReport;
  listed: Map<number, ObservedInstance>;
  /** Annotators still on their way (starting, restart backoff): poll again soon. */
  pending: boolean;
  /** Annotators whose action failed this pass (retried with backoff). */
  failed: Set<number>;
  /** Instances started while their start's password is set (ensure-database), by annotator: awaited before another start of theirs, and by the pass's end. */
  starting: Map<number, Promise<void>>;
  /** Annotators whose row a wake-up changed after this pass was done with them: requeued due now. */
  dueNow: Set<number>;
  schedule: StepSchedule;
}

const INSTANCE = { table: 'annotators', column: 'due_at' } as const;
/** How often every managed annotator's instance and route are compared with what they should be. */
export const DRIFT_SWEEP_MS = 30_000;

/**
 * The step's own schedule, one per reconciler (a service started again — new configuration —
 * begins with a full pass, as a new process does): the full resync, the drift sweep and the
 * failure streaks behind the retry backoff.
 */
interface StepSchedule {
  resync: FullResync;
  driftSweep: FullResync;
  failures: FailureStreaks;
  /** While a pass reconciles annotators: claims those due now (a wake-up of this process), at once. */
  claimNow?: () => void;
}
/** While an issued password's account has not appeared in Label Studio, look again this often. */
const ACCOUNT_POLL_MS = 10_000;

/**
 * Requeues the annotators this pass looked at (orchestrator/due.ts): claimed ones replace their
 * lease, the others their due time as read, each with `instanceNextDue` of its row now.
 */
async function requeueInstances(pass: Pass, looked: Annotator[], leases: Map<number, Date>): Promise<void> {
  const seenAt = new Map<number, Date | null>(looked.map((r) => [r.id, r.dueAt]));
  for (const [id, lease] of leases) seenAt.set(id, lease);
  if (!seenAt.size) return;
  const db = pass.ctx.database.db;
  const now = Date.now();
  const current = await db.selectFrom('annotators').selectAll().where('id', 'in', [...seenAt.keys()]).execute();
  const entries = current.map((row) => {
    const failed = pass.failed.has(row.id);
    const retryMs = failed ? backoffMs(pass.schedule.failures.fail(row.id)) : 0;
    if (!failed) pass.schedule.failures.succeed(row.id);
    // A wake-up this pass took but did not act on: due now, for the next pass.
    const next = pass.dueNow.has(row.id) && !failed ? now : instanceNextDue(row, {
      now,
      failed,
      retryMs,
      pollMs: START_POLL_MS,
      accountPollMs: ACCOUNT_POLL_MS,
      restartResetSeconds: pass.settings.policy.restartResetSeconds,
      prepareDatabase: preparesDatabase(pass.ctx, row),
    });
    return { id: row.id, seen: seenAt.get(row.id) ?? null, next: next === null ? null : new Date(next) };
  });
  await requeue(db, INSTANCE, entries);
}

/** The annotators step, with its own schedule (one per reconciler). */
export function annotatorsStep(): ReconcileStep {
  const schedule: StepSchedule = { resync: new FullResync(), driftSweep: new FullResync(DRIFT_SWEEP_MS), failures: new FailureStreaks() };
  return { name: 'annotators', run: (ctx) => runAnnotatorsPass(ctx, schedule), woken: () => schedule.claimNow?.() };
}

async function runAnnotatorsPass(ctx: AppContext, schedule: StepSchedule): Promise<StepReport> {
  const report: StepReport = { actions: [], errors: [], counts: {} };
  const { db } = ctx.database;
  // Selection (orchestrator/due.ts): the annotators due, and those the list shows a problem
  // with; every managed annotator on the full resync and on the drift sweep (hand-made changes
  // to routes and containers have no wake-up; the sweep costs no more statements than a pass).
  const resyncDue = schedule.resync.due();
  const full = schedule.driftSweep.due() || resyncDue;
  const claimed = await claimInstances(ctx, true);
  // The backend's list (one Docker call; on ECS a call per page and per 10 services) shows what no
  // wake-up reports: instances that died, went unhealthy, or have no annotator (orphans). It is
  // taken on the drift sweep and the full resync, and when annotators are due (their observed
  // state); a pass with nothing due asks the backend nothing, and such changes are found by the
  // next sweep, within DRIFT_SWEEP_MS.
  if (!full && !claimed.length) return report;
  const [settings, listedAll] = await Promise.all([readFleetSettings(ctx), ctx.backend.list()]);
  const listed = new Map(listedAll.map((o) => [o.annotatorId, o]));
  const listedIds = [...listed.keys()];

  const claimedLease = new Map(claimed.map((c) => [c.id, c.lease]));
  const running = listedAll.filter((o) => o.state === 'running').map((o) => o.annotatorId);
  const attention = listedAll.filter((o) => o.state !== 'running' || o.health === 'unhealthy').map((o) => o.annotatorId);
  // The listed instances' annotators (for orphans) and the pass's annotators, read at once.
  const [known, selected] = await Promise.all([
    listedIds.length ? db.selectFrom('annotators').select('id').where('id', 'in', listedIds).execute() : [],
    full
      ? []
      : db
          .selectFrom('annotators')
          .selectAll()
          .where((eb) => {
            // Active annotators whose instance is not running (gone from the list).
            const cases = [eb.and([eb('status', '=', 'active'), eb('startGeneration', '>', 0), ...(running.length ? [eb('id', 'not in', running)] : [])])];
            if (claimed.length) cases.push(eb('id', 'in', claimed.map((c) => c.id)));
            if (attention.length) cases.push(eb('id', 'in', attention));
            // Listed instances of annotators that should have none (stopped, error, created).
            if (listedIds.length) cases.push(eb.and([eb('id', 'in', listedIds), eb('status', 'not in', ['active', 'starting'])]));
            return eb.or(cases);
          })
          .orderBy('id')
          .execute(),
  ]);

  // Orphans: this fleet's instances (containers, routes) whose annotator does not exist.
  for (const id of orphanIds(listedIds, new Set(known.map((k) => k.id)))) {
    try {
      await ctx.backend.remove(id);
      report.actions.push(`orphan ${listed.get(id)?.instanceId ?? `instance of annotator ${id}`}: removed (no such annotator)`);
    } catch (err) {
      report.errors.push(`orphan of annotator ${id}: ${message(err)}`);
    }
  }

  const rows = !full ? selected.filter((r) => managed(ctx, r) || listed.has(r.id)) : await db
    .selectFrom('annotators')
    .selectAll()
    .where((eb) => {
      // What `managed` takes, and whatever the backend lists.
      const cases: Expression<SqlBool>[] = [
        eb.and([eb('status', 'in', ['starting', 'active', 'stopping']), eb('startGeneration', '>', 0)]),
        eb.and([eb('status', '=', 'deleted'), eb('cleanedUpAt', 'is', null)]),
      ];
      if (ctx.instanceDatabases.url !== undefined) cases.push(MAKES_AHEAD);
      if (listedIds.length) cases.push(eb('id', 'in', listedIds));
      return eb.or(cases);
    })
    .orderBy('id')
    .execute();

  const pass: Pass = { ctx, settings, report, listed, pending: false, failed: new Set(), starting: new Map(), dueNow: new Set(), schedule };
  const claimedLater = await reconcileAll(pass, rows, claimedLease);
  await requeueInstances(pass, [...selected, ...(full ? rows : []), ...claimedLater], claimedLease);
  const counts = report.counts!;
  for (const r of rows) counts[r.status] = (counts[r.status] ?? 0) + 1;
  if (pass.pending) pollSoon(ctx);
  return report;
}

/** Moves one annotator along (up to MAX_ACTIONS_PER_ANNOTATOR actions); returns its row as last read (undefined: gone). */
async function reconcileAnnotator(pass: Pass, first: Annotator): Promise<Annotator | undefined> {
  const { ctx, report } = pass;
  let row: Annotator | undefined = first;
  let observed: ObservedInstance | undefined;
  for (let i = 0; i < MAX_ACTIONS_PER_ANNOTATOR && row; i++) {
    let decision: Decision | undefined;
    const current: Annotator = row;
    try {
      observed = await observeFor(pass, row, i === 0 ? undefined : observed);
      decision = await decideFor(pass, row, observed);
      if (decision.action === 'none') {
        if (row.status === 'starting' || (row.status === 'active' && decision.note)) pass.pending = true;
        if (row.status === 'active' && row.lsUserId === null && row.lsPasswordEnc && observed.state === 'running') {
          // The annotator's account appears once an issued password reached the instance.
          const lsUserId = await findLsUserId(ctx, row, observed.address);
          if (lsUserId !== null) await ctx.database.db.updateTable('annotators').set({ lsUserId }).where('id', '=', row.id).execute();
        }
        return row;
      }
      const outcome = await perform(pass, row, decision, observed);
      if (outcome.line) report.actions.push(`annotator ${row.id}: ${outcome.line}`);
      if (!outcome.again) {
        if (row.status === 'starting' || ['restart', 'recreate', 'repair-route'].includes(decision.action)) pass.pending = true;
        return row;
      }
      observed = outcome.observed;
      // Inside the try: a read that fails (the connection lost) is this annotator's failure, not the pass's.
      row = await ctx.database.db.selectFrom('annotators').selectAll().where('id', '=', row.id).executeTakeFirst();
    } catch (err) {
      await recordFailure(pass, current, decision, err);
      return current;
    }
  }
  if (row?.status === 'starting') pass.pending = true;
  return row;
}

/**
 * The instance as observed now: inspected for annotators in flight, else what the list said. A
 * start in its database or container phase decides without it (the container is created and
 * started next, and ensure() looks at it): no Docker call before the container's start.
 */
async function observeFor(pass: Pass, row: Annotator, fresh?: ObservedInstance): Promise<ObservedInstance> {
  if (fresh) return fresh;
  if (row.status === 'starting' && (row.startPhase === 'database' || row.startPhase === 'container')) return pass.listed.get(row.id) ?? MISSING(row.id);
  const listed = pass.listed.get(row.id);
  const needsDetail = row.status === 'starting' || (row.status === 'active' && listed?.state !== 'running');
  if (needsDetail) return pass.ctx.backend.observe(row.id);
  return listed ?? MISSING(row.id);
}

async function decideFor(pass: Pass, row: Annotator, observed: ObservedInstance): Promise<Decision> {
  const { ctx, settings } = pass;
  const now = Date.now();
  const phase = row.startPhase as StartPhase | null;
  const inFlight = row.status === 'starting' && phase !== null && phase !== 'database' && phase !== 'container';
  const spec = inFlight || row.status === 'active' ? specFor(ctx, row, settings) : undefined;
  const desiredSpecHash = spec?.specHash;

  const address = observed.address;
  let healthOk: boolean | undefined;
  let routeOk: boolean | undefined;
  if (row.status === 'starting' && phase === 'healthy' && observed.state === 'running' && address) {
    // The instance's token report, made in this phase, is its own word that /health/ answered (its
    // reporter waits for it): no probe then. Else a short probe — a booting Label Studio refuses at
    // once, and a slow answer is asked again at the next poll rather than holding up the pass.
    const reportedThisPhase = row.tokenReportedAt !== null && row.phaseStartedAt !== null && row.tokenReportedAt >= row.phaseStartedAt;
    healthOk = reportedThisPhase || (await labelStudioHealthy(`http://${address.host}:${address.port}`, undefined, START_PROBE_TIMEOUT_MS));
  }
  if (row.status === 'starting' && phase === 'route' && observed.state === 'running' && spec) {
    routeOk = await routeReady(ctx, spec);
  }
  // Active: the configured route is compared with the desired one (drift), and after a restart,
  // recreate or route repair the route is probed until it answers again.
  let route: DecisionInput['instance']['route'];
  if (row.status === 'active' && observed.state === 'running') {
    if (ctx.backend.routeState && spec) route = await ctx.backend.routeState(spec);
    if (row.routedAt === null) routeOk = await routeAnswers(ctx, row.subdomain);
  }
  // Created with an instance: the one made ahead of the first start, while it matches that start's spec.
  const aheadSpecHash = row.status === 'created' && ctx.backend.create && observed.state !== 'missing' ? aheadSpecFor(ctx, row, settings).specHash : undefined;
  let assignmentInProgress = false;
  if (row.status === 'active' && desiredSpecHash !== undefined && observed.specHash !== desiredSpecHash) {
    const open = await ctx.database.db
      .selectFrom('assignments')
      .select('id')
      .where('annotatorId', '=', row.id)
      .where('status', '=', 'in_progress')
      .limit(1)
      .executeTakeFirst();
    assignmentInProgress = open !== undefined;
  }
  const input: DecisionInput = {
    now,
    status: row.status,
    phase,
    phaseStartedAt: row.phaseStartedAt ? row.phaseStartedAt.getTime() : null,
    startRequestedAt: row.startRequestedAt ? row.startRequestedAt.getTime() : null,
    instance: {
      state: observed.state,
      health: observed.health,
      specHash: observed.specHash,
      restartCount: observed.restartCount,
      listed: pass.listed.has(row.id) || observed.state !== 'missing',
      message: observed.message,
      route,
    },
    routed: row.routedAt !== null,
    statusReason: row.statusReason,
    desiredSpecHash,
    healthOk,
    routeOk,
    tokenReported: row.tokenReportedAt !== null,
    restarts: {
      count: row.restartCount,
      lastAt: row.lastRestartAt ? row.lastRestartAt.getTime() : null,
      nextAt: row.nextRestartAt ? row.nextRestartAt.getTime() : null,
    },
    assignmentInProgress,
    loginOutdated: row.lsPasswordEnc !== null && row.containerPasswordVersion !== row.lsPasswordVersion,
    cleanedUp: row.cleanedUpAt !== null,
    prepareDatabase: preparesDatabase(ctx, row),
    aheadSpecHash,
    policy: settings.policy,
  };
  return decide(input);
}

interface Outcome {
  line?: string;
  /** Decide again for this annotator in the same pass (the action moved a start forward). */
  again: boolean;
  observed?: ObservedInstance;
}

/**
 * Runs `fn` in a transaction only if the annotator is still in the status and start generation the
 * decision was made on (and, with `samePhase`, its start phase); returns false (doing nothing) when
 * an admin or another reconcile changed it meanwhile.
 */
async function guarded(ctx: AppContext, row: Annotator, fn: (trx: Executor) => Promise<void>, samePhase = false): Promise<boolean> {
  return ctx.database.db.transaction().execute(async (trx) => {
    const current = await lockAnnotator(trx, row.id);
    if (current.status !== row.status || current.startGeneration !== row.startGeneration) return false;
    if (samePhase && current.startPhase !== row.startPhase) return false;
    await fn(trx);
    return true;
  });
}

const touch = () => ({ updatedAt: new Date() });

/** Moves a start from the phase `row` was read in to `to`: never from another (a stale decision moves no phase back). */
async function setPhase(ctx: AppContext, row: Annotator, to: StartPhase, message: string, extra: Record<string, unknown> = {}) {
  return guarded(ctx, row, async (trx) => {
    const changed = row.startPhase !== to;
    await trx
      .updateTable('annotators')
      .set({ startPhase: to, ...(changed ? { phaseStartedAt: new Date() } : {}), ...extra, ...touch() })
      .where('id', '=', row.id)
      .execute();
    if (changed || message) {
      await writeContainerEvent(trx, {
        annotatorId: row.id,
        eventType: 'start_progress',
        fromStatus: row.status,
        toStatus: row.status,
        message,
        details: { phase: to, previousPhase: row.startPhase, generation: row.startGeneration },
      });
    }
  }, true);
}

async function transition(
  ctx: AppContext,
  row: Annotator,
  to: AnnotatorStatus,
  reason: string,
  set: Record<string, unknown> = {},
  details?: unknown,
): Promise<boolean> {
  return guarded(ctx, row, async (trx) => {
    await transitionAnnotator(trx, row.id, to, reason, details);
    if (Object.keys(set).length) await trx.updateTable('annotators').set({ ...set, ...touch() }).where('id', '=', row.id).execute();
  });
}

async function event(ctx: AppContext, row: Annotator, eventType: string, msg: string, details?: unknown) {
  await writeContainerEvent(ctx.database.db, { annotatorId: row.id, eventType, fromStatus: row.status, toStatus: row.status, message: msg, details });
}

/** Creates or starts the instance for `row` and records where it runs. */
async function ensureInstance(pass: Pass, row: Annotator): Promise<{ spec: InstanceSpec; observed: ObservedInstance }> {
  const spec = specFor(pass.ctx, row, pass.settings);
  const observed = await pass.ctx.backend.ensure(spec);
  return { spec, observed };
}

const instanceColumns = (row: Annotator, spec: InstanceSpec, observed: ObservedInstance) => ({
  containerId: observed.instanceId ?? null,
  containerIp: observed.ip ?? null,
  containerPort: spec.port,
  containerPasswordVersion: row.lsPasswordEnc ? row.lsPasswordVersion : null,
});

/** A start's container, started (made ahead, or created now); its route written. Waits for a start of it already under way. */
async function startInstance(pass: Pass, row: Annotator): Promise<{ spec: InstanceSpec; observed: ObservedInstance }> {
  await pass.starting.get(row.id);
  return ensureInstance(pass, row);
}

/** Records a start's container as running (phase healthy, where it runs); `reason` 'start' or why it was started again. */
async function instanceStarted(pass: Pass, row: Annotator, reason: string, { spec, observed }: { spec: InstanceSpec; observed: ObservedInstance }): Promise<Outcome> {
  faultPoint('start:container-created');
  metrics.containerEvents.inc({ kind: reason === 'start' ? 'start' : 'restart' }); // else: replaced during its start
  const what = reason === 'start' ? `container ${observed.instanceId} running` : `container ${observed.instanceId} started again (${reason})`;
  const ok = await setPhase(pass.ctx, row, 'healthy', what, { ...instanceColumns(row, spec, observed), statusReason: 'starting: waiting for Label Studio' });
  return { line: ok ? what : undefined, again: ok, observed };
}

async function perform(pass: Pass, row: Annotator, d: Decision, observed: ObservedInstance): Promise<Outcome> {
  const { ctx, settings } = pass;
  const db = ctx.database.db;
  switch (d.action) {
    case 'none':
      return { again: false };

    case 'ensure-database': {
      // The instance starts while the start's password is set — the one made ahead of the first
      // start (prepare-database), else created now — so Docker's start waits for neither that
      // password nor its record. Label Studio logs in seconds later, after its imports; should
      // the password not be in by then (the fleet killed before it, PostgreSQL stalled), Label
      // Studio exits and Docker's restart policy starts it again, by when the next pass (phase
      // still database) has set it and found the container running. The settings are read again:
      // the pass read them before this start's row, and a change made just before the start (its
      // row read after it) would otherwise give the container the old spec, replaced by the next
      // pass — a second boot.
      pass.settings = await readFleetSettings(ctx);
      const starting = startInstance(pass, row);
      const settled = starting.then(() => undefined, () => undefined);
      pass.starting.set(row.id, settled);
      let result: Awaited<ReturnType<AppContext['instanceDatabases']['ensure']>>;
      try {
        result = await ctx.instanceDatabases.ensure(row.id, databasePassword(ctx.secrets, row.id, row.startGeneration));
      } catch (err) {
        // Handled once the container is there: a permanent error removes it (recordFailure).
        await settled;
        throw err;
      }
      const name = ctx.instanceDatabases.name(row.id);
      faultPoint('start:database-ready');
      const what = result.createdDatabase ? `database ${name} created` : `database ${name} ready (password rotated)`;
      const recorded = await setPhase(ctx, row, 'container', what, { databaseName: name, statusReason: 'starting: database ready' });
      // An admin's stop or new start meanwhile: the container started is theirs to stop or replace.
      if (!recorded) return (await settled, { again: false });
      const outcome = await instanceStarted(pass, { ...row, startPhase: 'container' }, 'start', await starting);
      return { ...outcome, line: outcome.line && `${what}; ${outcome.line}` };
    }

    case 'prepare-database': {
      // No password: the role cannot log in until a start sets that start's. Recorded only while
      // the annotator is still created; a start or delete meanwhile does its own (ensure, drop).
      // Then the instance is made (not started) for the first start's spec: that start only starts
      // it. Best effort — the start makes whatever is not there or no longer matches.
      const result = await ctx.instanceDatabases.ensure(row.id);
      const made = await ctx.backend.create?.(aheadSpecFor(ctx, row, settings)).catch(
        (err: unknown) => (ctx.logger.debug({ err, annotatorId: row.id }, 'making the instance ahead of the first start failed; the start makes it'), false),
      );
      const name = ctx.instanceDatabases.name(row.id);
      const cleared = row.statusReason?.startsWith('error: ') ? { statusReason: null } : {}; // an earlier attempt's error
      await db.updateTable('annotators').set({ databasePreparedAt: new Date(), ...cleared }).where('id', '=', row.id).where('status', '=', 'created').execute();
      return { line: `database ${name} ${result.createdDatabase ? 'made' : 'found'}${made ? ', instance made' : ''} ahead of the first start`, again: false };
    }

    case 'create-instance':
      return instanceStarted(pass, row, d.reason, await startInstance(pass, row));

    case 'make-ahead': {
      // A crash between the two leaves none made ahead: the start creates it.
      await ctx.backend.remove(row.id);
      const made = await ctx.backend.create!(aheadSpecFor(ctx, row, settings));
      return { line: `instance made ahead of the first start ${made ? 'again' : 'removed'} (${d.reason})`, again: false };
    }

    case 'advance': {
      const reasons: Record<StartPhase, string> = {
        database: 'starting: database',
        container: 'starting: container',
        healthy: 'starting: waiting for Label Studio',
        token: 'starting: waiting for the API token',
        route: 'starting: waiting for the route',
      };
      faultPoint(`start:before-${d.to}`);
      const ok = await setPhase(ctx, row, d.to, d.reason, { statusReason: reasons[d.to] });
      return { line: ok ? d.reason : undefined, again: ok, observed };
    }

    case 'activate': {
      // The annotator's own account exists only once a password was issued: no call to Label Studio
      // on the way to active otherwise.
      const lsUserId = row.lsPasswordEnc === null ? null : await findLsUserId(ctx, row, observed.address);
      const url = publicUrl(ctx.config, row.subdomain);
      faultPoint('start:before-active');
      const ok = await transition(
        ctx,
        row,
        'active',
        `Label Studio is up at ${url}`,
        { startPhase: null, phaseStartedAt: null, routedAt: new Date(), ...(lsUserId !== null ? { lsUserId } : {}) },
        { url, generation: row.startGeneration, startedInMs: row.startRequestedAt ? Date.now() - row.startRequestedAt.getTime() : null },
      );
      if (ok) ctx.wake(`annotator ${row.id}: active`);
      return { line: ok ? `active at ${url}` : undefined, again: false };
    }

    case 'fail': {
      let removal = '';
      try {
        await ctx.backend.remove(row.id);
      } catch (err) {
        removal = `; removing the instance failed (retried next pass): ${message(err)}`;
      }
      const last = row.statusReason?.startsWith('error: ') ? `; last error: ${row.statusReason.slice(7)}` : '';
      const reason = `${d.reason}${last}${removal}`;
      const ok = await transition(ctx, row, 'error', reason, { startPhase: null, phaseStartedAt: null, routedAt: null, nextRestartAt: null });
      if (ok) metrics.containerEvents.inc({ kind: 'failure' });
      return { line: ok ? `error: ${reason}` : undefined, again: false };
    }

    case 'stop-instance': {
      await ctx.backend.stop(row.id);
      if (d.markStopped) {
        const ok = await transition(ctx, row, 'stopped', 'container stopped', { startPhase: null, phaseStartedAt: null, routedAt: null });
        return { line: ok ? 'stopped' : undefined, again: false };
      }
      await event(ctx, row, 'container_stopped', d.reason);
      return { line: `container stopped (${d.reason})`, again: false };
    }

    case 'restart': {
      // Counted (and the backoff set) before it is attempted: a restart that fails itself still
      // counts toward maxRestarts, so nothing is retried forever.
      const restartingDuringStart = row.status === 'starting';
      const counted = await guarded(ctx, row, async (trx) => {
        await trx
          .updateTable('annotators')
          .set({
            restartCount: d.count,
            lastRestartAt: new Date(),
            nextRestartAt: new Date(d.nextRestartAt),
            routedAt: null,
            statusReason: `restarting: ${d.reason}`.slice(0, 2000),
            ...(restartingDuringStart && row.startPhase !== 'healthy' ? { startPhase: 'healthy', phaseStartedAt: new Date() } : {}),
            ...touch(),
          })
          .where('id', '=', row.id)
          .execute();
        await writeContainerEvent(trx, { annotatorId: row.id, eventType: 'container_restarted', fromStatus: row.status, toStatus: row.status, message: d.reason });
      });
      if (!counted) return { again: false };
      faultPoint('restart:counted');
      metrics.containerEvents.inc({ kind: 'restart' });
      // A running-but-unhealthy (or crash-looping) instance is replaced; any other is brought back
      // by ensure() (started, unpaused, or removed and created when dead or stuck being removed).
      if (observed.state === 'running' || observed.state === 'starting') await ctx.backend.remove(row.id);
      const { spec, observed: now } = await ensureInstance(pass, row);
      faultPoint('restart:container-back');
      await db.updateTable('annotators').set({ ...instanceColumns(row, spec, now), ...touch() }).where('id', '=', row.id).where('startGeneration', '=', row.startGeneration).execute();
      return { line: `container restarted: ${d.reason}`, again: false };
    }

    case 'recreate': {
      // Not "up" until the new instance's route answers: url hidden, statusReason says why.
      const marked = await guarded(ctx, row, async (trx) => {
        await trx
          .updateTable('annotators')
          .set({ routedAt: null, statusReason: `recreating: ${d.reason}; waiting for Label Studio`, ...touch() })
          .where('id', '=', row.id)
          .execute();
      });
      if (!marked) return { again: false };
      faultPoint('recreate:marked');
      const { spec, observed: now } = await ensureInstance(pass, row);
      const ok = await guarded(ctx, row, async (trx) => {
        await trx.updateTable('annotators').set({ ...instanceColumns(row, spec, now), ...touch() }).where('id', '=', row.id).execute();
        await writeContainerEvent(trx, {
          annotatorId: row.id,
          eventType: 'container_recreated',
          fromStatus: 'active',
          toStatus: 'active',
          message: d.reason,
          details: { specHash: spec.specHash, previousSpecHash: observed.specHash ?? null },
        });
      });
      return { line: ok ? `container recreated: ${d.reason}` : undefined, again: false };
    }

    case 'repair-route': {
      const spec = specFor(ctx, row, settings);
      const ok = await guarded(ctx, row, async (trx) => {
        await trx
          .updateTable('annotators')
          .set({ routedAt: null, statusReason: `repairing: ${d.reason}; written again`, ...touch() })
          .where('id', '=', row.id)
          .execute();
        await writeContainerEvent(trx, { annotatorId: row.id, eventType: 'route_repaired', fromStatus: 'active', toStatus: 'active', message: d.reason });
      });
      if (!ok) return { again: false };
      faultPoint('route:before-rewrite');
      await ctx.backend.repairRoute!(spec);
      return { line: `route repaired (${d.reason})`, again: false };
    }

    case 'report-up': {
      const url = publicUrl(ctx.config, row.subdomain);
      const ok = await guarded(ctx, row, async (trx) => {
        await trx
          .updateTable('annotators')
          .set({ routedAt: row.routedAt ?? new Date(), statusReason: `Label Studio is up at ${url}`, ...touch() })
          .where('id', '=', row.id)
          .execute();
        if (row.routedAt === null) {
          await writeContainerEvent(trx, { annotatorId: row.id, eventType: 'route_answering', fromStatus: 'active', toStatus: 'active', message: `Label Studio is up again at ${url}` });
        }
      });
      return { line: ok ? `up at ${url}` : undefined, again: false };
    }

    case 'reset-restarts': {
      await db.updateTable('annotators').set({ restartCount: 0, nextRestartAt: null }).where('id', '=', row.id).where('status', '=', 'active').execute();
      return { line: 'restart count reset (stable again)', again: false };
    }

    case 'remove-instance': {
      await ctx.backend.remove(row.id);
      await event(ctx, row, 'container_removed', d.reason);
      return { line: `instance removed (${d.reason})`, again: false };
    }

    case 'cleanup': {
      const purge = settings.deleteDatabaseOnDelete;
      await ctx.backend.remove(row.id, { purgeData: purge });
      faultPoint('delete:instance-removed');
      let dbNote = 'database kept (fleet.deleteDatabaseOnDelete is false)';
      if (purge) {
        try {
          const dropped = await ctx.instanceDatabases.drop(row.id);
          dbNote = dropped.droppedDatabase || dropped.droppedRole ? `database and role ${ctx.instanceDatabases.name(row.id)} dropped` : 'no database to drop';
        } catch (err) {
          if (!(err instanceof DatabaseUnavailableError)) throw err;
          dbNote = 'no PostgreSQL for instance databases configured';
        }
      }
      const first = row.cleanedUpAt === null;
      await db.updateTable('annotators').set({ cleanedUpAt: new Date(), containerIp: null, routedAt: null }).where('id', '=', row.id).execute();
      await event(ctx, row, 'cleaned_up', `container and route removed; ${dbNote}`, { purgeData: purge, again: !first });
      return { line: `cleaned up: container and route removed; ${dbNote}`, again: false };
    }
  }
}

/** An action threw: a permanent problem fails the start now; otherwise it is recorded and retried. */
async function recordFailure(pass: Pass, row: Annotator, d: Decision | undefined, err: unknown): Promise<void> {
  const { ctx, report } = pass;
  const msg = message(err);
  pass.failed.add(row.id);
  report.errors.push(`annotator ${row.id}${d ? ` (${d.action})` : ''}: ${msg}`);
  ctx.logger.warn({ err, annotatorId: row.id, action: d?.action }, 'annotator reconcile action failed');
  try {
    if ((row.status === 'starting' || row.status === 'active') && isPermanent(err)) {
      await ctx.backend.remove(row.id).catch(() => {});
      if (await transition(ctx, row, 'error', msg, { startPhase: null, phaseStartedAt: null, routedAt: null })) metrics.containerEvents.inc({ kind: 'failure' });
      report.actions.push(`annotator ${row.id}: error: ${msg}`);
      return;
    }
    // Record each distinct error once (not at every retry) so the events tell what went wrong.
    const reason = `error: ${msg}`.slice(0, 2000);
    if (row.statusReason !== reason) {
      await ctx.database.db.updateTable('annotators').set({ statusReason: reason }).where('id', '=', row.id).where('status', '=', row.status).execute();
      await event(ctx, row, 'reconcile_error', msg, { action: d?.action ?? null, phase: row.startPhase });
    }
    if (row.status === 'starting' || row.status === 'active') pass.pending = true;
  } catch (inner) {
    ctx.logger.error({ err: inner, annotatorId: row.id }, 'recording a reconcile failure failed');
  }
}
