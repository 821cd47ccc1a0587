/**
 * A real `fleet serve` child process on a fresh PostgreSQL database, for benchmarks that measure
 * the service over loopback (and its memory) without the load generator in the same process.
 */
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';
import { buildBundle, freePort, startFleet, waitUntil } from '../../../test/helpers/process.ts';

export interface FleetProcess {
  base: string;
  pid: number;
  database: TestDatabase;
  cookie: string;
  stop(): Promise<void>;
}

/**
 * `nodeArgs`: extra node flags for the service (e.g. --cpu-prof, which NODE_OPTIONS refuses).
 * `bundle`: a bundle built earlier (another commit's, for a baseline) instead of building this one.
 */
export async function startFleetProcess(
  env: Record<string, string> = {},
  seed?: (db: TestDatabase) => Promise<void>,
  nodeArgs: string[] = [],
  bundle?: string,
): Promise<FleetProcess> {
  const database = await createTestDatabase();
  if (seed) await seed(database);
  const port = await freePort();
  // The process `npm start` runs (the bundle), so memory figures are the deployed service's.
  const entry = bundle ?? buildBundle();
  const proc = startFleet(['serve', '--no-reconcile'], {
    DATABASE_URL: database.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    FLEET_SECRET_KEY: 'bench-secret-key-bench-secret-key-0123456789',
    ...env,
  }, undefined, entry, nodeArgs);
  const base = `http://127.0.0.1:${port}`;
  await waitUntil('fleet serve to answer', async () => (await fetch(`${base}/api/health`)).ok, 60_000, 200);
  const { csrfToken } = (await (await fetch(`${base}/api/auth/csrf`)).json()) as { csrfToken: string };
  const res = await fetch(`${base}/api/auth/callback/credentials`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ email: 'admin@fleet.local', password: 'admin', csrfToken }).toString(),
  });
  const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
  return {
    base,
    pid: proc.child.pid!,
    database,
    cookie,
    async stop() {
      proc.child.kill('SIGTERM');
      await proc.exited;
      await database.drop();
    },
  };
}
