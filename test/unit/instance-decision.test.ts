import { describe, expect, it } from 'vitest';
import {
  decide,
  MAX_RESTART_DELAY_SECONDS,
  orphanIds,
  restartDelaySeconds,
  type Decision,
  type DecisionInput,
  type FleetPolicy,
} from '../../src/domain/instance-decision.ts';

const NOW = Date.parse('2026-04-01T12:00:00Z');
const s = (seconds: number) => seconds * 1000;

const policy: FleetPolicy = {
  startTimeoutSeconds: 900,
  phaseTimeoutSeconds: { database: 60, container: 300, healthy: 600, token: 300, route: 120 },
  maxRestarts: 3,
  restartBackoffSeconds: 10,
  restartResetSeconds: 600,
};

type Overrides = Omit<Partial<DecisionInput>, 'instance' | 'restarts'> & {
  instance?: Partial<DecisionInput['instance']>;
  restarts?: Partial<DecisionInput['restarts']>;
};

function input(o: Overrides = {}): DecisionInput {
  const { instance, restarts, ...rest } = o;
  return {
    now: NOW,
    status: 'starting',
    phase: 'database',
    phaseStartedAt: NOW - s(1),
    startRequestedAt: NOW - s(5),
    tokenReported: false,
    assignmentInProgress: false,
    loginOutdated: false,
    cleanedUp: false,
    desiredSpecHash: 'h1',
    policy,
    ...rest,
    instance: { state: 'missing', health: 'unknown', listed: false, ...instance },
    restarts: { count: 0, lastAt: null, nextAt: null, ...restarts },
  };
}

const running = { state: 'running' as const, health: 'unknown' as const, specHash: 'h1', listed: true };

describe('decide: a start walks database → container → healthy → token → route → active', () => {
  const table: Array<[string, Overrides, Decision]> = [
    ['database phase ensures the database', { phase: 'database' }, { action: 'ensure-database' }],
    ['no phase recorded is the database phase', { phase: null }, { action: 'ensure-database' }],
    ['container phase creates the instance', { phase: 'container' }, { action: 'create-instance', reason: 'start' }],
    [
      'container phase with the instance already there still ensures it (idempotent)',
      { phase: 'container', instance: running },
      { action: 'create-instance', reason: 'start' },
    ],
    [
      'healthy phase waits while /health/ does not answer',
      { phase: 'healthy', instance: running, healthOk: false },
      { action: 'none', note: 'waiting for Label Studio to answer /health/' },
    ],
    [
      'healthy phase waits while the platform restarts the container',
      { phase: 'healthy', instance: { ...running, state: 'starting' }, healthOk: false },
      { action: 'none', note: 'waiting for Label Studio to answer /health/' },
    ],
    [
      'healthy phase advances once /health/ answers',
      { phase: 'healthy', instance: running, healthOk: true },
      { action: 'advance', to: 'token', reason: 'Label Studio answers /health/' },
    ],
    [
      'token phase waits for the report',
      { phase: 'token', instance: running },
      { action: 'none', note: 'waiting for the instance to report its API token' },
    ],
    [
      'token phase advances once reported',
      { phase: 'token', instance: running, tokenReported: true },
      { action: 'advance', to: 'route', reason: 'API token reported' },
    ],
    [
      'route phase waits while the route does not answer',
      { phase: 'route', instance: running, tokenReported: true, routeOk: false },
      { action: 'none', note: 'waiting for the route to answer' },
    ],
    ['route phase activates once the route answers', { phase: 'route', instance: running, tokenReported: true, routeOk: true }, { action: 'activate' }],
    [
      'a container that vanished mid-start is restarted, counted',
      { phase: 'healthy', instance: { state: 'missing', listed: false } },
      { action: 'restart', reason: 'container is missing; restart 1 of 3', count: 1, nextRestartAt: NOW + s(10) },
    ],
    [
      'a container that exited mid-start is restarted, counted',
      { phase: 'token', instance: { ...running, state: 'failed', message: 'exited with code 65' } },
      { action: 'restart', reason: 'container failed (exited with code 65); restart 1 of 3', count: 1, nextRestartAt: NOW + s(10) },
    ],
    [
      'a container with another spec mid-start is recreated',
      { phase: 'route', instance: { ...running, specHash: 'old' }, routeOk: true },
      { action: 'create-instance', reason: 'spec changed during the start' },
    ],
    [
      'an unknown desired hash does not force a recreate',
      { phase: 'healthy', instance: { ...running, specHash: 'old' }, desiredSpecHash: undefined, healthOk: true },
      { action: 'advance', to: 'token', reason: 'Label Studio answers /health/' },
    ],
  ];
  it.each(table)('%s', (_name, o, expected) => {
    expect(decide(input(o))).toEqual(expected);
  });
});

describe('decide: a start never stays stuck', () => {
  it('fails past the whole-start deadline, naming the phase', () => {
    const d = decide(input({ phase: 'healthy', instance: running, startRequestedAt: NOW - s(901), phaseStartedAt: NOW - s(10) }));
    expect(d).toEqual({ action: 'fail', reason: 'start did not finish within 900s (stuck in phase healthy)' });
  });

  it('does not fail exactly at the deadline', () => {
    const d = decide(input({ phase: 'healthy', instance: running, startRequestedAt: NOW - s(900), phaseStartedAt: NOW - s(10) }));
    expect(d.action).toBe('none');
  });

  it.each([
    ['database', 61],
    ['container', 301],
    ['healthy', 601],
    ['token', 301],
    ['route', 121],
  ] as const)('fails when phase %s exceeds its own limit', (phase, elapsed) => {
    const d = decide(input({ phase, instance: running, startRequestedAt: NOW - s(elapsed), phaseStartedAt: NOW - s(elapsed), policy: { ...policy, startTimeoutSeconds: 10_000 } }));
    expect(d.action).toBe('fail');
    expect((d as { reason: string }).reason).toMatch(new RegExp(`^phase ${phase} took longer than ${policy.phaseTimeoutSeconds[phase]}s`));
  });

  it('says why the container was not up when a phase times out', () => {
    const d = decide(
      input({ phase: 'healthy', instance: { state: 'starting', health: 'unknown', specHash: 'h1', listed: true, message: 'Restarting (65)' }, phaseStartedAt: NOW - s(601) }),
    );
    expect(d).toEqual({ action: 'fail', reason: 'phase healthy took longer than 600s; container starting (Restarting (65))' });
  });

  it('checks deadlines before anything else, even with probes green', () => {
    const d = decide(input({ phase: 'route', instance: running, tokenReported: true, routeOk: true, startRequestedAt: NOW - s(1000) }));
    expect(d.action).toBe('fail');
  });
});

describe('decide: an active annotator stays up', () => {
  const table: Array<[string, Overrides, Decision]> = [
    ['running and current: nothing to do', { status: 'active', instance: running }, { action: 'none' }],
    ['healthy by the platform: nothing to do', { status: 'active', instance: { ...running, health: 'healthy' } }, { action: 'none' }],
    [
      'vanished: first restart at once',
      { status: 'active', instance: { state: 'missing', listed: false } },
      { action: 'restart', reason: 'container is missing; restart 1 of 3', count: 1, nextRestartAt: NOW + s(10) },
    ],
    [
      'killed: restarted',
      { status: 'active', instance: { ...running, state: 'stopped', message: 'exited with code 137' } },
      { action: 'restart', reason: 'container stopped (exited with code 137); restart 1 of 3', count: 1, nextRestartAt: NOW + s(10) },
    ],
    [
      'unhealthy while running: restarted',
      { status: 'active', instance: { ...running, health: 'unhealthy' } },
      { action: 'restart', reason: 'container is unhealthy; restart 1 of 3', count: 1, nextRestartAt: NOW + s(10) },
    ],
    [
      'second restart doubles the backoff',
      { status: 'active', instance: { state: 'missing', listed: false }, restarts: { count: 1, lastAt: NOW - s(20), nextAt: NOW - s(10) } },
      { action: 'restart', reason: 'container is missing; restart 2 of 3', count: 2, nextRestartAt: NOW + s(20) },
    ],
    [
      'inside the backoff: waits',
      { status: 'active', instance: { state: 'missing', listed: false }, restarts: { count: 1, lastAt: NOW - s(2), nextAt: NOW + s(8) } },
      { action: 'none', note: 'container is missing; next restart in 8s' },
    ],
    [
      'restarts exhausted: error',
      { status: 'active', instance: { ...running, state: 'failed', message: 'exited with code 1' }, restarts: { count: 3, lastAt: NOW - s(60), nextAt: NOW - s(20) } },
      { action: 'fail', reason: 'container failed (exited with code 1); gave up after 3 restart(s)' },
    ],
    [
      'crash loop inside the platform: error',
      { status: 'active', instance: { ...running, state: 'starting', restartCount: 3 } },
      { action: 'fail', reason: 'container keeps crashing (3 restarts by the platform); gave up after 0 restart(s)' },
    ],
    [
      'the platform restarting it a little: waits',
      { status: 'active', instance: { ...running, state: 'starting', restartCount: 1 } },
      { action: 'none' },
    ],
    [
      'spec changed, no batch in progress: recreate',
      { status: 'active', instance: { ...running, specHash: 'old' } },
      { action: 'recreate', reason: 'spec changed (image, limits or environment)' },
    ],
    [
      'spec changed during a batch: deferred',
      { status: 'active', instance: { ...running, specHash: 'old' }, assignmentInProgress: true },
      { action: 'none', note: 'spec changed; recreating after the batch in progress' },
    ],
    [
      'spec changed during a batch but the container is down: restarted now (with the new spec)',
      { status: 'active', instance: { state: 'missing', listed: false }, assignmentInProgress: true },
      { action: 'restart', reason: 'container is missing; restart 1 of 3', count: 1, nextRestartAt: NOW + s(10) },
    ],
    [
      'password changed during a batch: recreated at once',
      { status: 'active', instance: { ...running, specHash: 'old' }, assignmentInProgress: true, loginOutdated: true },
      { action: 'recreate', reason: "the annotator's password changed" },
    ],
    [
      'quiet long enough after restarts: count reset',
      { status: 'active', instance: running, restarts: { count: 2, lastAt: NOW - s(601), nextAt: NOW - s(581) } },
      { action: 'reset-restarts' },
    ],
    [
      'not yet quiet long enough: kept',
      { status: 'active', instance: running, restarts: { count: 2, lastAt: NOW - s(599), nextAt: NOW - s(579) } },
      { action: 'none' },
    ],
  ];
  it.each(table)('%s', (_name, o, expected) => {
    expect(decide(input({ phase: null, ...o }))).toEqual(expected);
  });
});

describe('decide: stopping, stopped, created, error, deleted', () => {
  const table: Array<[string, Overrides, Decision]> = [
    ['stopping with a running container: stop it', { status: 'stopping', instance: running }, { action: 'stop-instance', reason: 'stop requested', markStopped: true }],
    ['stopping with nothing running: still idempotently stopped', { status: 'stopping' }, { action: 'stop-instance', reason: 'stop requested', markStopped: true }],
    [
      'stopped but running behind our back: stopped again',
      { status: 'stopped', instance: running },
      { action: 'stop-instance', reason: 'container found running while stopped', markStopped: false },
    ],
    ['stopped and stopped: nothing', { status: 'stopped', instance: { ...running, state: 'stopped' } }, { action: 'none' }],
    ['stopped with nothing at all: nothing', { status: 'stopped' }, { action: 'none' }],
    ['created with nothing: nothing', { status: 'created' }, { action: 'none' }],
    ['created, its database not made yet: made ahead of the start', { status: 'created', prepareDatabase: true }, { action: 'prepare-database' }],
    [
      'created with a leftover container and no database: the leftover goes first',
      { status: 'created', prepareDatabase: true, instance: running },
      { action: 'remove-instance', reason: 'leftover instance (annotator is created)' },
    ],
    [
      'created with the instance made ahead of its first start: kept',
      { status: 'created', aheadSpecHash: 'next', instance: { ...running, state: 'stopped', specHash: 'next' } },
      { action: 'none' },
    ],
    [
      'created with the instance made ahead, its database not recorded yet: the database',
      { status: 'created', prepareDatabase: true, aheadSpecHash: 'next', instance: { ...running, state: 'stopped', specHash: 'next' } },
      { action: 'prepare-database' },
    ],
    [
      'created with an instance made ahead for another spec (a password issued since): made again',
      { status: 'created', aheadSpecHash: 'next', instance: { ...running, state: 'stopped', specHash: 'before' } },
      { action: 'make-ahead', reason: "the first start's spec changed" },
    ],
    [
      'created with a running instance, even of the first start\'s spec: a leftover',
      { status: 'created', aheadSpecHash: 'next', instance: { ...running, specHash: 'next' } },
      { action: 'remove-instance', reason: 'leftover instance (annotator is created)' },
    ],
    [
      'error with a stopped instance: a leftover (only created annotators have one made ahead)',
      { status: 'error', aheadSpecHash: 'next', instance: { ...running, state: 'stopped', specHash: 'next' } },
      { action: 'remove-instance', reason: 'leftover instance (annotator is error)' },
    ],
    ['error: no database made ahead (only created annotators)', { status: 'error', prepareDatabase: true }, { action: 'none' }],
    [
      'created with a leftover container: removed',
      { status: 'created', instance: running },
      { action: 'remove-instance', reason: 'leftover instance (annotator is created)' },
    ],
    [
      'error with a leftover container: removed',
      { status: 'error', instance: { ...running, state: 'failed' } },
      { action: 'remove-instance', reason: 'leftover instance (annotator is error)' },
    ],
    [
      'error with only a route left: removed',
      { status: 'error', instance: { state: 'missing', listed: true } },
      { action: 'remove-instance', reason: 'leftover instance (annotator is error)' },
    ],
    ['error and clean: nothing', { status: 'error' }, { action: 'none' }],
    ['deleted, not cleaned up: clean up', { status: 'deleted' }, { action: 'cleanup' }],
    ['deleted and cleaned up: nothing', { status: 'deleted', cleanedUp: true }, { action: 'none' }],
    ['deleted, cleaned up, but a container reappeared: clean up again', { status: 'deleted', cleanedUp: true, instance: running }, { action: 'cleanup' }],
  ];
  it.each(table)('%s', (_name, o, expected) => {
    expect(decide(input({ phase: null, ...o }))).toEqual(expected);
  });
});

/**
 * Every state a Docker container can be observed in (as orchestrator/backends/docker.ts maps it),
 * for an active annotator and for one mid-start: each is repaired, counted, backed off, and past
 * maxRestarts (3 here) ends in error naming the state.
 */
describe('decide: drift in any observed state is repaired by the next decision', () => {
  const observed: Array<[string, Partial<DecisionInput['instance']>, string]> = [
    ['exited with an error', { state: 'failed', message: 'exited with code 1' }, 'container failed (exited with code 1)'],
    ['exited after a kill', { state: 'stopped', message: 'exited with code 137' }, 'container stopped (exited with code 137)'],
    ['created, never started', { state: 'stopped', message: 'created' }, 'container stopped (created)'],
    ['paused', { state: 'stopped', message: 'paused' }, 'container stopped (paused)'],
    ['dead', { state: 'failed', message: 'dead' }, 'container failed (dead)'],
    ['stuck being removed', { state: 'failed', message: 'removing' }, 'container failed (removing)'],
    ['missing', { state: 'missing', listed: false, specHash: undefined }, 'container is missing'],
    ['unhealthy while running', { health: 'unhealthy' }, 'container is unhealthy'],
  ];
  for (const status of ['active', 'starting'] as const) {
    const base: Overrides = status === 'active' ? { status, phase: null } : { status, phase: 'token', tokenReported: true };
    describe(`${status}: ${status === 'active' ? 'restarted' : 'brought back during the start'}`, () => {
      it.each(observed.filter(([name]) => status === 'active' || name !== 'unhealthy while running'))('%s', (_n, inst, why) => {
        const first = decide(input({ ...base, instance: { ...running, ...inst } }));
        expect(first).toEqual({ action: 'restart', reason: `${why}; restart 1 of 3`, count: 1, nextRestartAt: NOW + s(10) });
        // Still down during the backoff: waits (no retry every pass).
        const waiting = decide(input({ ...base, instance: { ...running, ...inst }, restarts: { count: 1, lastAt: NOW - s(2), nextAt: NOW + s(8) } }));
        expect(waiting).toEqual({ action: 'none', note: `${why}; next restart in 8s` });
        // Past maxRestarts: error with the reason.
        const gaveUp = decide(input({ ...base, instance: { ...running, ...inst }, restarts: { count: 3, lastAt: NOW - s(90), nextAt: NOW - s(10) } }));
        expect(gaveUp).toEqual({ action: 'fail', reason: `${why}; gave up after 3 restart(s)` });
      });
    });
  }

  it('mid-start, a container the platform keeps restarting ends in error', () => {
    const d = decide(input({ phase: 'healthy', instance: { ...running, state: 'starting', restartCount: 3 } }));
    expect(d).toEqual({ action: 'fail', reason: 'container keeps crashing (3 restarts by the platform); gave up after 0 restart(s)' });
  });

  const active: Overrides = { status: 'active', phase: null };
  const table: Array<[string, Overrides, Decision]> = [
    ['route file deleted: written again', { ...active, instance: { ...running, route: 'missing' } }, { action: 'repair-route', reason: 'route is missing' }],
    ['route file edited: written again', { ...active, instance: { ...running, route: 'changed' } }, { action: 'repair-route', reason: 'route was changed' }],
    ['route as desired: nothing', { ...active, instance: { ...running, route: 'ok' } }, { action: 'none' }],
    [
      'route drift is repaired even while a spec change waits for the batch',
      { ...active, instance: { ...running, route: 'missing', specHash: 'old' }, assignmentInProgress: true },
      { action: 'repair-route', reason: 'route is missing' },
    ],
    [
      'a down container comes first: restarted (its route is rewritten by the restart)',
      { ...active, instance: { ...running, state: 'failed', message: 'dead', route: 'missing' } },
      { action: 'restart', reason: 'container failed (dead); restart 1 of 3', count: 1, nextRestartAt: NOW + s(10) },
    ],
    [
      'after a restart or recreate, waits for the route to answer again',
      { ...active, instance: running, routed: false, routeOk: false },
      { action: 'none', note: 'waiting for the route to answer again' },
    ],
    ['the route answers again: reported up', { ...active, instance: running, routed: false, routeOk: true }, { action: 'report-up' }],
    ['a stale error reason while healthy: replaced', { ...active, instance: running, statusReason: 'error: connect ECONNREFUSED' }, { action: 'report-up' }],
    ['a stale restart reason while healthy: replaced', { ...active, instance: running, statusReason: 'restarting: container is missing; restart 1 of 3' }, { action: 'report-up' }],
    ['a stale recreate reason: replaced', { ...active, instance: running, statusReason: "recreating: the annotator's password changed" }, { action: 'report-up' }],
    ['the up reason: kept', { ...active, instance: running, statusReason: 'Label Studio is up at http://a.fleet.localhost' }, { action: 'none' }],
    [
      'a stale reason while still down is not cleared: the restart comes first',
      { ...active, instance: { state: 'missing', listed: false }, statusReason: 'error: boom' },
      { action: 'restart', reason: 'container is missing; restart 1 of 3', count: 1, nextRestartAt: NOW + s(10) },
    ],
  ];
  it.each(table)('%s', (_name, o, expected) => {
    expect(decide(input(o))).toEqual(expected);
  });
});

describe('restart backoff and orphans', () => {
  it('doubles from the base and caps', () => {
    expect([0, 1, 2, 3, 4].map((n) => restartDelaySeconds(n, 10))).toEqual([0, 10, 20, 40, 80]);
    expect(restartDelaySeconds(30, 10)).toBe(MAX_RESTART_DELAY_SECONDS);
  });

  it('finds listed instances no annotator owns, once each, in order', () => {
    expect(orphanIds([5, 2, 9, 2, 7], new Set([2, 7]))).toEqual([5, 9]);
    expect(orphanIds([], new Set([1]))).toEqual([]);
    expect(orphanIds([1, 2], new Set([1, 2]))).toEqual([]);
  });
});
