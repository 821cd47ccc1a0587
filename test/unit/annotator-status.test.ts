import { describe, expect, it } from 'vitest';
import {
  ANNOTATOR_STATUSES,
  canTransition,
  isAnnotatorStatus,
  isFinal,
  nextStatuses,
  type AnnotatorStatusValue,
} from '../../src/domain/annotator-status.ts';

const allowed: Array<[AnnotatorStatusValue, AnnotatorStatusValue]> = [
  ['created', 'starting'],
  ['starting', 'active'],
  ['active', 'stopping'],
  ['stopping', 'stopped'],
  ['stopped', 'starting'],
  ['starting', 'error'],
  ['active', 'error'],
  ['error', 'starting'],
  ['error', 'stopping'],
  ['starting', 'stopping'],
];

describe('annotator status machine', () => {
  it('lists the seven documented statuses', () => {
    expect([...ANNOTATOR_STATUSES]).toEqual(['created', 'starting', 'active', 'stopping', 'stopped', 'error', 'deleted']);
  });

  it.each(allowed)('allows %s → %s', (from, to) => {
    expect(canTransition(from, to)).toBe(true);
  });

  it('allows exactly the listed transitions plus deletion from every live status', () => {
    for (const from of ANNOTATOR_STATUSES) {
      for (const to of ANNOTATOR_STATUSES) {
        const expected = allowed.some(([f, t]) => f === from && t === to) || (to === 'deleted' && from !== 'deleted');
        expect(canTransition(from, to), `${from} → ${to}`).toBe(expected);
      }
    }
  });

  it('reaches error only from starting or active', () => {
    const into = ANNOTATOR_STATUSES.filter((s) => canTransition(s, 'error'));
    expect(into).toEqual(['starting', 'active']);
  });

  it('never treats staying in a status as a transition', () => {
    for (const s of ANNOTATOR_STATUSES) expect(canTransition(s, s), s).toBe(false);
  });

  it('makes deleted final', () => {
    expect(nextStatuses('deleted')).toEqual([]);
    expect(isFinal('deleted')).toBe(true);
    for (const s of ANNOTATOR_STATUSES.filter((x) => x !== 'deleted')) expect(isFinal(s), s).toBe(false);
  });

  it('recognises status values', () => {
    expect(isAnnotatorStatus('active')).toBe(true);
    expect(isAnnotatorStatus('Active')).toBe(false);
    expect(isAnnotatorStatus('running')).toBe(false);
    expect(isAnnotatorStatus(3)).toBe(false);
  });
});
