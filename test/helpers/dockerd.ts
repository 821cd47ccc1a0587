/**
 * A Docker Engine of the test's own, for fault cases that stop and start it: never the machine's
 * dockerd (other work uses that one). It runs the `dockerd` that `npm run env:up` installed, as a
 * child of the test, with its own socket, exec root and pid file in a temp directory and its own
 * data root under the cache (`${LABELFLEET_CACHE:-/var/cache/labelfleet}/chaos-dockerd`, kept, so
 * images loaded once stay), no bridge and no iptables rules (containers use host networking).
 * Images come from the machine's engine (`docker save | docker load`, once per tag).
 * stop() ends it as an operator would (SIGTERM: it stops its containers), start() runs it again.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { testEnv } from './env.ts';
import { waitUntil } from './process.ts';

export interface TestDockerd {
  socket: string;
  docker: Docker;
  logFile: string;
  /** Copies `tag` from the machine's engine when this one does not have it yet. */
  loadImage(tag: string): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  close(): Promise<void>;
}

export async function startDockerd(): Promise<TestDockerd> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lf-dockerd-'));
  const socket = path.join(dir, 'docker.sock');
  const dataRoot = path.join(process.env.LABELFLEET_CACHE ?? '/var/cache/labelfleet', 'chaos-dockerd');
  mkdirSync(dataRoot, { recursive: true });
  const logFile = path.join(dir, 'dockerd.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  const docker = new Docker({ socketPath: socket });
  let child: ChildProcess | undefined;

  const start = async () => {
    child = spawn(
      'dockerd',
      [
        `--host=unix://${socket}`,
        `--data-root=${dataRoot}`,
        `--exec-root=${path.join(dir, 'exec')}`,
        `--pidfile=${path.join(dir, 'docker.pid')}`,
        '--bridge=none',
        '--iptables=false',
        '--ip6tables=false',
        '--ip-forward=false',
        '--ip-masq=false',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    const c = child;
    await waitUntil(
      'the test dockerd answering',
      async () => {
        if (c.exitCode !== null) throw new Error(`dockerd exited with ${c.exitCode}; see ${logFile}`);
        return docker.ping().then(() => true, () => false);
      },
      60_000,
      200,
    );
  };
  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  };
  const loadImage = async (tag: string) => {
    if ((await docker.listImages({ filters: JSON.stringify({ reference: [tag] }) })).length) return;
    const machine = testEnv('DOCKER_SOCKET', '/var/run/docker.sock');
    // Through a file: two docker CLIs in a shell pipe would need a shell.
    const tar = path.join(dir, 'image.tar');
    execFileSync('docker', ['-H', `unix://${machine}`, 'save', '-o', tar, tag], { stdio: 'pipe' });
    execFileSync('docker', ['-H', `unix://${socket}`, 'load', '-i', tar], { stdio: 'pipe' });
    rmSync(tar, { force: true });
  };
  await start();
  return {
    socket,
    docker,
    logFile,
    loadImage,
    start,
    stop,
    async close() {
      await stop();
      log.end();
      // dockerd leaves its network namespace file bind-mounted under the exec root: unmount first.
      const mounts = readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .map((line) => line.split(' ')[1] ?? '')
        .filter((m) => m.startsWith(`${dir}/`))
        .reverse();
      for (const m of mounts) {
        try {
          execFileSync('umount', ['-l', m], { stdio: 'pipe' });
        } catch {
          /* already gone */
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
