import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
beforeAll(async () => {
  t = await startTestService();
});
afterAll(async () => t?.close());

describe('roles: happy path', () => {
  it('creates, reads, lists, updates and deletes a role', async () => {
    const created = await t.json('POST', '/api/roles', { name: 'labeler', description: 'Image labelers', color: '#3B82F6' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'labeler', description: 'Image labelers', color: '#3B82F6' });
    expect(Date.parse(created.body.createdAt)).not.toBeNaN();
    const id = created.body.id;

    expect((await t.json('GET', `/api/roles/${id}`)).body).toEqual(created.body);

    const list = await t.json('GET', '/api/roles');
    expect(list.status).toBe(200);
    expect(list.body).toEqual([created.body]);
    expect(list.headers.get('x-total-count')).toBe('1');

    const updated = await t.json('PUT', `/api/roles/${id}`, { color: '#000000', description: null });
    expect(updated.body).toMatchObject({ id, name: 'labeler', color: '#000000', description: null });

    expect((await t.json('DELETE', `/api/roles/${id}`)).body).toEqual({ success: true });
    expect((await t.json('GET', `/api/roles/${id}`)).status).toBe(404);
  });

  it('pages with limit and offset and reports the total', async () => {
    for (const name of ['p1', 'p2', 'p3']) await t.json('POST', '/api/roles', { name });
    const page = await t.json('GET', '/api/roles?limit=2&offset=1');
    expect(page.body.map((r: { name: string }) => r.name)).toEqual(['p2', 'p3']);
    expect(page.headers.get('x-total-count')).toBe('3');
  });
});

describe('roles: errors', () => {
  it('rejects bad fields with 400 in the documented shape', async () => {
    for (const body of [{}, { name: '' }, { name: 'x'.repeat(101) }, { name: 'ok', color: 'blue' }, { name: 'ok', description: 'd'.repeat(501) }]) {
      const res = await t.json('POST', '/api/roles', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toBe('Validation failed');
      expect(Array.isArray(res.body.details)).toBe(true);
    }
  });

  it('rejects unknown fields, malformed JSON and empty updates', async () => {
    expect((await t.json('POST', '/api/roles', { name: 'a', extra: 1 })).status).toBe(400);
    const malformed = await t.json('POST', '/api/roles', '{"name":');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toMatch(/json/i);
    const { body } = await t.json('POST', '/api/roles', { name: 'for-update' });
    expect((await t.json('PUT', `/api/roles/${body.id}`, {})).status).toBe(400);
  });

  it('answers 409 for a duplicate name, case-insensitively', async () => {
    await t.json('POST', '/api/roles', { name: 'Reviewer' });
    const dup = await t.json('POST', '/api/roles', { name: 'reviewer' });
    expect(dup.status).toBe(409);
    expect(dup.body.error).toMatch(/already exists/);
  });

  it('answers 400 for ids that are not positive integers and 404 for missing ones', async () => {
    for (const id of ['abc', '0', '-1', '1.5', '99999999999']) {
      expect((await t.json('GET', `/api/roles/${id}`)).status, id).toBe(400);
    }
    expect((await t.json('GET', '/api/roles/424242')).status).toBe(404);
    expect((await t.json('PUT', '/api/roles/424242', { name: 'z' })).status).toBe(404);
    expect((await t.json('DELETE', '/api/roles/424242')).status).toBe(404);
  });

  it('validates limit and offset', async () => {
    for (const q of ['limit=0', 'limit=501', 'limit=abc', 'offset=-1', 'limit=1.5']) {
      expect((await t.json('GET', `/api/roles?${q}`)).status, q).toBe(400);
    }
  });

  it('refuses to delete a role annotators use', async () => {
    const role = (await t.json('POST', '/api/roles', { name: 'in-use' })).body;
    await t.db.insertInto('annotators').values({ name: 'A', email: 'a@x.io', subdomain: 'a-inuse', roleId: role.id }).execute();
    const res = await t.json('DELETE', `/api/roles/${role.id}`);
    expect(res.status).toBe(409);
    expect((await t.json('GET', `/api/roles/${role.id}`)).status).toBe(200);
  });
});

describe('roles: security', () => {
  it('answers 401 without a session', async () => {
    expect((await t.anonymous.json('GET', '/api/roles')).status).toBe(401);
    expect((await t.anonymous.json('POST', '/api/roles', { name: 'x' })).body).toEqual({ error: 'Unauthorized' });
  });
});

describe('roles: hostile input', () => {
  it('answers 400, not 500, for a NUL character the database cannot store', async () => {
    const res = await t.json('POST', '/api/roles', { name: 'a\u0000b' });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/Validation failed/);
  });
});

describe('roles: the OpenAPI document states what validation enforces', () => {
  it('documents ids as integers 1..2147483647 and update bodies as non-empty, as the route enforces them', async () => {
    const doc = (await t.anonymous.json('GET', '/api/openapi.json')).body;
    const id = doc.paths['/api/roles/{id}'].get.parameters.find((p: { name: string }) => p.name === 'id');
    expect(id.schema).toEqual({ type: 'integer', minimum: 1, maximum: 2147483647, example: 1 });
    // Query filters built on the same id schema carry the same bounds.
    const roleFilter = doc.paths['/api/annotators'].get.parameters.find((p: { name: string }) => p.name === 'roleId');
    expect(roleFilter.schema).toMatchObject({ type: 'integer', minimum: 1, maximum: 2147483647 });
    expect(doc.components.schemas.UpdateRole.minProperties).toBe(1);
    // The bounds are the route's: 0 and 2^31 are 400s in the documented shape, 2^31-1 is a plain 404.
    for (const bad of ['0', '2147483648']) {
      const res = await t.json('GET', `/api/roles/${bad}`);
      expect(res.status, bad).toBe(400);
      expect(res.body.error).toBe('Validation failed');
    }
    expect((await t.json('GET', '/api/roles/2147483647')).status).toBe(404);
    const empty = await t.json('PUT', '/api/roles/2147483647', {});
    expect(empty.status).toBe(400);
    expect(empty.body.details[0].message).toBe('At least one field is required');
  });
});
