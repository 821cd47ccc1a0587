/**
 * `npm run bench -- cli`: how long `fleet --help` and `fleet --version` take, as the `fleet`
 * command (bin/fleet.mjs, TypeScript sources) and as the bundle the image and `npm start` run
 * (dist/fleet.mjs), against `node -e 0` measured in the same run (BENCH_RUNS each, interleaved
 * so load on the machine hits all alike). Also `fleet serve --help`, which goes through the
 * TypeScript loader. Figures: median and p90 wall-clock ms, and the ratio of medians to `node -e 0`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { percentile, ratio } from './lib.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const RUNS = Number(process.env.BENCH_RUNS ?? 15);

export default async function bench() {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'pipe' });
  const cases: Record<string, string[]> = {
    'node -e 0': ['-e', '0'],
    'fleet --help': ['bin/fleet.mjs', '--help'],
    'fleet --version': ['bin/fleet.mjs', '--version'],
    'fleet serve --help': ['bin/fleet.mjs', 'serve', '--help'],
    'bundle --help': ['dist/fleet.mjs', '--help'],
    'bundle --version': ['dist/fleet.mjs', '--version'],
  };
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const [name, args] of Object.entries(cases)) {
      const started = performance.now();
      const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'pipe' });
      if (r.status !== 0) throw new Error(`${name} exited ${r.status}: ${r.stderr}`);
      samples[name]!.push(performance.now() - started);
    }
  }
  const baseline = percentile([...samples['node -e 0']!].sort((a, b) => a - b), 50);
  const figures = Object.fromEntries(
    Object.entries(samples).map(([name, ms]) => {
      const sorted = [...ms].sort((a, b) => a - b);
      const p50 = percentile(sorted, 50);
      return [name, { p50Ms: Math.round(p50), p90Ms: Math.round(percentile(sorted, 90)), ratioToNode: ratio(p50, baseline) }];
    }),
  );
  return { runs: RUNS, node: process.version, figures };
}
