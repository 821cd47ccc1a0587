/**
 * The fault suite's table (`npm run chaos`): one row per test — fault (the test's describe
 * names, joined by " › ") × what was checked (the test's name) × result (passed / FAILED /
 * skipped) × counts (the test's `task.meta.counts`, see ./meta.ts) × seconds — then totals.
 * Markdown, so it can be pasted into README's "Faults" section as it is; also written to the
 * file named by CHAOS_TABLE_FILE when set. Used beside vitest's default reporter.
 */
import { writeFileSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';
import './meta.ts';

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export default class ChaosTableReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const rows: string[][] = [];
    const tally = { passed: 0, failed: 0, skipped: 0 };
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const path: string[] = [];
        for (let p = test.parent; p.type === 'suite'; p = p.parent) path.unshift(p.name);
        const state = test.result().state;
        const result = state === 'passed' ? 'passed' : state === 'failed' ? 'FAILED' : 'skipped';
        tally[state === 'passed' ? 'passed' : state === 'failed' ? 'failed' : 'skipped']++;
        const counts = Object.entries(test.meta().counts ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(', ');
        const seconds = ((test.diagnostic()?.duration ?? 0) / 1000).toFixed(1);
        rows.push([path.join(' › ') || mod.relativeModuleId, test.name, result, counts, seconds]);
      }
    }
    const lines = [
      '| fault | what was checked | result | counts | s |',
      '|---|---|---|---|---:|',
      ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
      '',
      `${tally.passed} passed, ${tally.failed} failed, ${tally.skipped} skipped`,
    ];
    const table = lines.join('\n');
    process.stdout.write(`\nFault suite\n\n${table}\n`);
    if (process.env.CHAOS_TABLE_FILE) writeFileSync(process.env.CHAOS_TABLE_FILE, `${table}\n`);
  }
}
