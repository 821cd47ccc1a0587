import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { getSetting } from '../../src/settings.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
const wakes: string[] = [];
beforeAll(async () => {
  t = await startTestService({ overrides: { wake: (reason: string) => void wakes.push(reason) } });
});
afterAll(async () => t?.close());
beforeEach(() => {
  wakes.length = 0;
});

/** The row as stored; the value read as text so no key mapping touches it. */
async function storedRow(key: string) {
  const row = await t.db
    .selectFrom('settings')
    .select(['id', 'key', 'description', 'updatedAt', sql<string>`value::text`.as('valueText')])
    .where('key', '=', key)
    .executeTakeFirst();
  return row && { ...row, value: JSON.parse(row.valueText) as unknown };
}

describe('settings: happy path', () => {
  it('creates a setting with PUT, reads it back, updates it and lists it', async () => {
    const created = await t.json('PUT', '/api/settings/s3.bucket', { value: 'my-annotation-bucket' });
    expect(created.status).toBe(200);
    expect(created.body).toEqual({
      id: expect.any(Number),
      key: 's3.bucket',
      value: 'my-annotation-bucket',
      description: null,
      updatedAt: expect.any(String),
    });
    expect(Date.parse(created.body.updatedAt)).not.toBeNaN();
    expect(wakes).toEqual(['setting s3.bucket']);
    expect(await storedRow('s3.bucket')).toMatchObject({ value: 'my-annotation-bucket', description: null });

    expect((await t.json('GET', '/api/settings/s3.bucket')).body).toEqual(created.body);

    const updated = await t.json('PUT', '/api/settings/s3.bucket', { value: 'other-bucket', description: 'Source images' });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ id: created.body.id, key: 's3.bucket', value: 'other-bucket', description: 'Source images' });
    expect(Date.parse(updated.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(created.body.updatedAt));
    expect(wakes).toEqual(['setting s3.bucket', 'setting s3.bucket']);

    const list = await t.json('GET', '/api/settings');
    expect(list.status).toBe(200);
    expect(list.body).toContainEqual(updated.body);
    // The service reads it through the one accessor.
    expect(await getSetting(t.db, 's3.bucket')).toBe('other-bucket');
  });

  it('stores any JSON value unchanged, nested keys included', async () => {
    const values: unknown[] = [
      0.85,
      -3,
      true,
      false,
      null,
      '',
      'text with "quotes" and ünïcödé 🐱',
      [1, 'two', null, { three: 3 }],
      { max_batch_size: 50, nested: { snake_case_key: ['a'], camelKey: { deep_er: true } }, list: [{ from_name: 'x' }] },
      {},
      [],
    ];
    for (const [i, value] of values.entries()) {
      const key = `json.value${i}`;
      const res = await t.json('PUT', `/api/settings/${key}`, { value });
      expect(res.status, JSON.stringify(value)).toBe(200);
      expect(res.body.value).toEqual(value);
      expect((await t.json('GET', `/api/settings/${key}`)).body.value).toEqual(value);
      expect((await storedRow(key))?.value).toEqual(value);
    }
  });

  it('keeps the description when an update omits it and clears it on null', async () => {
    await t.json('PUT', '/api/settings/quality.accuracyThreshold', { value: 0.7, description: 'Flag below this accuracy' });
    const kept = await t.json('PUT', '/api/settings/quality.accuracyThreshold', { value: 0.8 });
    expect(kept.body).toMatchObject({ value: 0.8, description: 'Flag below this accuracy' });
    const cleared = await t.json('PUT', '/api/settings/quality.accuracyThreshold', { value: 0.8, description: null });
    expect(cleared.body).toMatchObject({ value: 0.8, description: null });
    expect(await storedRow('quality.accuracyThreshold')).toMatchObject({ value: 0.8, description: null });
  });

  it('lists in key order with limit, offset and the total', async () => {
    await t.db.deleteFrom('settings').execute();
    for (const key of ['b.two', 'a.one', 'C.upper', 'a_one', 'a-one', 'c.three']) {
      expect((await t.json('PUT', `/api/settings/${key}`, { value: key })).status).toBe(200);
    }
    const all = await t.json('GET', '/api/settings');
    expect(all.body.map((s: { key: string }) => s.key)).toEqual(['C.upper', 'a-one', 'a.one', 'a_one', 'b.two', 'c.three']);
    expect(all.headers.get('x-total-count')).toBe('6');
    const page = await t.json('GET', '/api/settings?limit=2&offset=2');
    expect(page.body.map((s: { key: string }) => s.key)).toEqual(['a.one', 'a_one']);
    expect(page.headers.get('x-total-count')).toBe('6');
  });

  it('accepts keys of 255 characters and every allowed character', async () => {
    for (const key of ['k'.repeat(255), 'Az09._-', '-', '.hidden']) {
      const res = await t.json('PUT', `/api/settings/${key}`, { value: 1 });
      expect(res.status, key).toBe(200);
      expect(res.body.key).toBe(key);
      expect((await t.json('GET', `/api/settings/${key}`)).status).toBe(200);
    }
  });
});

describe('settings: secrets', () => {
  it('masks values of secret-looking keys in every response but stores them as given', async () => {
    for (const key of ['smtp.password', 'webhook.secret', 'ls.token', 'ls.apiToken', 's3.secretAccessKey', 'ai.apiKey', 'password']) {
      const put = await t.json('PUT', `/api/settings/${key}`, { value: 'hunter2-very-secret' });
      expect(put.status, key).toBe(200);
      expect(put.body.value, key).toBe('********');
      expect((await t.json('GET', `/api/settings/${key}`)).body.value, key).toBe('********');
      expect((await storedRow(key))?.value, key).toBe('hunter2-very-secret');
    }
    const object = await t.json('PUT', '/api/settings/db.password', { value: { user: 'u', pass: 'p' } });
    expect(object.body.value).toBe('********');
    const list = await t.json('GET', '/api/settings?limit=500');
    const secrets = list.body.filter((s: { key: string }) => /password|secret|token|apikey/i.test(s.key));
    expect(secrets.length).toBeGreaterThanOrEqual(8);
    for (const s of secrets) expect(s.value, s.key).toBe('********');
    expect(JSON.stringify(list.body)).not.toContain('hunter2');
  });

  it('shows an unset (null) secret as null and leaves ordinary keys alone', async () => {
    expect((await t.json('PUT', '/api/settings/pending.token', { value: null })).body.value).toBeNull();
    for (const key of ['auth.tokenTtlSeconds', 's3.accessKeyId', 'secret.bucket']) {
      expect((await t.json('PUT', `/api/settings/${key}`, { value: 'visible' })).body.value, key).toBe('visible');
    }
  });
});

describe('settings: errors', () => {
  it('answers 404 "Setting not found" for a missing key', async () => {
    const res = await t.json('GET', '/api/settings/no.such.key');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: 'Setting not found' });
  });

  it('rejects keys outside [A-Za-z0-9._-]{1,255} with 400', async () => {
    for (const key of ['k'.repeat(256), 'has%20space', 'semi%3Bcolon', 'slash%2Fkey', '%C3%BCml', 'quote%22', 'star*']) {
      const put = await t.json('PUT', `/api/settings/${key}`, { value: 1 });
      expect(put.status, key).toBe(400);
      expect(put.body.error).toBe('Validation failed');
      expect((await t.json('GET', `/api/settings/${key}`)).status, key).toBe(400);
    }
    expect(wakes).toEqual([]);
  });

  it('requires value and rejects bad bodies with 400, writing nothing', async () => {
    const bodies: unknown[] = [
      {},
      { description: 'no value' },
      { value: 1, description: 'd'.repeat(501) },
      { value: 1, description: 5 },
      { value: 1, extra: true },
      { value: 'a\u0000b' },
      { value: { 'k\u0000': 1 } },
      { value: 'x'.repeat(70_000) },
      { value: 1, description: 'nul\u0000' },
      { value: ['\uD800'] },
    ];
    for (const body of bodies) {
      const res = await t.json('PUT', '/api/settings/bad.body', body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(res.body.error).toBe('Validation failed');
      expect(Array.isArray(res.body.details)).toBe(true);
    }
    const missing = await t.json('PUT', '/api/settings/bad.body', {});
    expect(missing.body.details).toEqual([expect.objectContaining({ path: ['value'], message: expect.stringMatching(/is required/) })]);
    expect(await storedRow('bad.body')).toBeUndefined();
    expect(wakes).toEqual([]);
  });

  it('rejects values nested too deeply and malformed JSON', async () => {
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = { d: deep };
    const res = await t.json('PUT', '/api/settings/deep', { value: deep });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body.details)).toMatch(/nested more than 32 levels/);
    expect((await t.json('PUT', '/api/settings/deep', '{"value":')).status).toBe(400);
    expect((await t.json('PUT', '/api/settings/deep', '"just a string"')).status).toBe(400);
    expect(await storedRow('deep')).toBeUndefined();
  });

  it('validates limit and offset', async () => {
    for (const q of ['limit=0', 'limit=501', 'limit=abc', 'offset=-1']) {
      expect((await t.json('GET', `/api/settings?${q}`)).status, q).toBe(400);
    }
  });

  it('has no create or delete routes besides PUT: 405 with the methods it does serve', async () => {
    const post = await t.json('POST', '/api/settings', { key: 'a', value: 1 });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const del = await t.json('DELETE', '/api/settings/s3.bucket');
    expect(del.status).toBe(405);
    expect(del.body.details.allow).toEqual(['GET', 'HEAD', 'PUT']);
    expect((await t.json('GET', '/api/settings/s3.bucket')).status).toBe(404);
  });
});

describe('settings: security', () => {
  it('answers 401 without a session and writes nothing', async () => {
    for (const [method, path, body] of [
      ['GET', '/api/settings'],
      ['GET', '/api/settings/s3.bucket'],
      ['PUT', '/api/settings/anon.key', { value: 1 }],
    ] as const) {
      const res = await t.anonymous.json(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.body).toEqual({ error: 'Unauthorized' });
    }
    expect(await storedRow('anon.key')).toBeUndefined();
    expect(wakes).toEqual([]);
  });
});
