/** API keys: create/list/revoke, Bearer authentication within scopes, request ids on every key response. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/crypto.ts';
import { createApp, PUBLIC_ROUTES } from '../../src/api/app.ts';
import { ROUTE_SCOPES } from '../../src/auth/api-keys.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
beforeAll(async () => {
  t = await startTestService();
});
afterAll(async () => t?.close());

async function createKey(scopes: string[], extra: Record<string, unknown> = {}) {
  const res = await t.json('POST', '/api/api-keys', { name: `key ${scopes.join('+')}`, scopes, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: number; key: string; prefix: string };
}

const asKey = (key: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  t.anonymous.json(method, path, body, { authorization: `Bearer ${key}`, ...headers });

describe('API keys: management', () => {
  it('shows the secret once, stores only its hash, and lists keys without it', async () => {
    const created = await createKey(['read']);
    expect(created.key).toMatch(/^lf_[A-Za-z0-9_-]{43}$/);
    expect(created).toMatchObject({ prefix: created.key.slice(0, 11), scopes: ['read'], status: 'active', expiresAt: null, revokedAt: null, lastUsedAt: null });
    const row = await t.db.selectFrom('apiKeys').selectAll().where('id', '=', created.id).executeTakeFirstOrThrow();
    expect(row.keyHash).toBe(sha256(created.key));
    expect(JSON.stringify(row)).not.toContain(created.key);

    const list = await t.json('GET', '/api/api-keys');
    expect(list.status).toBe(200);
    expect(list.headers.get('x-total-count')).toBe(String(list.body.length));
    expect(JSON.stringify(list.body)).not.toContain(created.key);
    const one = await t.json('GET', `/api/api-keys/${created.id}`);
    expect(one.body).not.toHaveProperty('key');
    expect(one.body.prefix).toBe(created.prefix);
  });

  it('refuses bad bodies with 400', async () => {
    const future = new Date(Date.now() + 3_600_000).toISOString();
    for (const body of [
      {},
      { name: '', scopes: ['read'] },
      { name: 'x', scopes: [] },
      { name: 'x', scopes: ['superuser'] },
      { name: 'x', scopes: ['read', 'read'] },
      { name: 'x', scopes: ['read'], expiresAt: 'tomorrow' },
      { name: 'x', scopes: ['read'], expiresAt: '2020-01-01T00:00:00Z' },
      { name: 'x', scopes: ['read'], expiresAt: future, extra: true },
    ]) {
      const res = await t.json('POST', '/api/api-keys', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toBeTruthy();
    }
    expect((await t.json('GET', '/api/api-keys/999999')).status).toBe(404);
    expect((await t.json('DELETE', '/api/api-keys/999999')).status).toBe(404);
  });
});

describe('API keys: Bearer authentication within scopes', () => {
  it('a read key reads everything the cookie reads, and is refused (403) on a write, changing nothing', async () => {
    const { key } = await createKey(['read']);
    for (const path of [
      '/api/annotators',
      '/api/workflows',
      '/api/workflows/graph',
      '/api/roles',
      '/api/labeling-configs',
      '/api/gold-tasks',
      '/api/assignments',
      '/api/rejections',
      '/api/events',
      '/api/settings',
      '/api/monitoring',
      '/api/monitoring/throughput',
      '/api/quality',
    ]) {
      const res = await asKey(key, 'GET', path);
      expect(res.status, path).toBe(200);
      const cookie = await t.json('GET', path);
      expect(cookie.status).toBe(200);
    }
    const before = await t.db.selectFrom('roles').select(t.db.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const refused = await asKey(key, 'POST', '/api/roles', { name: 'by-read-key' });
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual({ error: 'Forbidden: this API key lacks the write scope', details: { required: 'write', granted: ['read'] } });
    const after = await t.db.selectFrom('roles').select(t.db.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(after.n)).toBe(Number(before.n));
  });

  it('a write key changes things but not settings, keys or webhooks (admin)', async () => {
    const { key } = await createKey(['write']);
    const role = await asKey(key, 'POST', '/api/roles', { name: 'by-write-key' });
    expect(role.status).toBe(201);
    expect((await asKey(key, 'PUT', `/api/roles/${role.body.id}`, { color: '#000000' })).status).toBe(200);
    expect((await asKey(key, 'GET', `/api/roles/${role.body.id}`)).status).toBe(200);
    for (const [method, path, body] of [
      ['PUT', '/api/settings/quality.minEvaluations', { value: 3 }],
      ['GET', '/api/api-keys', undefined],
      ['POST', '/api/api-keys', { name: 'escalate', scopes: ['admin'] }],
      ['GET', '/api/webhook-subscriptions', undefined],
      ['POST', '/api/annotators/1/password', undefined],
    ] as const) {
      const res = await asKey(key, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.body.details.required).toBe('admin');
    }
    expect((await asKey(key, 'DELETE', `/api/roles/${role.body.id}`)).status).toBe(200);
  });

  it('an admin key manages keys and settings; what a key creates is recorded in its creator’s name', async () => {
    const { key } = await createKey(['admin']);
    const child = await asKey(key, 'POST', '/api/api-keys', { name: 'made by a key', scopes: ['read'] });
    expect(child.status).toBe(201);
    const admin = await t.db.selectFrom('adminUsers').select('id').executeTakeFirstOrThrow();
    expect(child.body.createdBy).toBe(admin.id);
    expect((await asKey(key, 'PUT', '/api/settings/quality.minEvaluations', { value: 4 })).status).toBe(200);
  });

  it('refuses unknown, malformed, revoked (at once) and expired keys with 401', async () => {
    const unknown = await asKey(`lf_${'A'.repeat(43)}`, 'GET', '/api/roles');
    expect(unknown.status).toBe(401);
    expect(unknown.body.error).toBe('Unauthorized: unknown API key');
    expect(unknown.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
    expect((await asKey('not-a-key', 'GET', '/api/roles')).status).toBe(401);
    // A bearer token wins over a valid session cookie: the caller meant the key.
    expect((await t.json('GET', '/api/roles', undefined, { authorization: 'Bearer nope' })).status).toBe(401);

    const revoked = await createKey(['admin']);
    expect((await asKey(revoked.key, 'GET', '/api/roles')).status).toBe(200);
    expect((await t.json('DELETE', `/api/api-keys/${revoked.id}`)).body).toEqual({ success: true });
    const after = await asKey(revoked.key, 'GET', '/api/roles');
    expect(after.status).toBe(401);
    expect(after.body.error).toBe('Unauthorized: API key revoked');
    expect((await t.json('DELETE', `/api/api-keys/${revoked.id}`)).status).toBe(200);
    expect((await t.json('GET', `/api/api-keys/${revoked.id}`)).body.status).toBe('revoked');

    const expiring = await createKey(['read'], { expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
    expect((await asKey(expiring.key, 'GET', '/api/roles')).status).toBe(200);
    await t.db.updateTable('apiKeys').set({ expiresAt: new Date(Date.now() - 1000) }).where('id', '=', expiring.id).execute();
    const expired = await asKey(expiring.key, 'GET', '/api/roles');
    expect(expired.status).toBe(401);
    expect(expired.body.error).toBe('Unauthorized: API key expired');
    expect((await t.json('GET', `/api/api-keys/${expiring.id}`)).body.status).toBe('expired');
  });

  it('records when a key was last used', async () => {
    const { id, key } = await createKey(['read']);
    expect((await t.json('GET', `/api/api-keys/${id}`)).body.lastUsedAt).toBeNull();
    await asKey(key, 'GET', '/api/roles');
    const used = (await t.json('GET', `/api/api-keys/${id}`)).body.lastUsedAt;
    expect(Date.now() - Date.parse(used)).toBeLessThan(120_000);
  });

  it('names the request id in every response to a key, errors included', async () => {
    const { key } = await createKey(['read']);
    for (const [method, path, status] of [
      ['GET', '/api/roles', 200],
      ['GET', '/api/roles/999999', 404],
      ['GET', '/api/roles/abc', 400],
      ['POST', '/api/roles', 403],
    ] as const) {
      const res = await asKey(key, method, path, method === 'POST' ? { name: 'x' } : undefined);
      expect(res.status).toBe(status);
      expect(res.headers.get('x-request-id'), `${method} ${path}`).toMatch(/^[0-9a-f-]{36}$/);
    }
    const mine = await asKey(key, 'GET', '/api/roles', undefined, { 'x-request-id': 'pipeline-run-42' });
    expect(mine.headers.get('x-request-id')).toBe('pipeline-run-42');
    const unauthorized = await asKey(`lf_${'B'.repeat(43)}`, 'GET', '/api/roles', undefined, { 'x-request-id': 'who-am-i' });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get('x-request-id')).toBe('who-am-i');
  });
});

describe('the scope table', () => {
  it('names the scope of every route that is not public, and only routes that exist', () => {
    const app = createApp(t.ctx);
    const routes = [...new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`))];
    const concrete = (p: string) => p.replace(/:[^/]+/g, '1');
    const guarded = routes.filter((r) => !PUBLIC_ROUTES.some((p) => p.path.test(concrete(r.split(' ')[1]!))));
    expect(guarded.filter((r) => !(r in ROUTE_SCOPES))).toEqual([]);
    expect(Object.keys(ROUTE_SCOPES).filter((r) => !routes.includes(r))).toEqual([]);
    // Reads need read; every admin route is one that hands out credentials or changes the service.
    expect(guarded.filter((r) => r.startsWith('GET ') && ROUTE_SCOPES[r] === 'write')).toEqual([]);
    expect(
      Object.entries(ROUTE_SCOPES)
        .filter(([, s]) => s === 'admin')
        .map(([r]) => r.split(' ')[1]!.split('/')[2])
        .filter((resource, i, all) => all.indexOf(resource) === i),
    ).toEqual(['annotators', 'settings', 'api-keys', 'webhook-subscriptions']);
  });
});

describe('the OpenAPI document', () => {
  it('documents the bearer scheme with scopes, the headers, and the outbound webhooks (OpenAPI 3.1 webhooks)', async () => {
    const doc = (await t.anonymous.json('GET', '/api/openapi.json')).body;
    expect(doc.components.securitySchemes).toMatchObject({
      apiKey: { type: 'http', scheme: 'bearer', bearerFormat: 'lf_…' },
      sessionCookie: { type: 'apiKey', in: 'cookie', name: 'next-auth.session-token' },
    });
    expect(doc.paths['/api/roles'].post.security).toEqual([{ sessionCookie: [] }, { apiKey: ['write'] }]);
    expect(doc.paths['/api/roles'].get.security).toEqual([{ sessionCookie: [] }, { apiKey: ['read'] }]);
    expect(doc.paths['/api/api-keys'].post.security).toEqual([{ sessionCookie: [] }, { apiKey: ['admin'] }]);
    expect(doc.paths['/api/health'].get.security).toEqual([]); // public: no credential
    expect(doc.paths['/api/roles'].post.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'Idempotency-Key', in: 'header' })]));
    expect(doc.paths['/api/roles'].post.responses['422']).toBeDefined();
    expect(doc.paths['/api/roles'].post.responses['201'].headers).toHaveProperty('Idempotent-Replayed');
    expect(doc.paths['/api/roles'].get.responses['429'].headers['Retry-After']).toBeDefined();
    expect(doc.paths['/api/roles'].get.responses['200'].headers).toHaveProperty('X-Request-Id');
    expect(doc.paths['/api/roles'].get.responses['200'].headers).toHaveProperty('RateLimit');
    expect(Object.keys(doc.webhooks).sort()).toEqual(['annotator.error', 'annotator.flagged', 'batch.completed', 'batch.failed', 'catalog.keys_skipped', 'item.adjudication_needed', 'item.rejected']);
    const completed = doc.webhooks['batch.completed'].post;
    expect(completed.parameters.map((p: { name: string }) => p.name)).toEqual(['webhook-id', 'webhook-timestamp', 'webhook-signature']);
    const schema = completed.requestBody.content['application/json'].schema;
    expect(schema.properties.type).toMatchObject({ type: 'string', enum: ['batch.completed'] });
    expect(JSON.stringify(doc.components.schemas.BatchCompletedData)).toContain('jsonlKey');
    // Existing routes' documented responses are unchanged: still the same schemas.
    expect(doc.paths['/api/roles'].get.responses['200'].content['application/json'].schema).toEqual({ type: 'array', items: { $ref: '#/components/schemas/Role' } });
    expect(doc.paths['/api/workflows/{id}/export']).toBeDefined();
    expect(doc.paths['/api/monitoring/throughput']).toBeDefined();
  });
});
