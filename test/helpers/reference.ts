/**
 * Runs the reference implementations (test/reference/reference.py: the `krippendorff` and
 * `crowd-kit` PyPI packages) in the reference-tools venv that `npm run env:up` builds, on data the
 * test generates. One interpreter start per call: pass every request of a test file at once.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { testEnv } from './env.ts';

const SCRIPT = fileURLToPath(new URL('../reference/reference.py', import.meta.url));

export async function reference<T = unknown>(requests: object[]): Promise<T[]> {
  const python = testEnv('REFERENCE_PYTHON');
  const child = promisify(execFile)(python, [SCRIPT], { maxBuffer: 256 * 1024 * 1024 });
  child.child.stdin!.end(JSON.stringify({ kind: 'batch', requests }));
  const { stdout } = await child;
  return JSON.parse(stdout) as T[];
}
