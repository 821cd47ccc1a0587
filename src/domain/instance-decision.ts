/**
 * The fleet reconciler's decisions as a pure function: desired state (the annotator row) ×
 * observed state (the instance, probes) → the one next action. No I/O here; the step in
 * orchestrator/annotators-step.ts gathers the inputs, performs the action and asks again.
 *
 * A created annotator's database is made ahead of its first start (prepare-database), so the
 * start's database phase only sets that start's password; where the backend can, its instance is
 * made then too (not started), for the spec of that first start, and is no leftover while it
 * still matches it. A start walks database → container →
 * healthy → token → route → active. Each phase has its own time limit and the whole start has one
 * too; past either, the start fails (status error, instance removed). While active, an instance
 * that died, vanished or turned unhealthy is restarted with exponential backoff until
 * `maxRestarts`, then the annotator goes to error. A changed spec (image, limits, environment)
 * recreates the instance between batches — at once when the instance is down anyway or when the
 * annotator's login changed (they may need it to finish the batch).
 *
 * Drift (issue 10): every observed divergence is repaired by the next decision. A container in any
 * non-running state (exited, created, paused, dead, being removed, missing) is restarted — during a
 * start too — and every restart is counted against `maxRestarts` before it is attempted, so one
 * that keeps failing ends in error instead of being retried forever. A route that is missing or
 * was edited is written again. After a restart, recreate or route repair the annotator stays
 * `active` but is not "up" (no url, statusReason says what is happening) until the route answers
 * again; a statusReason left over from an error or a restart is replaced once all is well.
 */
import type { AnnotatorStatusValue } from './annotator-status.ts';

export const START_PHASES = ['database', 'container', 'healthy', 'token', 'route'] as const;
export type StartPhase = (typeof START_PHASES)[number];

export type ObservedState = 'running' | 'starting' | 'stopped' | 'failed' | 'missing';
export type ObservedHealth = 'healthy' | 'unhealthy' | 'unknown';
/** The instance's route as configured (not probed): as desired, absent, or different from the desired one. */
export type ObservedRoute = 'ok' | 'missing' | 'changed';

export interface FleetPolicy {
  /** Whole start, seconds. */
  startTimeoutSeconds: number;
  phaseTimeoutSeconds: Record<StartPhase, number>;
  maxRestarts: number;
  restartBackoffSeconds: number;
  restartResetSeconds: number;
}

export interface DecisionInput {
  /** Epoch milliseconds. */
  now: number;
  status: AnnotatorStatusValue;
  phase: StartPhase | null;
  phaseStartedAt: number | null;
  startRequestedAt: number | null;
  instance: {
    state: ObservedState;
    health: ObservedHealth;
    specHash?: string;
    /** Restarts the platform did by itself (Docker's RestartCount). */
    restartCount?: number;
    /** Anything of it exists (container or route), even when state is 'missing'. */
    listed: boolean;
    message?: string;
    /** The configured route; undefined when the backend cannot tell (checked only while running). */
    route?: ObservedRoute;
  };
  /** Active: the route answered since the instance was last (re)created; undefined counts as true. */
  routed?: boolean;
  /** The annotator's statusReason now (a stale one is replaced once all is well). */
  statusReason?: string | null;
  /** The hash of the spec the annotator should run now; undefined when not computed. */
  desiredSpecHash?: string;
  /** Probe results for the current phase; undefined when not probed. */
  healthOk?: boolean;
  routeOk?: boolean;
  tokenReported: boolean;
  restarts: { count: number; lastAt: number | null; nextAt: number | null };
  assignmentInProgress: boolean;
  /** The annotator's Label Studio password changed since the instance was created. */
  loginOutdated: boolean;
  /** Deleted annotators: container, route and database already removed. */
  cleanedUp: boolean;
  /**
   * Created (never started): its PostgreSQL role and database are to be made now, ahead of its
   * first start (not made yet, and the fleet has a PostgreSQL for them). Undefined counts as false.
   */
  prepareDatabase?: boolean;
  /**
   * Created (never started): the spec hash of the instance made ahead for its first start (the
   * spec of the next start generation), when the backend makes one and an instance is there. A
   * stopped instance is the one made ahead, kept while it has that hash; undefined: none is made
   * ahead (every instance of a created annotator is a leftover).
   */
  aheadSpecHash?: string;
  policy: FleetPolicy;
}

export type Decision =
  | { action: 'none'; note?: string }
  | { action: 'ensure-database' }
  /** Make a created annotator's role (no password) and database, so its start only sets the password. */
  | { action: 'prepare-database' }
  | { action: 'create-instance'; reason: string }
  /** Created: replace the instance made ahead of the first start by one of that start's spec now. */
  | { action: 'make-ahead'; reason: string }
  | { action: 'advance'; to: StartPhase; reason: string }
  | { action: 'activate' }
  | { action: 'fail'; reason: string }
  | { action: 'stop-instance'; reason: string; markStopped: boolean }
  | { action: 'restart'; reason: string; count: number; nextRestartAt: number }
  | { action: 'recreate'; reason: string }
  | { action: 'repair-route'; reason: string }
  /** Active and answering: mark the route as answering and say so in statusReason. */
  | { action: 'report-up' }
  | { action: 'reset-restarts' }
  | { action: 'remove-instance'; reason: string }
  | { action: 'cleanup' };

export const MAX_RESTART_DELAY_SECONDS = 600;

/** Delay that must pass after restart number n (1-based) before restart n+1. */
export function restartDelaySeconds(n: number, baseSeconds: number): number {
  if (n < 1) return 0;
  return Math.min(baseSeconds * 2 ** (n - 1), MAX_RESTART_DELAY_SECONDS);
}

const isUp = (s: ObservedState) => s === 'running' || s === 'starting';
const describe = (i: DecisionInput['instance']) =>
  i.state === 'missing' ? 'container is missing' : `container ${i.state}${i.message ? ` (${i.message})` : ''}`;

/**
 * statusReason prefixes the fleet writes while something is wrong or in progress (annotators-step
 * writes them); on an active annotator whose instance runs and whose route answers they are stale.
 */
export const TRANSIENT_REASON = /^(error|restarting|recreating|repairing):/;

/**
 * The instance must be brought back (`why` says how it was found): restart now, wait for the
 * backoff, or give up past maxRestarts. Counted before it is attempted, so a restart that itself
 * fails still counts.
 */
function restartOrGiveUp(input: DecisionInput, why: string, crashLoop = false): Decision {
  const { now, policy, restarts } = input;
  if (crashLoop || restarts.count >= policy.maxRestarts) {
    return { action: 'fail', reason: `${why}; gave up after ${restarts.count} restart(s)` };
  }
  if (restarts.nextAt !== null && now < restarts.nextAt) {
    return { action: 'none', note: `${why}; next restart in ${Math.ceil((restarts.nextAt - now) / 1000)}s` };
  }
  const count = restarts.count + 1;
  return {
    action: 'restart',
    reason: `${why}; restart ${count} of ${policy.maxRestarts}`,
    count,
    nextRestartAt: now + restartDelaySeconds(count, policy.restartBackoffSeconds) * 1000,
  };
}

/** The platform restarting the container by itself this often is a crash loop. */
const crashLooping = (input: DecisionInput) =>
  input.instance.state === 'starting' && (input.instance.restartCount ?? 0) >= input.policy.maxRestarts;
const crashLoopWhy = (input: DecisionInput) => `container keeps crashing (${input.instance.restartCount} restarts by the platform)`;

function decideStarting(input: DecisionInput): Decision {
  const { now, phase, instance, policy } = input;
  const current: StartPhase = phase ?? 'database';
  if (input.startRequestedAt !== null && now - input.startRequestedAt > policy.startTimeoutSeconds * 1000) {
    return { action: 'fail', reason: `start did not finish within ${policy.startTimeoutSeconds}s (stuck in phase ${current})` };
  }
  const phaseLimit = policy.phaseTimeoutSeconds[current];
  if (input.phaseStartedAt !== null && now - input.phaseStartedAt > phaseLimit * 1000) {
    return { action: 'fail', reason: `phase ${current} took longer than ${phaseLimit}s${instance.state !== 'running' ? `; ${describe(instance)}` : ''}` };
  }
  if (current === 'database') return { action: 'ensure-database' };
  if (current === 'container') return { action: 'create-instance', reason: 'start' };

  // healthy, token, route: the instance must exist, run and be the wanted one.
  if (crashLooping(input)) return restartOrGiveUp(input, crashLoopWhy(input), true);
  if (!isUp(instance.state)) return restartOrGiveUp(input, describe(instance));
  if (input.desiredSpecHash !== undefined && instance.specHash !== input.desiredSpecHash) {
    return { action: 'create-instance', reason: 'spec changed during the start' };
  }
  switch (current) {
    case 'healthy':
      if (input.healthOk) return { action: 'advance', to: 'token', reason: 'Label Studio answers /health/' };
      return { action: 'none', note: 'waiting for Label Studio to answer /health/' };
    case 'token':
      if (input.tokenReported) return { action: 'advance', to: 'route', reason: 'API token reported' };
      return { action: 'none', note: 'waiting for the instance to report its API token' };
    case 'route':
      if (input.routeOk) return { action: 'activate' };
      return { action: 'none', note: 'waiting for the route to answer' };
  }
}

function decideActive(input: DecisionInput): Decision {
  const { now, instance, policy, restarts } = input;
  const down = !isUp(instance.state) || instance.health === 'unhealthy';
  const crashLoop = crashLooping(input);
  if (down || crashLoop) {
    const why = crashLoop
      ? crashLoopWhy(input)
      : instance.health === 'unhealthy' && isUp(instance.state)
        ? 'container is unhealthy'
        : describe(instance);
    return restartOrGiveUp(input, why, crashLoop);
  }
  if (instance.state === 'running' && (instance.route === 'missing' || instance.route === 'changed')) {
    return { action: 'repair-route', reason: instance.route === 'missing' ? 'route is missing' : 'route was changed' };
  }
  if (input.desiredSpecHash !== undefined && instance.specHash !== input.desiredSpecHash) {
    if (input.loginOutdated) return { action: 'recreate', reason: "the annotator's password changed" };
    if (input.assignmentInProgress) {
      return { action: 'none', note: 'spec changed; recreating after the batch in progress' };
    }
    return { action: 'recreate', reason: 'spec changed (image, limits or environment)' };
  }
  if (instance.state === 'running') {
    if (input.routed === false) {
      return input.routeOk ? { action: 'report-up' } : { action: 'none', note: 'waiting for the route to answer again' };
    }
    if (input.statusReason && TRANSIENT_REASON.test(input.statusReason)) return { action: 'report-up' };
  }
  if (
    restarts.count > 0 &&
    instance.state === 'running' &&
    restarts.lastAt !== null &&
    now - restarts.lastAt > policy.restartResetSeconds * 1000
  ) {
    return { action: 'reset-restarts' };
  }
  return { action: 'none' };
}

export function decide(input: DecisionInput): Decision {
  const { instance } = input;
  switch (input.status) {
    case 'starting':
      return decideStarting(input);
    case 'active':
      return decideActive(input);
    case 'stopping':
      return { action: 'stop-instance', reason: 'stop requested', markStopped: true };
    case 'stopped':
      return isUp(instance.state)
        ? { action: 'stop-instance', reason: 'container found running while stopped', markStopped: false }
        : { action: 'none' };
    case 'created':
    case 'error': {
      // Created with a stopped instance: made ahead of the first start — kept while it matches
      // that start's spec, else made again (a password issued, a setting changed).
      const madeAhead = input.status === 'created' && input.aheadSpecHash !== undefined && instance.state === 'stopped';
      if (madeAhead && instance.specHash !== input.aheadSpecHash) return { action: 'make-ahead', reason: "the first start's spec changed" };
      if (!madeAhead && (instance.listed || instance.state !== 'missing')) return { action: 'remove-instance', reason: `leftover instance (annotator is ${input.status})` };
      return input.status === 'created' && input.prepareDatabase ? { action: 'prepare-database' } : { action: 'none' };
    }
    case 'deleted':
      return !input.cleanedUp || instance.listed || instance.state !== 'missing' ? { action: 'cleanup' } : { action: 'none' };
  }
}

/** Listed instances whose annotator does not exist (any more): removed by the next pass. */
export function orphanIds(listed: Iterable<number>, known: ReadonlySet<number>): number[] {
  return [...new Set(listed)].filter((id) => !known.has(id)).sort((a, b) => a - b);
}
