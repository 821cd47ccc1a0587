import { describe, expect, it } from 'vitest';
import { startProgress, type ProgressEventRow, type StartProgressInput } from '../../src/domain/start-progress.ts';

const T0 = new Date('2026-11-30T10:00:00Z');
const at = (s: number) => new Date(T0.getTime() + s * 1000);
let nextId = 1;
const step = (s: number, previousPhase: string, phase: string, message: string, generation = 2): ProgressEventRow => ({
  id: nextId++,
  eventType: 'start_progress',
  toStatus: 'starting',
  message,
  details: { phase, previousPhase, generation },
  createdAt: at(s),
});
const base = (over: Partial<StartProgressInput>): StartProgressInput => ({
  status: 'starting',
  startPhase: 'database',
  statusReason: 'starting: database',
  startGeneration: 2,
  startRequestedAt: T0,
  url: null,
  events: [],
  ...over,
});

describe('startProgress', () => {
  it('a start just requested: database current at 0%, later phases pending', () => {
    const p = startProgress(base({}));
    expect(p).toMatchObject({ status: 'starting', phase: 'database', percent: 0, message: 'starting: database', ready: false, failed: false, url: null });
    expect(p.phases.map((x) => [x.phase, x.state])).toEqual([
      ['database', 'current'],
      ['container', 'pending'],
      ['healthy', 'pending'],
      ['token', 'pending'],
      ['route', 'pending'],
      ['active', 'pending'],
    ]);
    expect(p.phases[0]!.startedAt).toBe(T0.toISOString());
  });

  it('mid-start: finished phases carry the step that finished them, the current one the wait', () => {
    const events = [step(2, 'database', 'container', 'database ls_annotator_7 created'), step(5, 'container', 'healthy', 'container fleet-ls-7 running')];
    const p = startProgress(base({ startPhase: 'healthy', statusReason: 'starting: waiting for Label Studio', events }));
    expect(p.percent).toBe(35);
    expect(p.phase).toBe('healthy');
    expect(p.phases.slice(0, 4).map((x) => [x.phase, x.state, x.message, x.startedAt])).toEqual([
      ['database', 'done', 'database ls_annotator_7 created', T0.toISOString()],
      ['container', 'done', 'container fleet-ls-7 running', at(2).toISOString()],
      ['healthy', 'current', 'starting: waiting for Label Studio', at(5).toISOString()],
      ['token', 'pending', null, null],
    ]);
  });

  it('each phase has its own percent, rising through the start', () => {
    const percents = (['database', 'container', 'healthy', 'token', 'route'] as const).map((ph) => startProgress(base({ startPhase: ph })).percent);
    expect(percents).toEqual([0, 10, 35, 75, 90]);
  });

  it('active: 100%, ready, every phase done, the URL in the message', () => {
    const events = [
      step(2, 'database', 'container', 'db'),
      step(5, 'container', 'healthy', 'running'),
      step(40, 'healthy', 'token', 'healthy'),
      step(41, 'token', 'route', 'token'),
      { id: nextId++, eventType: 'status_change', toStatus: 'active', message: 'Label Studio is up at http://ada.fleet.localhost', details: { generation: 2 }, createdAt: at(43) },
    ];
    const p = startProgress(base({ status: 'active', startPhase: null, statusReason: 'Label Studio is up', url: 'http://ada.fleet.localhost', events }));
    expect(p).toMatchObject({ phase: 'active', percent: 100, ready: true, failed: false, url: 'http://ada.fleet.localhost', message: 'Label Studio is up at http://ada.fleet.localhost' });
    expect(p.phases.every((x) => x.state === 'done')).toBe(true);
    expect(p.phases.at(-1)!.startedAt).toBe(at(43).toISOString());
    expect(p.phases[4]!.message).toBe('Label Studio is up at http://ada.fleet.localhost');
  });

  it('error: the phase it reached is failed with the reason; earlier ones done', () => {
    const events = [step(2, 'database', 'container', 'db'), step(5, 'container', 'healthy', 'running')];
    const p = startProgress(base({ status: 'error', startPhase: null, statusReason: 'phase healthy took longer than 600 s', events }));
    expect(p).toMatchObject({ phase: 'healthy', percent: 35, ready: false, failed: true, message: 'phase healthy took longer than 600 s' });
    expect(p.phases.map((x) => x.state)).toEqual(['done', 'done', 'failed', 'pending', 'pending', 'pending']);
  });

  it('ignores the events of an earlier start generation', () => {
    const old = [step(1, 'database', 'container', 'old', 1), step(2, 'container', 'healthy', 'old', 1), step(3, 'healthy', 'token', 'old', 1)];
    const p = startProgress(base({ events: old }));
    expect(p.phases.map((x) => x.state)).toEqual(['current', 'pending', 'pending', 'pending', 'pending', 'pending']);
  });

  it('not starting: no phase, 0%, a message that says why, neither ready nor failed', () => {
    for (const [status, reason, message] of [
      ['created', null, 'Not started yet'],
      ['stopped', 'container stopped', 'Stopped (container stopped)'],
      ['stopping', 'stop requested by admin', 'stop requested by admin'],
    ] as const) {
      const p = startProgress(base({ status, startPhase: null, statusReason: reason, startRequestedAt: status === 'created' ? null : T0 }));
      expect(p).toMatchObject({ status, phase: null, percent: 0, ready: false, failed: false, message });
      expect(p.phases.every((x) => x.state === 'pending')).toBe(true);
    }
  });
});
