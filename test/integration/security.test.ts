/**
 * Issue 9, as an attacker and a browser would try it: cross-site requests, the sign-in throttle
 * (in parallel, per client, with backoff), redirects, 405s derived from the route table, the
 * purge, the OpenAPI security schemes and the docs page offline.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/process.ts';
import { signIn, startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let base: string;
const HOST = 'fleet.example.test';
// Not the default: the default password signs in only from this machine, and these clients are not.
const PASSWORD = 'a password of its own';

beforeAll(async () => {
  const port = await freePort();
  t = await startTestService({
    env: {
      HOST: '127.0.0.1',
      PORT: String(port),
      LOGIN_MAX_FAILURES: '5',
      LOGIN_CLIENT_MAX_ATTEMPTS: '20',
      LOGIN_LOCKOUT_SECONDS: '30',
      // The test is its own proxy: each X-Forwarded-For value is a different client.
      TRUST_PROXY_HOPS: '1',
      ADMIN_PASSWORD: PASSWORD,
    },
  });
  await t.service.start({ reconcile: false });
  base = `http://127.0.0.1:${port}`;
}, 120_000);
afterAll(async () => {
  await t?.service.stop().catch(() => {});
  await t?.close();
});

/** A request with the admin's session cookie, as a browser at HOST would send it. */
function asBrowser(method: string, path: string, headers: Record<string, string>, body?: string) {
  return t.request(method, path, body, { host: HOST, ...headers });
}

describe('cross-site requests (CSRF)', () => {
  const other = { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' };

  it('refuses every state-changing route of the route table when a browser sends it for another site', async () => {
    const headerAuthenticated = [/\/token$/, /^\/api\/webhook$/];
    const routes = t.service.app.routes.filter(
      (r) => !['ALL', 'GET'].includes(r.method) && !headerAuthenticated.some((p) => p.test(r.path)),
    );
    expect(routes.length).toBeGreaterThan(30);
    for (const r of routes) {
      const path = r.path.replace(/:[^/]+/g, '1');
      for (const headers of [other, { 'sec-fetch-site': 'same-site', origin: `https://ls.${HOST}` }, { origin: 'https://evil.example' }, { origin: 'null' }]) {
        const res = await asBrowser(r.method, path, { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, 'a=1');
        expect(res.status, `${r.method} ${path} ${JSON.stringify(headers)}`).toBe(403);
        expect(await res.json()).toEqual({ error: 'Cross-site request refused', details: { reason: expect.stringMatching(/same origin|this origin/) } });
      }
    }
  });

  it('covers bodiless posts, JSON, form posts and paths outside /api; nothing changes', async () => {
    const { body: created } = await t.json('POST', '/api/annotators', { name: 'Csrf Target', email: 'csrf@example.com' });
    for (const path of [`/api/annotators/${created.id}/start`, `/api/annotators/${created.id}/password`, '/api/reconcile']) {
      expect((await asBrowser('POST', path, other)).status, path).toBe(403);
    }
    expect((await asBrowser('PUT', `/api/annotators/${created.id}`, { ...other, 'content-type': 'application/json' }, '{"name":"Pwned"}')).status).toBe(403);
    expect((await asBrowser('DELETE', `/api/annotators/${created.id}`, other)).status).toBe(403);
    expect((await asBrowser('POST', '/console/anything', other)).status).toBe(403);
    const after = await t.json('GET', `/api/annotators/${created.id}`);
    expect(after.body).toMatchObject({ name: 'Csrf Target', status: 'created' });
    const events = await t.db.selectFrom('containerEvents').select('eventType').where('annotatorId', '=', created.id).execute();
    expect(events.map((e) => e.eventType)).toEqual(['created']);
    // A cross-site sign-out and sign-in are refused too (login CSRF).
    expect((await asBrowser('POST', '/api/auth/signout', other)).status).toBe(403);
    expect((await t.request('GET', '/api/roles')).status).toBe(200);
  });

  it('lets same-origin browsers, typed-in navigations and clients without Origin through', async () => {
    const { body: role } = await t.json('POST', '/api/roles', { name: 'Same Origin' });
    for (const headers of <Record<string, string>[]>[
      { 'sec-fetch-site': 'same-origin', origin: `http://${HOST}` },
      { 'sec-fetch-site': 'none' },
      { origin: `http://${HOST}` },
      { origin: `https://${HOST.toUpperCase()}` },
      {},
    ]) {
      const res = await asBrowser('PUT', `/api/roles/${role.id}`, { ...headers, 'content-type': 'application/json' }, '{"description":"ok"}');
      expect(res.status, JSON.stringify(headers)).toBe(200);
    }
    // Header credentials are not the browser's to attach: the secret decides, not the Origin.
    const webhook = await asBrowser('POST', '/api/webhook', { ...other, 'content-type': 'application/json', 'x-annotator-id': '1', 'x-webhook-secret': 'x' }, '{}');
    expect(webhook.status).toBe(401);
  });
});

describe('sign-in throttle', () => {
  const csrf = async () => ((await (await fetch(`${base}/api/auth/csrf`)).json()) as { csrfToken: string }).csrfToken;
  async function login(client: string, email: string, password: string) {
    const res = await fetch(`${base}/api/auth/callback/credentials`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': client },
      body: JSON.stringify({ email, password, csrfToken: await csrf() }),
    });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() };
  }
  const throttleRow = (key: string) =>
    t.db
      .selectFrom('loginThrottle')
      .select(['attempts', 'strikes', sql<number>`extract(epoch FROM blocked_until - last_attempt_at)::float8`.as('blockSeconds')])
      .where('key', '=', key)
      .executeTakeFirst();

  it('verifies no more than the limit however many guesses arrive at once', async () => {
    const results = await Promise.all(Array.from({ length: 60 }, () => login('203.0.113.10', 'admin@fleet.local', 'wrong')));
    const counts = results.reduce<Record<number, number>>((n, r) => ((n[r.status] = (n[r.status] ?? 0) + 1), n), {});
    expect(counts).toEqual({ 401: 5, 429: 55 });
    const refused = results.find((r) => r.status === 429)!;
    expect(refused.body).toEqual({ error: 'Too many failed sign-in attempts; try again later' });
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(30);
    // The right password from the same client waits too...
    expect((await login('203.0.113.10', 'admin@fleet.local', PASSWORD)).status).toBe(429);
    // ...but the stranger has not locked the admin out: from anywhere else it signs in.
    expect((await login('198.51.100.7', 'admin@fleet.local', PASSWORD)).status).toBe(200);
  });

  it('doubles the block with each round of failures', async () => {
    const client = '203.0.113.20';
    const email = 'nobody@fleet.local';
    for (let round = 1; round <= 2; round++) {
      for (let i = 0; i < 5; i++) expect((await login(client, email, 'wrong')).status).toBe(401);
      expect((await login(client, email, 'wrong')).status).toBe(429);
      expect(await throttleRow(`pair:${client}|${email}`)).toEqual({ attempts: 5, strikes: round, blockSeconds: 30 * 2 ** (round - 1) });
      // Let the block run out (as 30 s of waiting would).
      await t.db.updateTable('loginThrottle').set({ blockedUntil: sql`now()` }).where('key', '=', `pair:${client}|${email}`).execute();
    }
  });

  it('holds each client to a ceiling over all emails, counted before verifying, in parallel too', async () => {
    const client = '203.0.113.30';
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => login(client, `user${i}@fleet.local`, 'wrong')));
    expect(results.filter((r) => r.status === 401)).toHaveLength(20);
    expect(results.filter((r) => r.status === 429)).toHaveLength(20);
    expect((await login(client, 'admin@fleet.local', PASSWORD)).status).toBe(429);
    expect((await login('203.0.113.31', 'admin@fleet.local', PASSWORD)).status).toBe(200);
  });

  it('gives a client its attempt back when the password was right', async () => {
    const client = '203.0.113.40';
    for (let i = 0; i < 4; i++) expect((await login(client, 'admin@fleet.local', 'wrong')).status).toBe(401);
    expect((await login(client, 'admin@fleet.local', PASSWORD)).status).toBe(200);
    expect(await throttleRow(`pair:${client}|admin@fleet.local`)).toBeUndefined();
    expect((await throttleRow(`client:${client}`))?.attempts).toBe(4);
  });

  it('reads X-Forwarded-For only as deep as TRUST_PROXY_HOPS says', async () => {
    // Hops = 1: of "a, b" the client is b (the entry our one proxy appended).
    expect((await login('192.0.2.99, 203.0.113.50', 'x@fleet.local', 'wrong')).status).toBe(401);
    expect(await throttleRow('client:203.0.113.50')).toMatchObject({ attempts: 1 });
    expect(await throttleRow('client:192.0.2.99')).toBeUndefined();
    // IPv6 clients are their /64.
    expect((await login('2001:db8:1:2::abcd', 'x@fleet.local', 'wrong')).status).toBe(401);
    expect(await throttleRow('client:2001:db8:1:2::/64')).toMatchObject({ attempts: 1 });
  });
});

describe('redirects after sign-in', () => {
  it('answer only paths on this origin', async () => {
    const cases: [string, string][] = [
      ['/api/roles?x=1#top', '/api/roles?x=1#top'],
      ['http://localhost/dashboard', '/dashboard'],
      ['//evil.example/x', '/'],
      ['/\\evil.example', '/'],
      ['\\\\evil.example', '/'],
      ['/\t/evil.example', '/'],
      ['https://evil.example/', '/'],
      ['javascript:alert(1)', '/'],
      ['/.//evil.example', '/evil.example'],
      ['relative/path', '/relative/path'],
    ];
    for (const [callbackUrl, url] of cases) {
      const { csrfToken } = (await (await t.service.app.request('/api/auth/csrf')).json()) as { csrfToken: string };
      const res = await t.service.app.request('/api/auth/callback/credentials', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'admin@fleet.local', password: PASSWORD, csrfToken, callbackUrl }),
      });
      expect([callbackUrl, res.status, ((await res.json()) as { url: string }).url]).toEqual([callbackUrl, 200, url]);
    }
  });
});

describe('compressed request bodies', () => {
  it('are refused with 415 and Accept-Encoding on every route, before anything is read; identity passes', async () => {
    const json = JSON.stringify({ name: 'Compressed' });
    const { csrfToken } = (await (await t.service.app.request('/api/auth/csrf')).json()) as { csrfToken: string };
    const credentials = JSON.stringify({ email: 'admin@fleet.local', password: PASSWORD, csrfToken });
    const cookie = await signIn(t.service.app, 'admin@fleet.local', PASSWORD);
    for (const [encoding, compress] of [['gzip', gzipSync], ['deflate', deflateSync], ['br', brotliCompressSync], ['GZIP', gzipSync], ['gzip, identity', gzipSync]] as const) {
      for (const [path, body] of [['/api/roles', json], ['/api/auth/callback/credentials', credentials], ['/api/webhook', '{}']] as const) {
        const res = await t.service.app.request(path, {
          method: 'POST',
          headers: { cookie, 'content-type': 'application/json', 'content-encoding': encoding },
          body: new Uint8Array(compress(Buffer.from(body))),
        });
        expect([encoding, path, res.status, res.headers.get('accept-encoding')]).toEqual([encoding, path, 415, 'identity']);
        expect(await res.json()).toEqual({
          error: 'Unsupported Content-Encoding: send the body uncompressed',
          details: { contentEncoding: encoding, accepted: ['identity'] },
        });
      }
    }
    expect((await t.json('GET', '/api/roles')).body.map((r: { name: string }) => r.name)).not.toContain('Compressed');
    const plain = await t.request('POST', '/api/roles', json, { 'content-encoding': 'identity' });
    expect(plain.status).toBe(201);
  });
});

describe('405 and Allow', () => {
  it('answer every method a path of the route table does not serve, with exactly its methods', async () => {
    // Expected from the route table directly: the methods registered on the very same template.
    const byTemplate = new Map<string, Set<string>>();
    for (const r of t.service.app.routes) {
      if (r.method === 'ALL') continue;
      const key = r.path.replace(/:[^/]+/g, ':');
      const set = byTemplate.get(key) ?? new Set<string>();
      set.add(r.method);
      if (r.method === 'GET') set.add('HEAD');
      byTemplate.set(key, set);
    }
    let checked = 0;
    for (const [template, methods] of byTemplate) {
      const path = template.replace(/:/g, '1');
      const allow = [...methods].sort().join(', ');
      for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].filter((m) => !methods.has(m))) {
        const res = await t.request(method, path);
        expect([`${method} ${path}`, res.status, res.headers.get('allow')]).toEqual([`${method} ${path}`, 405, allow]);
        expect(await res.json()).toEqual({ error: `Method ${method} not allowed on ${path}`, details: { allow: [...methods].sort() } });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(50);
  });
});

describe('purge', () => {
  it('deletes expired and revoked sessions and forgotten throttle rows on its schedule, and keeps the rest', async () => {
    const admin = await t.db.selectFrom('adminUsers').select('id').executeTakeFirstOrThrow();
    const ago = (s: number) => new Date(Date.now() - s * 1000);
    await t.db
      .insertInto('sessions')
      .values([
        { tokenHash: 'e'.repeat(64), adminUserId: admin.id, expiresAt: ago(1) },
        { tokenHash: 'r'.repeat(64), adminUserId: admin.id, expiresAt: ago(-3600), revokedAt: ago(60) },
        { tokenHash: 'l'.repeat(64), adminUserId: admin.id, expiresAt: ago(-3600) },
      ])
      .execute();
    await t.db
      .insertInto('loginThrottle')
      .values([
        { key: 'client:purge-old', attempts: 3, lastAttemptAt: ago(3 * 86400) },
        { key: 'client:purge-recent', attempts: 3, lastAttemptAt: ago(3600) },
        { key: 'client:purge-blocked', attempts: 5, lastAttemptAt: ago(3 * 86400), blockedUntil: ago(-60) },
      ])
      .execute();
    const report = await t.service.reconciler.runOnce({ wait: true });
    expect(report).not.toBe('busy');
    const hashes = (await t.db.selectFrom('sessions').select('tokenHash').execute()).map((r) => r.tokenHash);
    expect(hashes).toContain('l'.repeat(64));
    expect(hashes).not.toContain('e'.repeat(64));
    expect(hashes).not.toContain('r'.repeat(64));
    const keys = (await t.db.selectFrom('loginThrottle').select('key').where('key', 'like', 'client:purge-%').execute()).map((r) => r.key).sort();
    expect(keys).toEqual(['client:purge-blocked', 'client:purge-recent']);
    expect((report as Exclude<typeof report, 'busy'>).steps.purge!.actions[0]).toMatch(/^purged \d+ dead session\(s\), 1 forgotten throttle row\(s\)$/);
  });
});

describe('the API documents how to authenticate, and its docs page needs no network', () => {
  it('declares the cookie, the webhook secret and the metrics bearer, and which route takes which', async () => {
    const doc = await (await t.service.app.request('/api/openapi.json')).json();
    expect(doc.components.securitySchemes).toEqual({
      sessionCookie: expect.objectContaining({ type: 'apiKey', in: 'cookie', name: 'next-auth.session-token' }),
      webhookSecret: expect.objectContaining({ type: 'apiKey', in: 'header', name: 'X-Webhook-Secret' }),
      metricsToken: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
      apiKey: expect.objectContaining({ type: 'http', scheme: 'bearer', bearerFormat: 'lf_…' }),
    });
    expect(doc.security).toEqual([{ sessionCookie: [] }]);
    expect(doc.paths['/api/roles'].get.security).toEqual([{ sessionCookie: [] }, { apiKey: ['read'] }]);
    expect(doc.paths['/api/health'].get.security).toEqual([]);
    expect(doc.paths['/api/auth/callback/credentials'].post.security).toEqual([]);
    expect(doc.paths['/api/webhook'].post.security).toEqual([{ webhookSecret: [] }]);
    expect(doc.paths['/api/annotators/{id}/token'].post.security).toEqual([{ webhookSecret: [] }]);
    expect(doc.paths['/metrics'].get.security).toEqual([{ metricsToken: [] }]);
  });

  it('renders /api/docs in Chromium with every other host unreachable', async () => {
    const page = await fetch(`${base}/api/docs`);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'; script-src 'self'/);
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\//);
    const { stdout } = await promisify(execFile)(
      'chromium',
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
        '--virtual-time-budget=20000',
        '--dump-dom',
        `${base}/api/docs`,
      ],
      { timeout: 180_000, maxBuffer: 64 * 1024 * 1024 },
    );
    expect(stdout).toContain('LabelFleet admin API');
    expect(stdout).toContain('/api/annotators/{id}/start');
    expect(stdout).toMatch(/class="[^"]*authorize/);
  }, 240_000);
});
