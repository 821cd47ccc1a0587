import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { upsertAdmin } from '../../src/auth/admins.ts';
import { sha256 } from '../../src/crypto.ts';
import { freePort } from '../helpers/process.ts';
import { signIn, startTestService, type TestService } from '../helpers/service.ts';
import { countStatements } from '../helpers/statements.ts';

let t: TestService;
beforeAll(async () => {
  t = await startTestService({ env: { LOGIN_MAX_FAILURES: '3', LOGIN_LOCKOUT_SECONDS: '120' } });
});
afterAll(async () => t?.close());

const csrf = async () => (await t.anonymous.json('GET', '/api/auth/csrf')).body.csrfToken as string;

function login(fields: Record<string, string>, type: 'form' | 'json' = 'form', headers: Record<string, string> = {}) {
  const body = type === 'form' ? new URLSearchParams(fields).toString() : JSON.stringify(fields);
  const contentType = type === 'form' ? 'application/x-www-form-urlencoded' : 'application/json';
  return t.service.app.request('/api/auth/callback/credentials', {
    method: 'POST',
    headers: { 'content-type': contentType, ...headers },
    body,
  });
}

describe('sign-in (NextAuth credentials flow)', () => {
  it('sets an HttpOnly SameSite=Lax cookie that opens the API, and signout revokes it', async () => {
    const res = await login({ email: 'admin@fleet.local', password: 'admin', csrfToken: await csrf() });
    expect(res.status).toBe(200);
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^next-auth\.session-token=/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).not.toMatch(/Secure/);
    const session = cookie.split(';')[0]!;

    const ok = await t.service.app.request('/api/roles', { headers: { cookie: session } });
    expect(ok.status).toBe(200);
    const who = await (await t.service.app.request('/api/auth/session', { headers: { cookie: session } })).json();
    expect(who.user.email).toBe('admin@fleet.local');

    await t.service.app.request('/api/auth/signout', { method: 'POST', headers: { cookie: session } });
    expect((await t.service.app.request('/api/roles', { headers: { cookie: session } })).status).toBe(401);
    expect(await (await t.service.app.request('/api/auth/session', { headers: { cookie: session } })).json()).toEqual({});
  });

  it('accepts JSON too, and marks the cookie Secure over https', async () => {
    const res = await login({ email: 'ADMIN@fleet.local', password: 'admin', csrfToken: await csrf() }, 'json', {
      'x-forwarded-proto': 'https',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toMatch(/^__Secure-next-auth\.session-token=.*Secure/);
    // The scheme in any case, and the first entry of a proxy chain (the browser's side).
    for (const [proto, secure] of [['HTTPS', true], [' https , http', true], ['http, https', false], ['http', false]] as const) {
      const r = await login({ email: 'admin@fleet.local', password: 'admin', csrfToken: await csrf() }, 'json', { 'x-forwarded-proto': proto });
      expect(r.status, proto).toBe(200);
      const cookie = r.headers.get('set-cookie')!;
      expect([cookie.startsWith('__Secure-next-auth.session-token='), /; Secure/.test(cookie)], proto).toEqual([secure, secure]);
    }
  });

  it('stores only a hash of the session token', async () => {
    const cookie = await signIn(t.service.app);
    const token = decodeURIComponent(cookie.split('=')[1]!);
    const rows = await t.db.selectFrom('sessions').select('tokenHash').execute();
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.some((r) => r.tokenHash === token)).toBe(false);
  });

  it('answers 401 in the error shape for a bad password or csrf token', async () => {
    const bad = await login({ email: 'admin@fleet.local', password: 'nope', csrfToken: await csrf() });
    expect(bad.status).toBe(401);
    expect(await bad.json()).toEqual({ error: 'Invalid email or password' });
    const forged = await login({ email: 'admin@fleet.local', password: 'admin', csrfToken: 'abc.123.def' });
    expect(forged.status).toBe(401);
    expect((await login({ email: 'admin@fleet.local', password: 'admin' })).status).toBe(401);
  });

  it('throttles repeated failures for one email with 429 and Retry-After, even for the right password', async () => {
    await t.db.insertInto('adminUsers').values({ email: 'ops@fleet.local', passwordHash: 'x' }).execute();
    const { upsertAdmin } = await import('../../src/auth/admins.ts');
    await upsertAdmin(t.db, 'ops@fleet.local', 'right-password');
    for (let i = 0; i < 3; i++) {
      expect((await login({ email: 'ops@fleet.local', password: 'wrong', csrfToken: await csrf() })).status).toBe(401);
    }
    const locked = await login({ email: 'ops@fleet.local', password: 'right-password', csrfToken: await csrf() });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await locked.json()).error).toMatch(/too many/i);
    // Another email is not affected.
    expect((await login({ email: 'admin@fleet.local', password: 'admin', csrfToken: await csrf() })).status).toBe(200);
  });

  it('rejects a body that is neither form nor JSON', async () => {
    const res = await t.service.app.request('/api/auth/callback/credentials', { method: 'POST', body: 'x' });
    expect(res.status).toBe(415);
    expect((await res.json()).error).toBe('Unsupported Media Type');
  });
});

describe('the default password', () => {
  it('signs in only from this machine: not from another client, nor through a DNS-rebinding host name', async () => {
    const port = await freePort();
    // One proxy of ours in front: X-Forwarded-For stands for clients elsewhere.
    const s = await startTestService({ env: { HOST: '127.0.0.1', PORT: String(port), TRUST_PROXY_HOPS: '1' } });
    try {
      await s.service.start({ reconcile: false });
      // node:http, not fetch: fetch does not send a Host header of our choosing.
      const attempt = async (headers: Record<string, string>, password = 'admin') => {
        const { csrfToken } = (await (await fetch(`http://127.0.0.1:${port}/api/auth/csrf`)).json()) as { csrfToken: string };
        const body = JSON.stringify({ email: 'admin@fleet.local', password, csrfToken });
        return new Promise<{ status: number; cookie: string | null; body: unknown }>((resolve, reject) => {
          const req = http.request(
            { host: '127.0.0.1', port, path: '/api/auth/callback/credentials', method: 'POST', headers: { 'content-type': 'application/json', ...headers } },
            (res) => {
              let text = '';
              res.on('data', (d) => (text += d));
              res.on('end', () => resolve({ status: res.statusCode!, cookie: res.headers['set-cookie']?.[0] ?? null, body: JSON.parse(text) }));
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      };
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `127.0.0.2:${port}`]) {
        const here = await attempt({ host });
        expect([host, here.status, here.cookie]).toEqual([host, 200, expect.stringMatching(/^next-auth\.session-token=/)]);
      }
      const refused = {
        status: 403,
        cookie: null,
        body: { error: 'The default password signs in only from this machine (http://localhost): set ADMIN_PASSWORD or run `fleet admin passwd`' },
      };
      // A page whose name was rebound to 127.0.0.1 asks for its own host.
      for (const host of [`rebind.example:${port}`, `localhost.rebind.example:${port}`, `10.0.0.5:${port}`]) {
        expect(await attempt({ host }), host).toEqual(refused);
      }
      // Clients elsewhere, as our proxy reports them (a loopback proxy does not make them local).
      for (const xff of ['198.51.100.7', '2001:db8::7', '127.0.0.1, 198.51.100.8']) {
        expect(await attempt({ 'x-forwarded-for': xff }), xff).toEqual(refused);
      }
      expect(await attempt({ 'x-forwarded-for': '127.0.0.1' })).toMatchObject({ status: 200 });
      // A wrong password from elsewhere is the usual 401: the rule speaks only to the right one.
      expect(await attempt({ 'x-forwarded-for': '198.51.100.9' }, 'wrong')).toMatchObject({ status: 401 });
      // With its own password, the admin signs in from anywhere.
      const { upsertAdmin } = await import('../../src/auth/admins.ts');
      await upsertAdmin(s.db, 'admin@fleet.local', 'not the default');
      expect(await attempt({ 'x-forwarded-for': '198.51.100.7', host: `rebind.example:${port}` }, 'not the default')).toMatchObject({ status: 200 });
    } finally {
      await s.service.stop();
      await s.close();
    }
  });
});

describe('public endpoints', () => {
  it('serves health and version without a session, and echoes a request id', async () => {
    const health = await t.service.app.request('/api/health');
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', database: 'connected' });
    expect(health.headers.get('x-request-id')).toBeTruthy();
    const version = await (await t.service.app.request('/api/version')).json();
    expect(version).toMatchObject({ version: '0.1.0', apiVersion: 'v1', node: process.version });
    expect(version.features).toContain('workflow-chaining');
  });

  it('serves the OpenAPI 3.1 document and the docs page', async () => {
    const doc = await (await t.service.app.request('/api/openapi.json')).json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toContain('/api/roles/{id}');
    const page = await t.service.app.request('/api/docs');
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/src="\/api\/docs\/init\.js"/);
    expect(await (await t.service.app.request('/api/docs/init.js')).text()).toMatch(/url: '\/api\/openapi\.json'/);
  });

  it('answers unknown routes with 404 in the error shape', async () => {
    const res = await t.json('GET', '/api/nope');
    expect(res.status).toBe(404);
    expect(res.body.error).toMatch(/No route/);
  });

  it('answers a served path asked with a method it does not serve with 405, Allow and the error shape', async () => {
    const item = await t.json('PATCH', '/api/roles/1', { name: 'x' });
    expect(item.status).toBe(405);
    expect(item.headers.get('allow')).toBe('DELETE, GET, HEAD, PUT');
    expect(item.body).toEqual({ error: 'Method PATCH not allowed on /api/roles/1', details: { allow: ['DELETE', 'GET', 'HEAD', 'PUT'] } });
    const list = await t.json('DELETE', '/api/workflows');
    expect(list.status).toBe(405);
    expect(list.headers.get('allow')).toBe('GET, HEAD, POST');
    // A literal segment beats a parameter: /workflows/graph is its own path, not /workflows/:id.
    expect((await t.json('POST', '/api/workflows/graph')).headers.get('allow')).toBe('GET, HEAD');
    expect((await t.json('PUT', '/api/workflows/graph')).headers.get('allow')).toBe('GET, HEAD');
    const bulk = await t.json('PUT', '/api/annotators/bulk', { ids: [1] });
    expect(bulk.status).toBe(405);
    expect(bulk.headers.get('allow')).toBe('DELETE, POST');
    // Unknown paths stay 404.
    expect((await t.json('PATCH', '/api/nope/1')).status).toBe(404);
    // Without a session the gate answers first, as for every non-public path.
    expect((await t.anonymous.json('PATCH', '/api/roles/1')).status).toBe(401);
  });
});

describe('a read that checks the session in its own statement (GET /api/annotators)', () => {
  const list = (cookie: string | undefined, query = '') =>
    t.service.app.request(`/api/annotators${query}`, { headers: cookie === undefined ? {} : { cookie } });
  const answer = async (res: Response) => ({ status: res.status, body: await res.json(), total: res.headers.get('x-total-count') });
  const unauthorized = { status: 401, body: { error: 'Unauthorized' }, total: null };

  it('lists with a live session in one statement, and answers 401 for every way a session ends', async () => {
    await t.json('POST', '/api/annotators', { name: 'Session Reader', email: 'session-reader@fleet.local' });
    await upsertAdmin(t.db, 'reader@fleet.local', 'reader-password-1');
    const cookies = {
      signedOut: await signIn(t.service.app),
      expired: await signIn(t.service.app),
      passwordChanged: await signIn(t.service.app, 'reader@fleet.local', 'reader-password-1'),
      adminRemoved: await signIn(t.service.app, 'reader@fleet.local', 'reader-password-1'),
    };
    for (const cookie of Object.values(cookies)) expect((await list(cookie)).status).toBe(200);

    // One round trip: the session is checked by the page's own statement.
    const { result, count } = await countStatements(async () => answer(await list(cookies.signedOut)));
    expect(result).toMatchObject({ status: 200, total: '1' });
    expect(result.body.map((a: { email: string }) => a.email)).toEqual(['session-reader@fleet.local']);
    expect(count.statements).toBe(1);

    await t.service.app.request('/api/auth/signout', { method: 'POST', headers: { cookie: cookies.signedOut } });
    const hashOf = (cookie: string) => sha256(cookie.split('=')[1]!);
    await t.db.updateTable('sessions').set({ expiresAt: sql<Date>`now() - interval '1 second'` }).where('tokenHash', '=', hashOf(cookies.expired)).execute();
    // `fleet admin passwd` revokes the admin's sessions (src/cli.ts).
    await t.db.updateTable('sessions').set({ revokedAt: new Date() }).where('tokenHash', '=', hashOf(cookies.passwordChanged)).execute();
    await t.db.deleteFrom('adminUsers').where('email', '=', 'reader@fleet.local').execute();
    for (const [how, cookie] of Object.entries(cookies)) expect(await answer(await list(cookie)), how).toEqual(unauthorized);

    // No cookie, a token never issued, one too long to be ours.
    for (const cookie of [undefined, 'next-auth.session-token=forged', `next-auth.session-token=${'x'.repeat(300)}`]) {
      expect(await answer(await list(cookie)), String(cookie).slice(0, 40)).toEqual(unauthorized);
    }
  });

  it('answers 401, not 400 or an empty page, without a live session; a live one gets the 400 and the past-the-end page', async () => {
    const live = await signIn(t.service.app);
    const ended = await signIn(t.service.app);
    await t.service.app.request('/api/auth/signout', { method: 'POST', headers: { cookie: ended } });

    expect((await list(live, '?limit=abc')).status).toBe(400);
    expect(await answer(await list(ended, '?limit=abc'))).toEqual(unauthorized);

    const total = String((await answer(await list(live))).body.length);
    expect(await answer(await list(live, '?offset=100000'))).toEqual({ status: 200, body: [], total });
    expect(await answer(await list(ended, '?offset=100000'))).toEqual(unauthorized);
    expect(await answer(await list(ended, '?status=deleted'))).toEqual(unauthorized);
  });
});
