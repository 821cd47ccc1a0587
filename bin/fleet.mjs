#!/usr/bin/env node
// The `fleet` command. TypeScript sources run through tsx's loader: no build step to forget.
// `fleet --help` and `fleet --version` alone are answered here, before the loader (which costs
// a few hundred ms) is even imported; every other use goes to src/cli.ts.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
if (args.length === 1 && ['--help', '-h', '--version', '-v'].includes(args[0])) {
  const read = (file) => JSON.parse(readFileSync(new URL(file, import.meta.url), 'utf8'));
  console.log(args[0] === '--help' || args[0] === '-h' ? read('../src/cli-help.json').fleet : `fleet ${read('../package.json').version}`);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
