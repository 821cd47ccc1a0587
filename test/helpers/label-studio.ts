/**
 * A real Label Studio (the pinned label-studio==1.23.2 from the project venv, `npm run env:up`)
 * run directly on the host for tests that need one but not the Docker fleet: a free 127.0.0.1
 * port, its own fresh PostgreSQL database and data directory, a known legacy API token, and
 * webhooks allowed to loopback (USE_DEFAULT_BANNED_SUBNETS=false; Label Studio's SSRF guard
 * otherwise refuses 127.0.0.1). stop() kills its process group and drops the database.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { TEST_DATABASE_URL, testEnv } from './env.ts';
import { freePort } from './process.ts';

export interface TestLabelStudio {
  url: string;
  port: number;
  token: string;
  logFile: string;
  stop(): Promise<void>;
  /** SIGKILL of its process group (a crash): its database and data stay, for restart(). */
  kill(): Promise<void>;
  /** Starts it again on the same port, database and data (after kill()); resolves once healthy. */
  restart(opts?: { timeoutMs?: number }): Promise<void>;
}

async function admin(query: string) {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL() });
  await client.connect();
  try {
    await client.query(query);
  } finally {
    await client.end();
  }
}

async function waitHealthy(url: string, token: string, child: ChildProcess, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`Label Studio exited with code ${child.exitCode}`);
    try {
      const health = await fetch(`${url}/health/`, { signal: AbortSignal.timeout(2000) });
      if (health.ok && ((await health.json()) as { status?: string }).status === 'UP') {
        const api = await fetch(`${url}/api/projects/`, { headers: { Authorization: `Token ${token}` }, signal: AbortSignal.timeout(5000) });
        if (api.ok) return;
      }
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`Label Studio did not become healthy at ${url} within ${timeoutMs} ms`);
}

export async function startLabelStudio(opts: { timeoutMs?: number } = {}): Promise<TestLabelStudio> {
  const bin = testEnv('LABEL_STUDIO_BIN', '/var/cache/labelfleet/venv/bin/label-studio');
  const port = await freePort();
  const token = `lf${randomBytes(12).toString('hex')}`;
  const dbName = `lf_test_ls_${randomBytes(5).toString('hex')}`;
  await admin(`CREATE DATABASE ${dbName}`);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'lf-ls-'));
  // The log stays after stop(), for a failed run's post-mortem.
  const logFile = path.join(tmpdir(), `lf-label-studio-${port}.log`);
  const db = new URL(TEST_DATABASE_URL());

  const env: NodeJS.ProcessEnv = { ...process.env };
  // LS falls back to bare PORT/HOST/USERNAME/PASSWORD: keep only our flags.
  for (const k of ['PORT', 'HOST', 'USERNAME', 'PASSWORD', 'USER_TOKEN', 'LABEL_STUDIO_HOST']) delete env[k];
  Object.assign(env, {
    DJANGO_DB: 'default',
    POSTGRE_NAME: dbName,
    POSTGRE_USER: decodeURIComponent(db.username || 'postgres'),
    POSTGRE_PASSWORD: decodeURIComponent(db.password),
    POSTGRE_HOST: db.hostname,
    POSTGRE_PORT: db.port || '5432',
    SECRET_KEY: randomBytes(24).toString('hex'),
    LABEL_STUDIO_BASE_DATA_DIR: dataDir,
    LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN: 'true',
    LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK: 'true',
    LABEL_STUDIO_PASSWORD: 'e2e-password-123',
    LABEL_STUDIO_USER_TOKEN: token,
    USE_DEFAULT_BANNED_SUBNETS: 'false',
    USER_ADDITIONAL_BANNED_SUBNETS: '169.254.0.0/16',
  });
  const log = createWriteStream(logFile);
  const spawnIt = () => {
    const c = spawn(
      bin,
      ['start', '--no-browser', '-p', String(port), '--internal-host', '127.0.0.1', '--username', 'e2e@fleet.local', '--data-dir', dataDir],
      { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    c.stdout!.pipe(log, { end: false });
    c.stderr!.pipe(log, { end: false });
    return c;
  };
  let child = spawnIt();
  const url = `http://127.0.0.1:${port}`;

  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
    const exited = new Promise((r) => child.once('exit', r));
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await exited;
  };
  const restart = async (o: { timeoutMs?: number } = {}) => {
    await kill();
    child = spawnIt();
    await waitHealthy(url, token, child, o.timeoutMs ?? 300_000);
  };

  const stop = async () => {
    if (child.exitCode === null && child.pid) {
      const exited = new Promise((r) => child.once('exit', r));
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, 10_000);
      await exited;
      clearTimeout(timer);
    }
    log.end();
    await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    await waitHealthy(url, token, child, opts.timeoutMs ?? 300_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, token, logFile, stop, kill, restart };
}
