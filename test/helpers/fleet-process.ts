/**
 * A `fleet serve` child process for fault tests: started on its own port and namespace, signed
 * in over HTTP (the documented curl flow), with the metrics endpoint on. Its liveness is the
 * process's: a fault that ended it shows as `exitCode !== null`.
 */
import { randomBytes } from 'node:crypto';
import { freePort, startFleet, waitUntil } from './process.ts';
import { TEST_SECRET_KEY } from './service.ts';

export const METRICS_TOKEN = 'chaos-metrics-token-0123456789';

export interface FleetProcess {
  base: string;
  cookie: string;
  output: { text: string };
  alive(): boolean;
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  /** The value of one series of /metrics (summed over labels matching `labels`). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

export async function startFleetProcess(env: Record<string, string>, args: string[] = []): Promise<FleetProcess> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const { child, output, exited } = startFleet(['serve', ...args], {
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    PORT: String(port),
    HOST: '127.0.0.1',
    FLEET_SECRET_KEY: TEST_SECRET_KEY,
    FLEET_NAMESPACE: `chaos${randomBytes(3).toString('hex')}`,
    ADMIN_EMAIL: 'admin@fleet.local',
    ADMIN_PASSWORD: 'admin',
    METRICS_TOKEN,
    AWS_EC2_METADATA_DISABLED: 'true',
    ...env,
  });
  try {
    await waitUntil('fleet serve healthy', async () => child.exitCode === null && (await fetch(`${base}/api/health`)).status === 200, 120_000, 250);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${output.text.slice(-2000)}`);
  }
  const csrf = (await (await fetch(`${base}/api/auth/csrf`)).json()) as { csrfToken: string };
  const signIn = await fetch(`${base}/api/auth/callback/credentials`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ email: 'admin@fleet.local', password: 'admin', csrfToken: csrf.csrfToken }).toString(),
  });
  const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0]!;
  const request: FleetProcess['request'] = async (method, path, body, headers = {}) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { cookie, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: kept as text
    }
    return { status: res.status, body: parsed };
  };
  return {
    base,
    cookie,
    output,
    alive: () => child.exitCode === null && child.signalCode === null,
    request,
    async metric(name, labels = {}) {
      const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      const text = await res.text();
      let sum = 0;
      for (const line of text.split('\n')) {
        const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
        if (!m || m[1] !== name) continue;
        if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
      }
      return sum;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
