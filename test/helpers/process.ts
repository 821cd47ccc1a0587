/** Running the real `fleet` command as a child process, for CLI and smoke tests. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
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

/** Runs `fleet ...args` to completion, with `input` (if any) on its standard input. */
export function runFleet(args: string[], env: Record<string, string | undefined> = {}, cwd?: string, input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [FLEET_BIN, ...args], { env: { ...process.env, ...env }, cwd });
    child.stdin.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts `fleet ...args` (or the given entry, e.g. the bundle) in the background and collects its output. */
export function startFleet(args: string[], env: Record<string, string | undefined>, cwd?: string, entry = FLEET_BIN, extraNodeArgs: string[] = []) {
  const nodeArgs = [...(entry === FLEET_BUNDLE ? START_NODE_ARGS : []), ...extraNodeArgs];
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, entry, ...args], { env: { ...process.env, ...env }, cwd });
  const output = { text: '' };
  child.stdout!.on('data', (d) => (output.text += d));
  child.stderr!.on('data', (d) => (output.text += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, output, exited };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Starts `fleet serve ...args` on a free port of 127.0.0.1 and waits (up to `timeoutMs`) until
 * `/api/health` answers 200. A port is only free until someone takes it: when the service exits
 * because its port was taken meanwhile (busy suites start many servers), it is started again on
 * another, up to three times. Any other exit, or no answer in time, throws with the process output.
 * Returns the running process and its base URL.
 */
export async function startServing(
  args: string[],
  env: Record<string, string | undefined>,
  opts: { entry?: string; timeoutMs?: number } = {},
): Promise<ReturnType<typeof startFleet> & { base: string }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const proc = startFleet(['serve', ...args], { ...env, PORT: String(port), HOST: '127.0.0.1' }, undefined, opts.entry);
    const exited = proc.exited.then(() => 'exited' as const);
    const healthy = waitUntil(`${base} to answer`, async () => proc.child.exitCode === null && (await fetch(`${base}/api/health`)).ok, opts.timeoutMs ?? 120_000, 250).then(() => 'up' as const);
    const outcome = await Promise.race([healthy, exited]).catch((err: Error) => err);
    if (outcome === 'up') return { ...proc, base };
    proc.child.kill('SIGKILL');
    await proc.exited;
    if (outcome === 'exited' && /already in use/.test(proc.output.text) && attempt < 3) continue;
    const why = outcome === 'exited' ? `fleet serve exited (code ${proc.child.exitCode})` : outcome.message;
    throw new Error(`${why}\n${proc.output.text.slice(-2000)}`);
  }
}

/** Polls `fn` until it returns something truthy; times out naming `what` and the last error. */
export async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | false | undefined | null>,
  timeoutMs: number,
  intervalMs = 500,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    }
    await sleep(intervalMs);
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
    s.connect(port, '127.0.0.1');
  });
}

/** A base such that base+1 … base+count are free on 127.0.0.1 (per-annotator ports in host mode). */
export async function freePortBase(from: number, count: number): Promise<number> {
  for (let base = from; base < from + 2000; base += 50) {
    let ok = true;
    for (let i = 1; i <= count && ok; i++) ok = await portIsFree(base + i);
    if (ok) return base;
  }
  throw new Error(`no free port range near ${from}`);
}
