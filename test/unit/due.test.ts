/** The work queue's pure rules (orchestrator/due.ts): retry backoff and when an instance is next due. */
import { describe, expect, it } from 'vitest';
import { backoffMs, FullResync, instanceNextDue, type InstanceDueInput } from '../../orchestrator/due.ts';

const row = (over: Partial<InstanceDueInput> = {}): InstanceDueInput => ({
  status: 'active',
  startGeneration: 1,
  cleanedUpAt: null,
  restartCount: 0,
  lastRestartAt: null,
  nextRestartAt: null,
  lsUserId: 7,
  lsPasswordEnc: null,
  routedAt: new Date(0),
  ...over,
});
const now = 1_000_000_000_000;
const opts = { now, failed: false, retryMs: 4000, pollMs: 500, accountPollMs: 10_000, restartResetSeconds: 600, prepareDatabase: false };

describe('backoffMs', () => {
  it('doubles from 1 s per failure in a row up to the cap', () => {
    expect([1, 2, 3, 4, 10].map((n) => backoffMs(n))).toEqual([1000, 2000, 4000, 8000, 300_000]);
    expect(backoffMs(50, 60_000)).toBe(60_000);
    expect(backoffMs(0)).toBe(1000);
  });
  it('doubles from a given base (a batch retries from 15 s) up to the cap', () => {
    expect([1, 2, 3, 5, 6].map((n) => backoffMs(n, undefined, 15_000))).toEqual([15_000, 30_000, 60_000, 240_000, 300_000]);
    expect(backoffMs(3, 50_000, 15_000)).toBe(50_000);
  });
});

describe('instanceNextDue', () => {
  it('is never due for a healthy active, stopped, created or error annotator, nor one the fleet never started', () => {
    for (const status of ['active', 'stopped', 'created', 'error']) expect(instanceNextDue(row({ status }), opts)).toBeNull();
    expect(instanceNextDue(row({ status: 'starting', startGeneration: 0 }), opts)).toBeNull();
    expect(instanceNextDue(row({ status: 'deleted', cleanedUpAt: new Date(now) }), opts)).toBeNull();
  });

  it('polls starts, stops and clean-ups in flight', () => {
    for (const status of ['starting', 'stopping', 'deleted']) expect(instanceNextDue(row({ status }), opts)).toBe(now + 500);
  });

  it('cleans up a deleted annotator the fleet never started (its database may have been made ahead)', () => {
    expect(instanceNextDue(row({ status: 'deleted', startGeneration: 0 }), opts)).toBe(now + 500);
  });

  it('comes back for a created annotator whose database is still to be made (a pass makes a few), then never', () => {
    expect(instanceNextDue(row({ status: 'created', startGeneration: 0 }), { ...opts, prepareDatabase: true })).toBe(now + 500);
    expect(instanceNextDue(row({ status: 'created', startGeneration: 0 }), opts)).toBeNull();
  });

  it('polls an active instance until it is reported up again (after a restart, recreate or route repair)', () => {
    expect(instanceNextDue(row({ routedAt: null }), opts)).toBe(now + 500);
  });

  it('retries a failed action after the backoff the caller gives', () => {
    expect(instanceNextDue(row({ status: 'stopped' }), { ...opts, failed: true })).toBe(now + 4000);
  });

  it('is due at the next restart, when the restart count resets, or to look for an issued account — the earliest', () => {
    expect(instanceNextDue(row({ restartCount: 1, lastRestartAt: new Date(now - 1000), nextRestartAt: new Date(now + 30_000) }), opts)).toBe(now + 30_000);
    expect(instanceNextDue(row({ restartCount: 2, lastRestartAt: new Date(now - 1000) }), opts)).toBe(now - 1000 + 600_000 + 1000);
    expect(instanceNextDue(row({ restartCount: 2, lastRestartAt: new Date(now - 1000), lsUserId: null, lsPasswordEnc: 'x' }), opts)).toBe(now + 10_000);
  });
});

describe('FullResync', () => {
  it('is due at once, then once per interval', () => {
    const r = new FullResync(1000);
    expect([r.due(0), r.due(500), r.due(999), r.due(1000), r.due(1500), r.due(2000)]).toEqual([true, false, false, true, false, true]);
  });
});
