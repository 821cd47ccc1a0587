/**
 * A queue that serves concurrent requests in groups: requests that arrive while every worker is
 * busy wait, and a worker that becomes free takes its share of them at once and serves them
 * together (for assignment: one transaction, so one commit for the group — assign.ts). Like group
 * commit: one request alone is served at once (after the current turn of the event loop, so that
 * requests made together are grouped), and a burst is served by `workers` groups side by side
 * instead of as many transactions competing for the cores and the commit.
 *
 * A group of one is served by `runOne` alone and its outcome, failure included, is the request's.
 * When a larger group fails before it is done (`runGroup` threw, having written nothing: a
 * transaction that rolled back), each of its requests is served on its own by `runOne`, so one bad
 * request fails alone. When it fails after (`GroupCommitUnknown`: the outcome of the commit is unknown),
 * every request of the group gets that error: serving them again could do the work twice.
 */

/** Thrown by `runGroup` when its work may or may not have been committed: not retried one by one. */
export class GroupCommitUnknown extends Error {
  constructor(override readonly cause: unknown) {
    super(`commit outcome unknown: ${(cause as Error)?.message ?? String(cause)}`);
  }
}

export interface GroupQueueOptions<I, O> {
  /** Groups served at once (the database's cores are the limit worth matching). */
  workers: number;
  /** Most requests in one group (bounds how long a group's transaction holds its locks). */
  maxGroup: number;
  /** Serves a group of two or more; returns one output per input, in order. */
  runGroup: (inputs: I[]) => Promise<O[]>;
  /** Serves one request alone (a failed group's requests). */
  runOne: (input: I) => Promise<O>;
}

interface Waiting<I, O> {
  input: I;
  resolve: (o: O) => void;
  reject: (err: unknown) => void;
}

export interface GroupQueue<I, O> {
  submit(input: I): Promise<O>;
}

export function groupQueue<I, O>(opts: GroupQueueOptions<I, O>): GroupQueue<I, O> {
  const waiting: Waiting<I, O>[] = [];
  let idle = opts.workers;
  let scheduled = false;

  const serve = async (group: Waiting<I, O>[]) => {
    // A request alone is served by runOne, once: a failure there may have come after its commit,
    // so it goes to the caller as it is, never retried here.
    if (group.length === 1) return opts.runOne(group[0]!.input).then(group[0]!.resolve, group[0]!.reject);
    let outputs: O[] | null = null;
    try {
      outputs = await opts.runGroup(group.map((w) => w.input));
    } catch (err) {
      if (err instanceof GroupCommitUnknown) {
        for (const w of group) w.reject(err.cause);
        return;
      }
      await Promise.all(group.map((w) => opts.runOne(w.input).then(w.resolve, w.reject)));
      return;
    }
    group.forEach((w, i) => w.resolve(outputs[i]!));
  };

  /** Shares the waiting requests among the idle workers (at most maxGroup each). */
  const dispatch = () => {
    while (idle > 0 && waiting.length) {
      const group = waiting.splice(0, Math.min(opts.maxGroup, Math.ceil(waiting.length / idle)));
      idle--;
      void serve(group).finally(() => {
        idle++;
        dispatch();
      });
    }
  };

  return {
    submit(input) {
      return new Promise<O>((resolve, reject) => {
        waiting.push({ input, resolve, reject });
        if (scheduled) return;
        scheduled = true;
        setImmediate(() => {
          scheduled = false;
          dispatch();
        });
      });
    },
  };
}
