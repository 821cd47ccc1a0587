/** Running the real `fleet` command as a child process, for CLI and smoke tests. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const FLEET_BIN = fileURLToPath(new URL('../../bin/fleet.mjs', import.meta.url));
/** What `npm start` runs: the esbuild bundle of src/cli.ts (`npm run build`). */
export const FLEET_BUNDLE = fileURLToPath(new URL('../../dist/fleet.mjs', import.meta.url));

/** The heap limit `npm start` gives the service (package.json config.heapMb; FLEET_HEAP_MB overrides). */
export const START_NODE_ARGS = [
  `--max-old-space-size=${process.env.FLEET_HEAP_MB ?? JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')).config.heapMb}`,
];

/** Builds dist/fleet.mjs exactly as `npm start` does. */
export function buildBundle(): string {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: 'pipe' });
  return FLEET_BUNDLE;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `fleet ...args` to completion. */
export function runFleet(args: string[], env: Record<string, string | undefined> = {}, cwd?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [FLEET_BIN, ...args], { env: { ...process.env, ...env }, cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts `fleet ...args` (or the given entry, e.g. the bundle) in the background and collects its output. */
export function startFleet(args: string[], env: Record<string, string | undefined>, cwd?: string, entry = FLEET_BIN) {
  const nodeArgs = entry === FLEET_BUNDLE ? START_NODE_ARGS : [];
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, entry, ...args], { env: { ...process.env, ...env }, cwd });
  const output = { text: '' };
  child.stdout!.on('data', (d) => (output.text += d));
  child.stderr!.on('data', (d) => (output.text += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, output, exited };
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}
