import { describe, expect, it } from 'vitest';
import { GroupCommitUnknown, groupQueue } from '../../src/workflows/group-queue.ts';

/** A queue over numbers whose groups finish when told to; records every group and every lone request. */
function harness(opts: { workers: number; maxGroup: number; failGroup?: (inputs: number[]) => Error | null; failOne?: (n: number) => boolean }) {
  const groups: number[][] = [];
  const alone: number[] = [];
  const pending: (() => void)[] = [];
  const queue = groupQueue<number, string>({
    workers: opts.workers,
    maxGroup: opts.maxGroup,
    runGroup: async (inputs) => {
      groups.push(inputs);
      await new Promise<void>((resolve) => pending.push(resolve));
      const err = opts.failGroup?.(inputs);
      if (err) throw err;
      return inputs.map((n) => `group:${n}`);
    },
    runOne: async (n) => {
      alone.push(n);
      if (opts.failOne?.(n)) throw new Error(`bad ${n}`);
      return `one:${n}`;
    },
  });
  /** Lets every running group finish, then waits for the queue to start the next ones. */
  const release = async () => {
    for (const done of pending.splice(0)) done();
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { queue, groups, alone, release };
}

const settle = (ps: Promise<string>[]) => Promise.allSettled(ps);
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('group queue', () => {
  it('shares requests made together among the workers, each caller getting its own output', async () => {
    const h = harness({ workers: 2, maxGroup: 25 });
    const results = Array.from({ length: 10 }, (_, i) => h.queue.submit(i));
    await tick();
    expect(h.groups).toEqual([
      [0, 1, 2, 3, 4],
      [5, 6, 7, 8, 9],
    ]);
    await h.release();
    expect(await Promise.all(results)).toEqual(Array.from({ length: 10 }, (_, i) => `group:${i}`));
  });

  it('groups what arrives while every worker is busy, at most maxGroup at a time', async () => {
    const h = harness({ workers: 1, maxGroup: 3 });
    const first = [0, 1].map((n) => h.queue.submit(n));
    await tick();
    const later = Array.from({ length: 5 }, (_, i) => h.queue.submit(i + 2));
    await tick();
    expect(h.groups).toEqual([[0, 1]]);
    await h.release();
    expect(h.groups).toEqual([[0, 1], [2, 3, 4]]);
    await h.release();
    expect(h.groups).toEqual([[0, 1], [2, 3, 4], [5, 6]]);
    await h.release();
    expect(await Promise.all([...first, ...later])).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `group:${i}`));
  });

  it('serves a failed group one by one, so one bad request fails alone', async () => {
    const h = harness({ workers: 1, maxGroup: 25, failGroup: () => Object.assign(new Error('unique'), { code: '23505' }), failOne: (n) => n === 2 });
    const results = settle([1, 2, 3].map((n) => h.queue.submit(n)));
    await tick();
    await h.release();
    const out = await results;
    expect(h.alone.sort()).toEqual([1, 2, 3]);
    expect(out.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual(['one:1', 'bad 2', 'one:3']);
  });

  it('serves a request alone once, by runOne, and gives its failure to the caller (its commit may have happened)', async () => {
    const h = harness({ workers: 4, maxGroup: 25, failOne: (n) => n === 7 });
    const out = await settle([h.queue.submit(7)]);
    expect(h.groups).toEqual([]);
    expect(h.alone).toEqual([7]);
    expect(out.map((r) => r.status === 'rejected' && (r.reason as Error).message)).toEqual(['bad 7']);
    // Alone again later, after a success: still one call each.
    await expect(h.queue.submit(8)).resolves.toBe('one:8');
    expect(h.alone).toEqual([7, 8]);
  });

  it('never serves a group again when its commit may have happened', async () => {
    const lost = new Error('Connection terminated');
    const h = harness({ workers: 1, maxGroup: 25, failGroup: () => new GroupCommitUnknown(lost) });
    const results = settle([1, 2].map((n) => h.queue.submit(n)));
    await tick();
    await h.release();
    const out = await results;
    expect(h.alone).toEqual([]);
    expect(out.map((r) => r.status === 'rejected' && r.reason)).toEqual([lost, lost]);
  });
});
