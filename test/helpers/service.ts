/**
 * An in-process LabelFleet on a fresh test database, with a signed-in admin. Requests go through
 * the real Hono app (app.request), so routing, auth, validation and errors are all exercised.
 */
import { loadConfig, type Config } from '../../src/config.ts';
import { SecretBox } from '../../src/crypto.ts';
import { createLogger } from '../../src/logger.ts';
import { createService, type Service } from '../../src/service.ts';
import type { AppContext } from '../../src/context.ts';
import { webhookInbox } from '../../src/workflows/inbox.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

export const TEST_SECRET_KEY = 'test-secret-key-test-secret-key-0123456789';

export interface TestClient {
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  /** Sends and parses JSON; returns status, body and headers. */
  json<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: T; headers: Headers }>;
}

export interface TestService extends TestClient {
  service: Service;
  ctx: AppContext;
  database: TestDatabase;
  db: TestDatabase['handle']['db'];
  /** The same app without a session cookie. */
  anonymous: TestClient;
  close(): Promise<void>;
}

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    FLEET_SECRET_KEY: TEST_SECRET_KEY,
    ADMIN_EMAIL: 'admin@fleet.local',
    ADMIN_PASSWORD: 'admin',
    ...env,
  });
}

function client(app: Service['app'], cookie?: () => string | undefined): TestClient {
  const request = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const h: Record<string, string> = { ...headers };
    const c = cookie?.();
    if (c) h.cookie = c;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    return Promise.resolve(app.request(path, { method, headers: h, body: payload }));
  };
  return {
    request,
    async json(method, path, body, headers) {
      const res = await request(method, path, body, headers);
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
    },
  };
}

/** Signs in through the documented curl flow and returns the session cookie. */
export async function signIn(app: Service['app'], email = 'admin@fleet.local', password = 'admin'): Promise<string> {
  const csrf = (await (await app.request('/api/auth/csrf')).json()) as { csrfToken: string };
  const res = await app.request('/api/auth/callback/credentials', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ email, password, csrfToken: csrf.csrfToken }).toString(),
  });
  if (res.status !== 200) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`);
  const setCookie = res.headers.get('set-cookie') ?? '';
  return setCookie.split(';')[0]!;
}

export async function startTestService(
  opts: { env?: Record<string, string>; overrides?: Partial<AppContext> } = {},
): Promise<TestService> {
  const database = await createTestDatabase();
  const config = testConfig({ DATABASE_URL: database.url, ...opts.env });
  const service = await createService(config, {
    database: database.handle,
    logger: createLogger(config.LOG_LEVEL),
    secrets: new SecretBox(TEST_SECRET_KEY),
    ...opts.overrides,
  });
  const cookie = await signIn(service.app, config.ADMIN_EMAIL, config.ADMIN_PASSWORD);
  const authed = client(service.app, () => cookie);
  return {
    ...authed,
    service,
    ctx: service.ctx,
    database,
    db: database.handle.db,
    anonymous: client(service.app),
    async close() {
      await service.reconciler.stop();
      // The inbox's retry timer would otherwise drain a dropped database.
      const inbox = webhookInbox(service.ctx);
      inbox.close();
      await inbox.idle();
      // Every per-annotator database of this installation in its namespace, among them those the
      // reconciler made ahead of a start (drop leaves another installation's alone). Read from the
      // server, not the fleet database: a test may have stopped the service and its pool already.
      const dbs = service.ctx.instanceDatabases;
      for (const name of await dbs.listNames().catch(() => [])) await dbs.drop(Number(name.slice(name.lastIndexOf('_') + 1))).catch(() => {});
      await dbs.close().catch(() => {});
      await database.drop();
    },
  };
}
