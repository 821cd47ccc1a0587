/** Idempotency-Key on writes: replay, mismatch (422), in flight (409), 20 at once, per credential, 24 h window. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { purgeIdempotencyKeys, requestFingerprint } from '../../src/api/idempotency.ts';
import { startTestService, type TestService } from '../helpers/service.ts';
import { waitUntil } from '../helpers/process.ts';

let t: TestService;
beforeAll(async () => {
  t = await startTestService();
});
afterAll(async () => t?.close());

const roleCount = async (name: string) =>
  Number((await t.db.selectFrom('roles').select(t.db.fn.countAll<number>().as('n')).where('name', '=', name).executeTakeFirstOrThrow()).n);
const post = (body: unknown, key: string, path = '/api/roles', headers: Record<string, string> = {}) => t.json('POST', path, body, { 'idempotency-key': key, ...headers });

describe('Idempotency-Key', () => {
  it('replays the stored response (status, body, header) for the same key and request', async () => {
    const first = await post({ name: 'replayed' }, 'key-1');
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const again = await post({ name: 'replayed' }, 'key-1');
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.headers.get('content-type')).toMatch(/application\/json/);
    expect(again.headers.get('x-request-id')).not.toBe(first.headers.get('x-request-id'));
    expect(await roleCount('replayed')).toBe(1);
    // The header may be a structured-field string, as the IETF draft writes it.
    expect((await post({ name: 'replayed' }, '"key-1"')).headers.get('idempotent-replayed')).toBe('true');
  });

  it('answers 422 when the key comes back with another body, path or method', async () => {
    await post({ name: 'mismatch' }, 'key-2');
    for (const res of [
      await post({ name: 'mismatch-2' }, 'key-2'),
      await post({ name: 'mismatch' }, 'key-2', '/api/labeling-configs'),
      await t.json('PUT', '/api/roles/1', { name: 'mismatch' }, { 'idempotency-key': 'key-2' }),
    ]) {
      expect(res.status).toBe(422);
      expect(res.body.error).toMatch(/different request/);
    }
    expect(await roleCount('mismatch-2')).toBe(0);
  });

  it('keeps error answers too: a 409 is replayed as the same 409', async () => {
    await t.json('POST', '/api/roles', { name: 'taken' });
    const first = await post({ name: 'taken' }, 'key-3');
    expect(first.status).toBe(409);
    const again = await post({ name: 'taken' }, 'key-3');
    expect(again.status).toBe(409);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
  });

  it('20 identical requests at once create one row; the others replay it or hear it is in progress (409)', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => post({ name: 'parallel', description: 'twenty at once' }, 'key-parallel')));
    expect(await roleCount('parallel')).toBe(1);
    const fresh = results.filter((r) => r.status === 201 && !r.headers.get('idempotent-replayed'));
    const replays = results.filter((r) => r.status === 201 && r.headers.get('idempotent-replayed') === 'true');
    const busy = results.filter((r) => r.status === 409);
    expect(fresh).toHaveLength(1);
    expect(replays.length + busy.length).toBe(19);
    for (const r of replays) expect(r.body).toEqual(fresh[0]!.body);
    for (const r of busy) {
      expect(r.body.error).toMatch(/still in progress/);
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
  });

  it('answers 409 while the first request is still running, then replays it', async () => {
    const locker = new pg.Client({ connectionString: t.database.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE roles IN ACCESS EXCLUSIVE MODE');
      const slow = post({ name: 'slow' }, 'key-slow');
      // The first request holds the key while it waits for the table.
      await waitUntil(
        'the first request to wait for the table lock',
        async () => (await locker.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rowCount,
        30_000,
        50,
      );
      const busy = await post({ name: 'slow' }, 'key-slow');
      expect(busy!.status).toBe(409);
      await locker.query('COMMIT');
      expect((await slow).status).toBe(201);
      expect((await post({ name: 'slow' }, 'key-slow')).headers.get('idempotent-replayed')).toBe('true');
      expect(await roleCount('slow')).toBe(1);
    } finally {
      await locker.end();
    }
  });

  it('keys belong to a credential: an API key using the same key runs its own request', async () => {
    const created = await t.json('POST', '/api/api-keys', { name: 'idem', scopes: ['write'] });
    await post({ name: 'per-credential' }, 'shared-key');
    const other = await post({ name: 'per-credential' }, 'shared-key', '/api/roles', { authorization: `Bearer ${created.body.key}` });
    // It ran (the name is taken now), it was not a replay of the session's 201.
    expect(other.status).toBe(409);
    expect(other.headers.get('idempotent-replayed')).toBeNull();
    expect((await post({ name: 'per-credential' }, 'shared-key', '/api/roles', { authorization: `Bearer ${created.body.key}` })).headers.get('idempotent-replayed')).toBe('true');
  });

  it('a key whose request died in flight is taken over after its lock; keys expire after 24 h and are purged', async () => {
    const admin = await t.db.selectFrom('adminUsers').select('id').executeTakeFirstOrThrow();
    const body = JSON.stringify({ name: 'after-crash' });
    await t.db
      .insertInto('idempotencyKeys')
      .values({ credential: `admin:${admin.id}`, key: 'key-crash', fingerprint: requestFingerprint('POST', '/api/roles', Buffer.from(body)), lockedUntil: new Date(Date.now() + 60_000) })
      .execute();
    expect((await post({ name: 'after-crash' }, 'key-crash')).status).toBe(409);
    await t.db.updateTable('idempotencyKeys').set({ lockedUntil: new Date(Date.now() - 1000) }).where('key', '=', 'key-crash').execute();
    expect((await t.json('POST', '/api/roles', body, { 'idempotency-key': 'key-crash' })).status).toBe(201);
    expect(await roleCount('after-crash')).toBe(1);

    const first = await post({ name: 'window' }, 'key-window');
    await t.json('DELETE', `/api/roles/${first.body.id}`);
    await t.db.updateTable('idempotencyKeys').set({ createdAt: new Date(Date.now() - 25 * 3_600_000) }).where('key', '=', 'key-window').execute();
    const later = await post({ name: 'window' }, 'key-window');
    expect(later.status).toBe(201);
    expect(later.headers.get('idempotent-replayed')).toBeNull();
    expect(later.body.id).not.toBe(first.body.id);

    await t.db.updateTable('idempotencyKeys').set({ createdAt: new Date(Date.now() - 25 * 3_600_000) }).where('key', '=', 'key-1').execute();
    expect(await purgeIdempotencyKeys(t.db)).toBe(1);
    expect(await t.db.selectFrom('idempotencyKeys').select('id').where('key', '=', 'key-1').executeTakeFirst()).toBeUndefined();
  });

  it('refuses malformed keys (400) and ignores the header on reads', async () => {
    for (const key of ['', 'x'.repeat(256), 'with space', 'naïve']) {
      const res = await post({ name: 'bad-key' }, key);
      expect(res.status, JSON.stringify(key)).toBe(400);
    }
    expect(await roleCount('bad-key')).toBe(0);
    const read = await t.json('GET', '/api/roles', undefined, { 'idempotency-key': 'read-key' });
    expect(read.status).toBe(200);
    expect(await t.db.selectFrom('idempotencyKeys').select('id').where('key', '=', 'read-key').executeTakeFirst()).toBeUndefined();
  });
});
