import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.ts';
import { transitionAnnotator } from '../../src/workflows/annotators.ts';
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

let seq = 0;
const uniq = (prefix: string) => `${prefix}${++seq}`;
const email = (prefix = 'user') => `${uniq(prefix)}@example.com`;

async function createRole(name = uniq('role')) {
  const res = await t.json('POST', '/api/roles', { name, color: '#3B82F6' });
  expect(res.status).toBe(201);
  return res.body as { id: number; name: string; color: string };
}

async function createAnnotator(body: Record<string, unknown> = {}) {
  const res = await t.json('POST', '/api/annotators', { name: uniq('Person '), email: email(), ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function seedWorkflow(name = uniq('wf')) {
  return t.db
    .insertInto('workflows')
    .values({ name, s3SourcePath: 'images/', s3ExportPath: 'exports/' })
    .returningAll()
    .executeTakeFirstOrThrow();
}

async function seedAssignment(annotatorId: number, workflowId: number, status: 'pending' | 'in_progress' | 'completed' | 'failed' | 'cancelled', createdAt?: string) {
  return t.db
    .insertInto('assignments')
    .values({ annotatorId, workflowId, status, taskCount: 10, ...(createdAt ? { createdAt } : {}) })
    .returningAll()
    .executeTakeFirstOrThrow();
}

const containerEvents = (annotatorId: number) =>
  t.db.selectFrom('containerEvents').selectAll().where('annotatorId', '=', annotatorId).orderBy('id').execute();

const ANNOTATOR_KEYS = [
  'id',
  'name',
  'email',
  'roleId',
  'status',
  'containerId',
  'containerIp',
  'containerPort',
  'subdomain',
  'databaseName',
  'apiToken',
  'lsUserId',
  'notes',
  'lastActiveAt',
  'rejectionCount',
  'reviewedCount',
  'autoAssignPaused',
  'createdAt',
  'updatedAt',
  'role',
].sort();

describe('annotators: create and read', () => {
  it('creates an annotator with the documented fields, status created and a derived subdomain', async () => {
    const role = await createRole();
    const res = await t.json('POST', '/api/annotators', { name: 'Alice Liddell', email: 'Alice.Liddell@Example.com', roleId: role.id, notes: 'night shift' });
    expect(res.status).toBe(201);
    // The reconciler makes the new annotator's database ahead of its first start.
    expect(wakes).toEqual([`annotator ${res.body.id} created`]);
    expect(Object.keys(res.body).sort()).toEqual(ANNOTATOR_KEYS);
    expect(res.body).toMatchObject({
      name: 'Alice Liddell',
      email: 'Alice.Liddell@Example.com',
      roleId: role.id,
      status: 'created',
      containerId: null,
      containerIp: null,
      containerPort: null,
      subdomain: 'alice-liddell',
      databaseName: null,
      apiToken: null,
      lsUserId: null,
      notes: 'night shift',
      lastActiveAt: null,
      rejectionCount: 0,
      reviewedCount: 0,
      autoAssignPaused: false,
      role: { id: role.id, name: role.name, color: '#3B82F6' },
    });
    expect(Date.parse(res.body.createdAt)).not.toBeNaN();
    expect(Date.parse(res.body.updatedAt)).not.toBeNaN();

    const got = await t.json('GET', `/api/annotators/${res.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual({ ...res.body, assignments: [] });

    const events = await containerEvents(res.body.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ eventType: 'created', fromStatus: null, toStatus: 'created' });
  });

  it('creates without a role or notes', async () => {
    const a = await createAnnotator({ name: 'Norole' });
    expect(a).toMatchObject({ roleId: null, role: null, notes: null });
    const b = await createAnnotator({ roleId: null, notes: null });
    expect(b).toMatchObject({ roleId: null, role: null, notes: null });
  });

  it('nests the annotator\'s assignments, newest first, with their workflow', async () => {
    const a = await createAnnotator();
    const other = await createAnnotator();
    const wf1 = await seedWorkflow('Classify');
    const wf2 = await seedWorkflow('Review');
    const older = await seedAssignment(a.id, wf1.id, 'completed', '2026-01-01T00:00:00Z');
    const newer = await seedAssignment(a.id, wf2.id, 'in_progress', '2026-02-01T00:00:00Z');
    await seedAssignment(other.id, wf1.id, 'pending');
    const res = await t.json('GET', `/api/annotators/${a.id}`);
    expect(res.status).toBe(200);
    expect(res.body.assignments.map((x: { id: number }) => x.id)).toEqual([newer.id, older.id]);
    expect(res.body.assignments[0]).toEqual({
      id: newer.id,
      workflowId: wf2.id,
      annotatorId: a.id,
      lsProjectId: null,
      taskCount: 10,
      goldTaskCount: 0,
      completedCount: 0,
      status: 'in_progress',
      error: null,
      exportKey: null,
      startedAt: null,
      completedAt: null,
      createdAt: '2026-02-01T00:00:00.000Z',
      updatedAt: newer.updatedAt.toISOString(),
      problem: null,
      removedTaskCount: 0,
      workflow: { id: wf2.id, name: 'Review' },
    });
  });

  it('shows only a prefix of the sealed API token, never the token', async () => {
    const a = await createAnnotator();
    const token = 'lstoken-0123456789abcdef0123456789abcdef';
    await t.db.updateTable('annotators').set({ apiTokenEnc: t.ctx.secrets.encrypt(token) }).where('id', '=', a.id).execute();
    const raw = await t.db.selectFrom('annotators').select('apiTokenEnc').where('id', '=', a.id).executeTakeFirstOrThrow();
    expect(raw.apiTokenEnc).not.toContain(token);

    const got = await t.json('GET', `/api/annotators/${a.id}`);
    expect(got.body.apiToken).toBe('lstoke…');
    const list = await (await t.request('GET', '/api/annotators?limit=500')).text();
    // The list shows the annotator as GET /:id does, prefix included, beside annotators without one.
    const listed = JSON.parse(list) as Array<{ id: number; apiToken: string | null }>;
    const { assignments: _, ...shown } = got.body;
    expect(listed.find((x) => x.id === a.id)).toEqual(shown);
    expect(listed.some((x) => x.apiToken === null)).toBe(true);
    const put = await t.request('PUT', `/api/annotators/${a.id}`, { notes: 'x' });
    for (const text of [JSON.stringify(got.body), list, await put.text()]) {
      expect(text).not.toContain(token);
      expect(text).not.toContain(raw.apiTokenEnc!);
    }
  });

  it('shows a token sealed under another key as null instead of failing', async () => {
    const a = await createAnnotator();
    await t.db.updateTable('annotators').set({ apiTokenEnc: 'v1.bm9wZQ==.bm9wZQ==.bm9wZQ==' }).where('id', '=', a.id).execute();
    const got = await t.json('GET', `/api/annotators/${a.id}`);
    expect(got.status).toBe(200);
    expect(got.body.apiToken).toBeNull();
    const listed = (await t.json('GET', '/api/annotators?limit=500')).body as Array<{ id: number; apiToken: string | null }>;
    expect(listed.find((x) => x.id === a.id)?.apiToken).toBeNull();
  });

  it('answers 404 for a missing annotator and 400 for ids that are not positive integers', async () => {
    expect((await t.json('GET', '/api/annotators/424242')).status).toBe(404);
    expect((await t.json('GET', '/api/annotators/424242')).body).toEqual({ error: 'Annotator not found' });
    for (const id of ['abc', '0', '-1', '1.5', '99999999999']) {
      expect((await t.json('GET', `/api/annotators/${id}`)).status, id).toBe(400);
      expect((await t.json('PUT', `/api/annotators/${id}`, { notes: 'x' })).status, id).toBe(400);
      expect((await t.json('DELETE', `/api/annotators/${id}`)).status, id).toBe(400);
    }
  });
});

describe('annotators: validation', () => {
  it('rejects bad bodies with 400 in the documented shape', async () => {
    const bodies = [
      {},
      { email: 'a@b.io' },
      { name: 'A' },
      { name: '', email: 'a@b.io' },
      { name: '   ', email: 'a@b.io' },
      { name: 'x'.repeat(256), email: 'a@b.io' },
      { name: 'A', email: 'not-an-email' },
      { name: 'A', email: '' },
      { name: 'A', email: `${'e'.repeat(251)}@b.io` },
      { name: 'A', email: 'a@b.io', notes: 'n'.repeat(2001) },
      { name: 'A', email: 'a@b.io', roleId: 0 },
      { name: 'A', email: 'a@b.io', roleId: 'one' },
      { name: 'A', email: 'a@b.io', roleId: 1.5 },
      { name: 'A', email: 'a@b.io', status: 'active' },
      { name: 'A', email: 'a@b.io', subdomain: 'mine' },
      { name: 'A', email: 'a@b.io', autoAssignPaused: true },
      { name: 42, email: 'a@b.io' },
    ];
    for (const body of bodies) {
      const res = await t.json('POST', '/api/annotators', body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(res.body.error).toBe('Validation failed');
      expect(Array.isArray(res.body.details)).toBe(true);
    }
    const malformed = await t.json('POST', '/api/annotators', '{"name":');
    expect(malformed.status).toBe(400);
  });

  it('accepts the bounds exactly', async () => {
    const a = await createAnnotator({ name: 'n'.repeat(255), email: `${'e'.repeat(250)}@b.io`, notes: 'n'.repeat(2000) });
    expect(a.name).toHaveLength(255);
    expect(a.email).toHaveLength(255);
    expect(a.notes).toHaveLength(2000);
    expect(a.subdomain).toBe('n'.repeat(63));
  });

  it('answers 400 when the role does not exist, and creates nothing', async () => {
    const e = email();
    const res = await t.json('POST', '/api/annotators', { name: 'Ghost', email: e, roleId: 999999 });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('Role not found');
    const rows = await t.db.selectFrom('annotators').select('id').where('email', '=', e).execute();
    expect(rows).toEqual([]);
  });
});

describe('annotators: email uniqueness', () => {
  it('answers 409 "Email already exists" for a duplicate, case-insensitively', async () => {
    await createAnnotator({ email: 'Dup.Person@Example.com' });
    for (const e of ['dup.person@example.com', 'DUP.PERSON@EXAMPLE.COM', 'Dup.Person@Example.com']) {
      const res = await t.json('POST', '/api/annotators', { name: 'Other', email: e });
      expect(res.status, e).toBe(409);
      expect(res.body.error).toBe('Email already exists');
    }
  });

  it('lets only one of many concurrent creates with the same email win', async () => {
    const e = email('race');
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => t.json('POST', '/api/annotators', { name: `Racer ${i}`, email: i % 2 ? e.toUpperCase() : e })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    for (const r of results.filter((x) => x.status === 409)) expect(r.body.error).toBe('Email already exists');
  });

  it('frees the email (and the subdomain) of a deleted annotator', async () => {
    const a = await createAnnotator({ name: 'Comeback Kid', email: 'comeback@example.com' });
    expect((await t.json('DELETE', `/api/annotators/${a.id}`)).status).toBe(200);
    const again = await createAnnotator({ name: 'Comeback Kid', email: 'COMEBACK@example.com' });
    expect(again.id).not.toBe(a.id);
    expect(again.subdomain).toBe('comeback-kid');
  });
});

describe('annotators: subdomains', () => {
  it('derives lower-case, ASCII-folded, DNS-safe labels', async () => {
    expect((await createAnnotator({ name: 'José Álvarez-Núñez' })).subdomain).toBe('jose-alvarez-nunez');
    expect((await createAnnotator({ name: '李小龙' })).subdomain).toMatch(/^annotator(-\d+)?$/);
    expect((await createAnnotator({ name: '  ..Émile__Zola!!  ' })).subdomain).toBe('emile-zola');
    const long = await createAnnotator({ name: `${'Long'.repeat(30)} Name` });
    expect(long.subdomain.length).toBeLessThanOrEqual(63);
    expect(long.subdomain).toMatch(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
  });

  it('keeps subdomains unique by appending -2, -3 …', async () => {
    const a = await createAnnotator({ name: 'Bob Builder' });
    const b = await createAnnotator({ name: 'bob builder' });
    const c = await createAnnotator({ name: 'BOB  BUILDER!' });
    expect([a.subdomain, b.subdomain, c.subdomain]).toEqual(['bob-builder', 'bob-builder-2', 'bob-builder-3']);
  });

  it('stays unique under concurrent creates with the same name', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, () => t.json('POST', '/api/annotators', { name: 'Carol Concurrent', email: email('carol') })),
    );
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(201));
    const subs = results.map((r) => r.body.subdomain as string).sort();
    expect(new Set(subs).size).toBe(8);
    expect(subs).toContain('carol-concurrent');
    for (const s of subs) expect(s).toMatch(/^carol-concurrent(-[2-9])?$/);
  });

  it('does not change the subdomain when the name changes', async () => {
    const a = await createAnnotator({ name: 'Dora Explorer' });
    const res = await t.json('PUT', `/api/annotators/${a.id}`, { name: 'Dora Renamed' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: 'Dora Renamed', subdomain: 'dora-explorer' });
  });
});

describe('annotators: list', () => {
  it('returns a bare array with X-Total-Count, pages, filters and hides deleted annotators', async () => {
    const role = await createRole();
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) ids.push((await createAnnotator({ roleId: role.id })).id);
    await t.db.updateTable('annotators').set({ status: 'active' }).where('id', '=', ids[0]!).execute();
    await t.json('DELETE', `/api/annotators/${ids[2]}`);

    const byRole = await t.json('GET', `/api/annotators?roleId=${role.id}`);
    expect(byRole.status).toBe(200);
    expect(byRole.body.map((a: { id: number }) => a.id)).toEqual([ids[0], ids[1]]);
    expect(byRole.headers.get('x-total-count')).toBe('2');
    expect(byRole.body[0].role).toEqual({ id: role.id, name: role.name, color: '#3B82F6' });

    const page = await t.json('GET', `/api/annotators?roleId=${role.id}&limit=1&offset=1`);
    expect(page.body.map((a: { id: number }) => a.id)).toEqual([ids[1]]);
    expect(page.headers.get('x-total-count')).toBe('2');

    const active = await t.json('GET', `/api/annotators?roleId=${role.id}&status=active`);
    expect(active.body.map((a: { id: number }) => a.id)).toEqual([ids[0]]);

    const deleted = await t.json('GET', `/api/annotators?roleId=${role.id}&status=deleted`);
    expect(deleted.body.map((a: { id: number; status: string }) => [a.id, a.status])).toEqual([[ids[2], 'deleted']]);
    expect(deleted.headers.get('x-total-count')).toBe('1');

    const all = await t.json('GET', '/api/annotators?limit=500');
    expect(all.body.every((a: { status: string }) => a.status !== 'deleted')).toBe(true);
    expect(Number(all.headers.get('x-total-count'))).toBe(all.body.length);
  });

  it('lists each annotator exactly as its own page shows it, whatever its fields hold', async () => {
    // The list's JSON is built by PostgreSQL, the single annotator's by the service: every kind of
    // value must come out the same — null and set fields, a role or none, a sealed token (its
    // prefix) or one sealed under another key (null), text that JSON escapes, sub-millisecond times.
    const role = await createRole();
    const plain = await createAnnotator();
    const full = await createAnnotator({ roleId: role.id, notes: 'quote " backslash \\ tab \t newline \n nul-ish \u0001 emoji 🎯 <b>é</b>' });
    const odd = await createAnnotator({ name: 'Zoë "Z" O\'Neil', roleId: role.id });
    await t.db
      .updateTable('annotators')
      .set({
        status: 'active',
        containerId: 'c0ffee',
        containerIp: '10.0.0.7',
        containerPort: 8080,
        databaseName: 'ls_full',
        lsUserId: 42,
        rejectionCount: 3,
        reviewedCount: 9,
        autoAssignPaused: true,
        apiTokenEnc: t.ctx.secrets.encrypt('lstoken-abcdef0123456789'),
        lastActiveAt: sql<Date>`'2026-03-04 05:06:07.891999+00'::timestamptz`,
      })
      .where('id', '=', full.id)
      .execute();
    await t.db
      .updateTable('annotators')
      .set({ apiTokenEnc: 'v1.bm9wZQ==.bm9wZQ==.bm9wZQ==', updatedAt: sql<Date>`'1999-12-31 23:59:59.999999+00'::timestamptz` })
      .where('id', '=', odd.id)
      .execute();

    const list = await t.request('GET', '/api/annotators?limit=500');
    expect(list.status).toBe(200);
    expect(list.headers.get('content-type')).toMatch(/^application\/json/);
    const listed = (await list.json()) as { id: number }[];
    const ids = [plain.id, full.id, odd.id];
    for (const id of ids) {
      const { assignments, ...detail } = (await t.json('GET', `/api/annotators/${id}`)).body;
      expect(assignments).toEqual([]);
      const entry = listed.find((a) => a.id === id);
      expect(entry).toEqual(detail);
      expect(Object.keys(entry!)).toEqual(Object.keys(detail));
    }
    const byId = new Map(listed.map((a) => [a.id, a as Record<string, unknown>]));
    expect(byId.get(full.id)).toMatchObject({ apiToken: 'lstoke…', lastActiveAt: '2026-03-04T05:06:07.891Z', role: { id: role.id, name: role.name, color: '#3B82F6' } });
    expect(byId.get(odd.id)).toMatchObject({ apiToken: null, updatedAt: '1999-12-31T23:59:59.999Z', name: 'Zoë "Z" O\'Neil' });
    expect(byId.get(plain.id)).toMatchObject({ apiToken: null, role: null, lastActiveAt: null, notes: null });
  });

  it('validates filters, limit and offset', async () => {
    for (const q of ['status=running', 'status=', 'roleId=abc', 'roleId=0', 'limit=0', 'limit=501', 'offset=-1', 'limit=1.5']) {
      const res = await t.json('GET', `/api/annotators?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error).toBe('Validation failed');
    }
  });
});

describe('annotators: update', () => {
  it('updates any subset of fields and nests the new role', async () => {
    const role = await createRole();
    const a = await createAnnotator();
    const res = await t.json('PUT', `/api/annotators/${a.id}`, { roleId: role.id, notes: 'hello' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: a.id, name: a.name, email: a.email, roleId: role.id, notes: 'hello', role: { id: role.id } });
    expect(Date.parse(res.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(a.updatedAt));
    const cleared = await t.json('PUT', `/api/annotators/${a.id}`, { roleId: null, notes: null });
    expect(cleared.body).toMatchObject({ roleId: null, role: null, notes: null });
    expect((await t.json('GET', `/api/annotators/${a.id}`)).body).toMatchObject({ roleId: null, notes: null });
  });

  it('changes the email, answering 409 for another annotator\'s email in any case', async () => {
    const a = await createAnnotator({ email: 'first.owner@example.com' });
    const b = await createAnnotator();
    const dup = await t.json('PUT', `/api/annotators/${b.id}`, { email: 'FIRST.OWNER@example.com' });
    expect(dup.status).toBe(409);
    expect(dup.body.error).toBe('Email already exists');
    const own = await t.json('PUT', `/api/annotators/${a.id}`, { email: 'First.Owner@Example.com' });
    expect(own.status).toBe(200);
    expect(own.body.email).toBe('First.Owner@Example.com');
    const fresh = await t.json('PUT', `/api/annotators/${b.id}`, { email: 'brand.new@example.com' });
    expect(fresh.body.email).toBe('brand.new@example.com');
  });

  it('lets an admin resume (or pause) auto-assignment and wakes the reconciler', async () => {
    const a = await createAnnotator();
    wakes.length = 0;
    await t.db.updateTable('annotators').set({ autoAssignPaused: true }).where('id', '=', a.id).execute();
    expect((await t.json('GET', `/api/annotators/${a.id}`)).body.autoAssignPaused).toBe(true);
    const res = await t.json('PUT', `/api/annotators/${a.id}`, { autoAssignPaused: false });
    expect(res.status).toBe(200);
    expect(res.body.autoAssignPaused).toBe(false);
    expect(wakes).toEqual([`annotator ${a.id} updated`]);
    const row = await t.db.selectFrom('annotators').select('autoAssignPaused').where('id', '=', a.id).executeTakeFirstOrThrow();
    expect(row.autoAssignPaused).toBe(false);
    expect((await t.json('PUT', `/api/annotators/${a.id}`, { autoAssignPaused: 'no' })).status).toBe(400);
  });

  it('rejects empty, unknown, invalid and dangling updates', async () => {
    const a = await createAnnotator();
    for (const body of [{}, { status: 'active' }, { subdomain: 'x' }, { name: '' }, { email: 'nope' }, { notes: 'n'.repeat(2001) }, { apiToken: 'x' }]) {
      const res = await t.json('PUT', `/api/annotators/${a.id}`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    const role = await t.json('PUT', `/api/annotators/${a.id}`, { roleId: 999999 });
    expect(role.status).toBe(400);
    expect(role.body.error).toBe('Role not found');
    expect((await t.json('PUT', '/api/annotators/424242', { notes: 'x' })).status).toBe(404);
    expect((await t.json('GET', `/api/annotators/${a.id}`)).body).toMatchObject({ name: a.name, email: a.email, notes: null });
  });

  it('refuses to change a deleted annotator', async () => {
    const a = await createAnnotator();
    await t.json('DELETE', `/api/annotators/${a.id}`);
    const res = await t.json('PUT', `/api/annotators/${a.id}`, { notes: 'too late' });
    expect(res.status).toBe(409);
    expect(res.body.error).toBe('Cannot update a deleted annotator');
  });
});

describe('annotators: delete', () => {
  it('soft-deletes: status deleted, open assignments cancelled, a container event, the reconciler woken', async () => {
    const a = await createAnnotator();
    await t.db.updateTable('annotators').set({ status: 'active' }).where('id', '=', a.id).execute();
    const wf = await seedWorkflow();
    const pending = await seedAssignment(a.id, wf.id, 'pending');
    const running = await seedAssignment(a.id, wf.id, 'in_progress');
    const done = await seedAssignment(a.id, wf.id, 'completed');
    const failed = await seedAssignment(a.id, wf.id, 'failed');
    wakes.length = 0;

    const res = await t.json('DELETE', `/api/annotators/${a.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true });
    expect(wakes).toEqual([`annotator ${a.id} deleted`]);

    const got = await t.json('GET', `/api/annotators/${a.id}`);
    expect(got.status).toBe(200);
    expect(got.body.status).toBe('deleted');
    const statuses = Object.fromEntries(got.body.assignments.map((x: { id: number; status: string }) => [x.id, x.status]));
    expect(statuses).toEqual({ [pending.id]: 'cancelled', [running.id]: 'cancelled', [done.id]: 'completed', [failed.id]: 'failed' });

    const events = await containerEvents(a.id);
    const last = events.at(-1)!;
    expect(last).toMatchObject({ eventType: 'status_change', fromStatus: 'active', toStatus: 'deleted', message: 'deleted by admin' });
    expect(last.details).toMatchObject({ cancelledAssignmentIds: [pending.id, running.id].sort((x, y) => x - y) });
  });

  it('is idempotent for an already deleted annotator and 404 for a missing one', async () => {
    const a = await createAnnotator();
    expect((await t.json('DELETE', `/api/annotators/${a.id}`)).status).toBe(200);
    const before = (await containerEvents(a.id)).length;
    wakes.length = 0;
    const again = await t.json('DELETE', `/api/annotators/${a.id}`);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ success: true });
    expect(await containerEvents(a.id)).toHaveLength(before);
    expect(wakes).toEqual([]);
    const missing = await t.json('DELETE', '/api/annotators/424242');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error: 'Annotator not found' });
  });
});

describe('annotators: bulk create', () => {
  it('creates every annotator in one go and returns them in order', async () => {
    const role = await createRole();
    const batch = [
      { name: 'Bulk One', email: email('bulk'), roleId: role.id },
      { name: 'Bulk One', email: email('bulk') },
      { name: 'Bulk Three', email: email('bulk'), notes: 'n' },
    ];
    const res = await t.json('POST', '/api/annotators/bulk', { annotators: batch });
    expect(res.status).toBe(201);
    expect(res.body.created).toBe(3);
    expect(wakes).toEqual(['3 annotator(s) created']);
    expect(res.body.annotators.map((a: { email: string }) => a.email)).toEqual(batch.map((b) => b.email));
    expect(res.body.annotators.map((a: { subdomain: string }) => a.subdomain)).toEqual(['bulk-one', 'bulk-one-2', 'bulk-three']);
    expect(Object.keys(res.body.annotators[0]).sort()).toEqual(ANNOTATOR_KEYS);
    expect(res.body.annotators[0]).toMatchObject({ status: 'created', role: { id: role.id, name: role.name } });
  });

  it('accepts exactly 100 and refuses 101 or none', async () => {
    const make = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ name: `Max ${tag} ${i}`, email: `max-${tag}-${i}@example.com` }));
    const over = await t.json('POST', '/api/annotators/bulk', { annotators: make(101, 'over') });
    expect(over.status).toBe(400);
    expect(over.body.error).toBe('Validation failed');
    expect((await t.json('POST', '/api/annotators/bulk', { annotators: [] })).status).toBe(400);
    expect((await t.json('POST', '/api/annotators/bulk', {})).status).toBe(400);
    expect((await t.json('POST', '/api/annotators/bulk', { annotators: make(1, 'x'), extra: 1 })).status).toBe(400);
    const max = await t.json('POST', '/api/annotators/bulk', { annotators: make(100, 'ok') });
    expect(max.status).toBe(201);
    expect(max.body.created).toBe(100);
    expect(new Set(max.body.annotators.map((a: { subdomain: string }) => a.subdomain)).size).toBe(100);
  });

  async function countByEmails(emails: string[]) {
    const rows = await t.db.selectFrom('annotators').select('id').where('email', 'in', emails).execute();
    return rows.length;
  }

  it('answers 409 naming a duplicate email inside the batch (case-insensitive) and creates nothing', async () => {
    const e1 = email('inbatch');
    const e2 = email('inbatch');
    const res = await t.json('POST', '/api/annotators/bulk', {
      annotators: [
        { name: 'A', email: e1 },
        { name: 'B', email: e2 },
        { name: 'C', email: e1.toUpperCase() },
      ],
    });
    expect(res.status).toBe(409);
    expect(res.body.error).toBe(`Duplicate email in batch: ${e1.toUpperCase()}`);
    expect(res.body.details).toEqual({ email: e1.toUpperCase(), indexes: [0, 2] });
    expect(await countByEmails([e1, e2, e1.toUpperCase()])).toBe(0);
  });

  it('answers 409 for an email that already exists and creates nothing', async () => {
    const existing = await createAnnotator({ email: email('exists') });
    const fresh = email('fresh');
    const res = await t.json('POST', '/api/annotators/bulk', {
      annotators: [
        { name: 'Fresh', email: fresh },
        { name: 'Clash', email: existing.email.toUpperCase() },
      ],
    });
    expect(res.status).toBe(409);
    expect(res.body.error).toBe('Email already exists');
    expect(await countByEmails([fresh])).toBe(0);
  });

  it('is all or nothing on a bad role or an invalid item', async () => {
    const fresh = email('fresh');
    const badRole = await t.json('POST', '/api/annotators/bulk', {
      annotators: [
        { name: 'Fresh', email: fresh },
        { name: 'Ghost', email: email('ghost'), roleId: 999999 },
      ],
    });
    expect(badRole.status).toBe(400);
    expect(badRole.body.error).toBe('Role not found');
    const invalid = await t.json('POST', '/api/annotators/bulk', {
      annotators: [
        { name: 'Fresh', email: fresh },
        { name: 'Bad', email: 'not-an-email' },
      ],
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body.details[0].path).toEqual(['annotators', 1, 'email']);
    expect(await countByEmails([fresh])).toBe(0);
  });
});

describe('annotators: bulk delete', () => {
  it('soft-deletes the listed annotators and counts only those it moved', async () => {
    const wf = await seedWorkflow();
    const a = await createAnnotator();
    const b = await createAnnotator();
    const c = await createAnnotator();
    const gone = await createAnnotator();
    await t.json('DELETE', `/api/annotators/${gone.id}`);
    const open = await seedAssignment(a.id, wf.id, 'in_progress');
    wakes.length = 0;

    const res = await t.json('DELETE', '/api/annotators/bulk', { ids: [a.id, b.id, a.id, gone.id, 424242] });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ deleted: 2 });
    expect(wakes).toEqual(['2 annotator(s) deleted']);

    const rows = await t.db.selectFrom('annotators').select(['id', 'status']).where('id', 'in', [a.id, b.id, c.id]).orderBy('id').execute();
    expect(rows.map((r) => r.status)).toEqual(['deleted', 'deleted', 'created']);
    const assignment = await t.db.selectFrom('assignments').select('status').where('id', '=', open.id).executeTakeFirstOrThrow();
    expect(assignment.status).toBe('cancelled');
    for (const id of [a.id, b.id]) {
      expect((await containerEvents(id)).at(-1)).toMatchObject({ eventType: 'status_change', toStatus: 'deleted', message: 'deleted by admin (bulk)' });
    }
    expect((await containerEvents(gone.id)).filter((e) => e.toStatus === 'deleted')).toHaveLength(1);

    const none = await t.json('DELETE', '/api/annotators/bulk', { ids: [a.id, 424242] });
    expect(none.body).toEqual({ deleted: 0 });
  });

  it('validates the id list', async () => {
    const over = Array.from({ length: 101 }, (_, i) => i + 1);
    for (const body of [{ ids: over }, { ids: [] }, {}, { ids: [0] }, { ids: ['1'] }, { ids: [1.5] }, { ids: [1], extra: true }]) {
      const res = await t.json('DELETE', '/api/annotators/bulk', body);
      expect(res.status, JSON.stringify(body).slice(0, 40)).toBe(400);
    }
    const exactly = await t.json('DELETE', '/api/annotators/bulk', { ids: over.slice(0, 100).map((i) => i + 1_000_000) });
    expect(exactly.status).toBe(200);
    expect(exactly.body).toEqual({ deleted: 0 });
  });
});

describe('annotators: status transitions (shared with the lifecycle endpoints)', () => {
  it('moves along the lifecycle writing a status_change event, and refuses what the machine forbids', async () => {
    const a = await createAnnotator();
    const step = await t.db.transaction().execute((trx) => transitionAnnotator(trx, a.id, 'starting', 'start requested', { by: 'test' }));
    expect(step).toMatchObject({ from: 'created', to: 'starting' });
    expect(step.annotator).toMatchObject({ id: a.id, status: 'starting', statusReason: 'start requested' });
    expect((await containerEvents(a.id)).at(-1)).toMatchObject({
      eventType: 'status_change',
      fromStatus: 'created',
      toStatus: 'starting',
      message: 'start requested',
      details: { by: 'test' },
    });

    const refused = await t.db
      .transaction()
      .execute((trx) => transitionAnnotator(trx, a.id, 'stopped', 'nope'))
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AppError);
    expect(refused).toMatchObject({ status: 409, message: 'Cannot change annotator status from starting to stopped' });
    const row = await t.db.selectFrom('annotators').select('status').where('id', '=', a.id).executeTakeFirstOrThrow();
    expect(row.status).toBe('starting');

    const missing = await t.db
      .transaction()
      .execute((trx) => transitionAnnotator(trx, 424242, 'starting', 'x'))
      .catch((e: unknown) => e);
    expect(missing).toMatchObject({ status: 404 });
  });
});

describe('annotators: OpenAPI', () => {
  it('documents the routes, bulk ones included', async () => {
    const doc = await t.json('GET', '/api/openapi.json');
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining(['/api/annotators', '/api/annotators/bulk', '/api/annotators/{id}', '/api/assignments', '/api/assignments/{id}']),
    );
    expect(Object.keys(doc.body.paths['/api/annotators/bulk']).sort()).toEqual(['delete', 'post']);
    expect(doc.body.components.schemas.Annotator.properties).toHaveProperty('autoAssignPaused');
  });
});

describe('annotators: security', () => {
  it('answers 401 without a session on every route', async () => {
    const calls: Array<[string, string, unknown?]> = [
      ['GET', '/api/annotators'],
      ['POST', '/api/annotators', { name: 'x', email: 'x@y.io' }],
      ['GET', '/api/annotators/1'],
      ['PUT', '/api/annotators/1', { notes: 'x' }],
      ['DELETE', '/api/annotators/1'],
      ['POST', '/api/annotators/bulk', { annotators: [{ name: 'x', email: 'x@y.io' }] }],
      ['DELETE', '/api/annotators/bulk', { ids: [1] }],
    ];
    for (const [method, path, body] of calls) {
      const res = await t.anonymous.json(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.body).toEqual({ error: 'Unauthorized' });
    }
  });
});
