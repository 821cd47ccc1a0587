/**
 * The fleet reconciler's decisions as a pure function: desired state (the annotator row) ×
 * observed state (the instance, probes) → the one next action. No I/O here; the step in
 * orchestrator/annotators-step.ts gathers the inputs, performs the action and asks again.
 *
 * A start walks database → container → healthy → token → route → active. Each phase has its own
 * time limit and the whole start has one too; past either, the start fails (status error, instance
 * removed). While active, an instance that died, vanished or turned unhealthy is restarted with
 * exponential backoff until `maxRestarts`, then the annotator goes to error. A changed spec (image,
 * limits, environment) recreates the instance between batches — at once when the instance is down
 * anyway or when the annotator's login changed (they may need it to finish the batch).
 */
import type { AnnotatorStatusValue } from './annotator-status.ts';

export const START_PHASES = ['database', 'container', 'healthy', 'token', 'route'] as const;
export type StartPhase = (typeof START_PHASES)[number];

export type ObservedState = 'running' | 'starting' | 'stopped' | 'failed' | 'missing';
export type ObservedHealth = 'healthy' | 'unhealthy' | 'unknown';

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
  };
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
  policy: FleetPolicy;
}

export type Decision =
  | { action: 'none'; note?: string }
  | { action: 'ensure-database' }
  | { action: 'create-instance'; reason: string }
  | { action: 'advance'; to: StartPhase; reason: string }
  | { action: 'activate' }
  | { action: 'fail'; reason: string }
  | { action: 'stop-instance'; reason: string; markStopped: boolean }
  | { action: 'restart'; reason: string; count: number; nextRestartAt: number }
  | { action: 'recreate'; reason: string }
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
  if (instance.state === 'missing' || instance.state === 'stopped' || instance.state === 'failed') {
    return { action: 'create-instance', reason: describe(instance) };
  }
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
  const crashLoop = instance.state === 'starting' && (instance.restartCount ?? 0) >= policy.maxRestarts;
  if (down || crashLoop) {
    const why = crashLoop
      ? `container keeps crashing (${instance.restartCount} restarts by the platform)`
      : instance.health === 'unhealthy' && isUp(instance.state)
        ? 'container is unhealthy'
        : describe(instance);
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
  if (input.desiredSpecHash !== undefined && instance.specHash !== input.desiredSpecHash) {
    if (input.loginOutdated) return { action: 'recreate', reason: "the annotator's password changed" };
    if (input.assignmentInProgress) {
      return { action: 'none', note: 'spec changed; recreating after the batch in progress' };
    }
    return { action: 'recreate', reason: 'spec changed (image, limits or environment)' };
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
    case 'error':
      return instance.listed || instance.state !== 'missing'
        ? { action: 'remove-instance', reason: `leftover instance (annotator is ${input.status})` }
        : { action: 'none' };
    case 'deleted':
      return !input.cleanedUp || instance.listed || instance.state !== 'missing' ? { action: 'cleanup' } : { action: 'none' };
  }
}

/** Listed instances whose annotator does not exist (any more): removed by the next pass. */
export function orphanIds(listed: Iterable<number>, known: ReadonlySet<number>): number[] {
  return [...new Set(listed)].filter((id) => !known.has(id)).sort((a, b) => a - b);
}
