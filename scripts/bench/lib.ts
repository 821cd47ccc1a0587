/** Shared benchmark helpers: latency percentiles, bounded load loops, RSS sampling. */
import { readFileSync } from 'node:fs';

export interface LatencyStats {
  count: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
  perSecond: number;
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

const round = (n: number) => Math.round(n * 100) / 100;

export function stats(samplesMs: number[], wallMs: number): LatencyStats {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? 0),
    mean: round(sorted.length ? sum / sorted.length : 0),
    perSecond: round(wallMs > 0 ? (sorted.length * 1000) / wallMs : 0),
  };
}

/**
 * Runs `op` with `concurrency` workers until `count` operations are done or `maxMs` has passed
 * (whichever first): every load loop here is bounded in count and time.
 */
export async function load(
  op: (i: number) => Promise<void>,
  opts: { count: number; concurrency: number; maxMs: number },
): Promise<LatencyStats> {
  const samples: number[] = [];
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < opts.count && performance.now() - started < opts.maxMs) {
      const i = next++;
      const t0 = performance.now();
      await op(i);
      samples.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return stats(samples, performance.now() - started);
}

export const rssMb = () => Math.round(process.memoryUsage().rss / 1024 / 1024);

export const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : null);

/** Resident and peak memory of another process (Linux /proc), in MB. */
export function processMemoryMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: Math.round(kb('VmRSS') / 1024), peak: Math.round(kb('VmHWM') / 1024) };
}

/**
 * CPU time another process on this machine has used, in ms (Linux /proc/<pid>/schedstat: time on a
 * CPU in ns); 0 once it has exited. For PostgreSQL backends when the server runs here.
 */
export function cpuMs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return 0;
  }
}

/**
 * CPU time (user + system) a whole process has used, all its threads, in seconds (Linux
 * /proc/<pid>/stat; clock ticks of 1/100 s). cpuMs reads one thread, finer: for single-threaded
 * PostgreSQL backends.
 */
export function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
