/**
 * `npm run bench -- <name> [...]`: runs scripts/bench/<name>.ts (default export, an async
 * function returning a report object), prints the report and writes bench-results/<name>.json.
 * With no name, runs every benchmark in turn. Figures only: benchmarks never assert timings.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const available = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'lib.ts'].includes(f))
  .map((f) => f.slice(0, -3));

const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const selected = names.length ? names : available;
for (const name of selected) {
  if (!available.includes(name)) {
    console.error(`bench: unknown benchmark "${name}" (available: ${available.join(', ')})`);
    process.exit(2);
  }
}

mkdirSync('bench-results', { recursive: true });
for (const name of selected) {
  console.log(`\n=== bench: ${name} ===`);
  const mod = (await import(`./${name}.ts`)) as { default: () => Promise<unknown> };
  const report = await mod.default();
  console.log(JSON.stringify(report, null, 2));
  writeFileSync(`bench-results/${name}.json`, JSON.stringify(report, null, 2));
}
process.exit(0);
