import { defineConfig } from 'vitest/config';

// Three tiers (README "Tests"): unit = pure logic; integration = real PostgreSQL, a database per
// file; e2e = real Docker, Label Studio, Traefik and moto, brought up by `npm run env:up`.
// A fourth, `chaos` (README "Faults"), is the fault suite: `npm run chaos`, never part of a plain
// `vitest run` of the other three; its fast files (`*.fast.test.ts`) also run in `integration`.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/chaos/**/*.fast.test.ts'],
          // Generous: the machine may be busy (2 shared cores); speed lives in the benchmarks.
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 600_000,
          // Label Studio instances are heavy: e2e files run one at a time.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'chaos',
          include: ['test/chaos/**/*.test.ts'],
          // Faults take time to inject and recover from; each file owns the machine's spare capacity.
          testTimeout: 600_000,
          hookTimeout: 600_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
