/**
 * What a chaos test reports besides pass/fail: `task.meta.counts`, printed by
 * test/chaos/table-reporter.ts in the "counts" column (e.g. `{ rounds: 30, served503: 12 }`).
 *
 *   it('process alive', ({ task }) => { ...; task.meta.counts = { rounds: 30 }; });
 */
declare module '@vitest/runner' {
  interface TaskMeta {
    counts?: Record<string, number | string>;
  }
}
export {};
