/**
 * Rate limits on API-key traffic: per key, shared by two `fleet serve` processes on one database
 * (the counts live in PostgreSQL), with the IETF RateLimit fields, 429 and Retry-After; per client
 * address for every bearer request, valid or not. Session requests are not limited.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-keys.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startFleet, startServing } from '../helpers/process.ts';
import { startTestService, TEST_SECRET_KEY, type TestService } from '../helpers/service.ts';

const field = (value: string | null, policy: string) => {
  const item = (value ?? '').split(',').map((s) => s.trim()).find((s) => s.startsWith(`"${policy}"`));
  return item ? Object.fromEntries(item.split(';').slice(1).map((p) => p.split('=')).map(([k, v]) => [k, Number(v)])) : undefined;
};

describe('rate limits shared by two service processes on one database', () => {
  let database: TestDatabase;
  const procs: ReturnType<typeof startFleet>[] = [];
  const bases: string[] = [];
  let key = '';
  let otherKey = '';

  beforeAll(async () => {
    database = await createTestDatabase();
    const { db } = database.handle;
    await db
      .insertInto('settings')
      .values([
        { key: 'rateLimit.keyRequestsPerMinute', value: '6' },
        { key: 'rateLimit.clientRequestsPerMinute', value: '1000' },
      ])
      .execute();
    for (let i = 0; i < 2; i++) {
      const proc = await startServing(['--no-reconcile'], { DATABASE_URL: database.url, LOG_LEVEL: 'warn', FLEET_SECRET_KEY: TEST_SECRET_KEY });
      procs.push(proc);
      bases.push(proc.base);
    }
    const admin = await db.selectFrom('adminUsers').select('id').executeTakeFirstOrThrow();
    for (const name of ['limited', 'other']) {
      const k = generateApiKey();
      await db.insertInto('apiKeys').values({ name, prefix: k.prefix, keyHash: k.keyHash, scopes: ['read'], createdBy: admin.id }).execute();
      if (name === 'limited') key = k.key;
      else otherKey = k.key;
    }
  }, 300_000);

  afterAll(async () => {
    for (const p of procs) {
      p.child.kill('SIGTERM');
      await p.exited;
    }
    await database?.drop();
  });

  it('counts one key across both processes and answers 429 past the limit, with RateLimit fields and Retry-After', async () => {
    const get = (base: string, k = key) => fetch(`${base}/api/roles`, { headers: { authorization: `Bearer ${k}` } });
    const remaining: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await get(bases[i % 2]!);
      expect(res.status, `request ${i + 1}`).toBe(200);
      expect(field(res.headers.get('ratelimit-policy'), 'key')).toEqual({ q: 6, w: 60 });
      const now = field(res.headers.get('ratelimit'), 'key')!;
      expect(now.t).toBeGreaterThanOrEqual(0);
      expect(now.t).toBeLessThanOrEqual(60);
      remaining.push(now.r!);
    }
    expect(remaining).toEqual([5, 4, 3, 2, 1, 0]);

    for (const base of bases) {
      const limited = await get(base);
      expect(limited.status).toBe(429);
      const retryAfter = Number(limited.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(field(limited.headers.get('ratelimit'), 'key')).toMatchObject({ r: 0 });
      expect(limited.headers.get('x-request-id')).toBeTruthy();
      const body = await limited.json();
      expect(body.error).toMatch(/Too many requests: the key limit of 6 per minute/);
    }
    // Another key has its own count.
    expect((await get(bases[0]!, otherKey)).status).toBe(200);
  });
});

describe('rate limits per client, and what is not limited', () => {
  let t: TestService;
  beforeAll(async () => {
    t = await startTestService();
    await t.db
      .insertInto('settings')
      .values([
        { key: 'rateLimit.clientRequestsPerMinute', value: '5' },
        { key: 'rateLimit.keyRequestsPerMinute', value: '0' },
      ])
      .execute();
  });
  afterAll(async () => t?.close());

  it('counts every bearer request of a client, unknown keys included, then 429; sessions are not limited', async () => {
    const statuses = [];
    for (let i = 0; i < 7; i++) statuses.push((await t.anonymous.json('GET', '/api/roles', undefined, { authorization: `Bearer lf_${'Z'.repeat(43)}` })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
    const created = await t.json('POST', '/api/api-keys', { name: 'valid', scopes: ['read'] });
    const limited = await t.anonymous.json('GET', '/api/roles', undefined, { authorization: `Bearer ${created.body.key}` });
    expect(limited.status).toBe(429);
    expect(field(limited.headers.get('ratelimit-policy'), 'client')).toEqual({ q: 5, w: 60 });
    // Key limit 0 = unlimited: no "key" policy is announced.
    expect(field(limited.headers.get('ratelimit-policy'), 'key')).toBeUndefined();
    for (let i = 0; i < 10; i++) expect((await t.json('GET', '/api/roles')).status).toBe(200);
    expect((await t.json('GET', '/api/roles')).headers.get('ratelimit')).toBeNull();
  });
});
