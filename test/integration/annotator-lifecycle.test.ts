/**
 * Lifecycle endpoints (start, stop, status, token, password) against a real PostgreSQL, the
 * per-annotator databases and roles on that server, the file route provider on a real directory,
 * and the reconciler step's refusal to start without PostgreSQL. No container is started here
 * (that is test/e2e/fleet-docker.test.ts); the step only lists this file's own namespace.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/crypto.ts';
import { metrics } from '../../src/metrics.ts';
import { InstanceDatabases, scramVerifier } from '../../orchestrator/databases.ts';
import { readFleetSettings } from '../../orchestrator/annotators-step.ts';
import { buildInstanceSpec, ENV, fleetNames, webhookSecret } from '../../orchestrator/instance-spec.ts';
import { fileRoutes } from '../../orchestrator/routing/file-provider.ts';
import { dockerLabelRoutes } from '../../orchestrator/routing/docker-labels.ts';
import { TEST_DATABASE_URL } from '../helpers/env.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

const NAMESPACE = `it${randomBytes(4).toString('hex')}`;
let t: TestService;

beforeAll(async () => {
  t = await startTestService({ env: { FLEET_NAMESPACE: NAMESPACE, LS_DATABASE_URL: TEST_DATABASE_URL(), DOCKER_NETWORK_MODE: 'host', LS_PORT_BASE: '30000' } });
});
afterAll(async () => {
  for (const id of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) await t?.ctx.instanceDatabases.drop(id).catch(() => {});
  await t?.ctx.instanceDatabases.close();
  await t?.close();
});

let seq = 0;
async function createAnnotator(): Promise<number> {
  seq++;
  const res = await t.json('POST', '/api/annotators', { name: `Lifecycle ${seq}`, email: `lifecycle${seq}@example.com` });
  expect(res.status).toBe(201);
  return res.body.id;
}
const row = (id: number) => t.db.selectFrom('annotators').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const events = (id: number) =>
  t.db.selectFrom('containerEvents').selectAll().where('annotatorId', '=', id).orderBy('id').execute();
const inError = async () =>
  Number((await t.db.selectFrom('annotators').select((eb) => eb.fn.countAll().as('n')).where('status', '=', 'error').executeTakeFirstOrThrow()).n);
/** The annotators step's report lines about annotator `id` in a pass. */
const actionsOf = (pass: Awaited<ReturnType<TestService['service']['reconciler']['runOnce']>>, id: number) =>
  pass === 'busy' ? [] : pass.steps.annotators!.actions.filter((l) => l.startsWith(`annotator ${id}: `));
const containerEventCount = async (kind: 'start' | 'restart' | 'failure') =>
  (await metrics.containerEvents.get()).values.find((v) => v.labels.kind === kind)?.value ?? 0;

describe('POST /api/annotators/:id/start', () => {
  it('records the start, rotates the webhook secret (hash only) and answers at once', async () => {
    const id = await createAnnotator();
    const res = await t.json('POST', `/api/annotators/${id}/start`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true, status: 'starting' });
    const a = await row(id);
    expect(a).toMatchObject({
      status: 'starting',
      startGeneration: 1,
      startPhase: 'database',
      databaseName: `ls_annotator_${NAMESPACE}_${id}`,
      containerId: `fleet-ls-${NAMESPACE}-${id}`,
      containerPort: 30000 + id,
      tokenReportedAt: null,
      routedAt: null,
    });
    expect(a.webhookSecretHash).toBe(sha256(webhookSecret(t.ctx.secrets, id, 1)));
    const evs = await events(id);
    expect(evs.at(-1)).toMatchObject({ eventType: 'status_change', fromStatus: 'created', toStatus: 'starting', message: 'start requested by admin' });
  });

  it('answers 400 when already starting or active, and while stopping', async () => {
    const id = await createAnnotator();
    await t.json('POST', `/api/annotators/${id}/start`);
    const again = await t.json('POST', `/api/annotators/${id}/start`);
    expect(again.status).toBe(400);
    expect(again.body).toEqual({ error: 'Annotator already has an active container', details: { status: 'starting' } });

    await t.db.updateTable('annotators').set({ status: 'active' }).where('id', '=', id).execute();
    expect((await t.json('POST', `/api/annotators/${id}/start`)).body.details).toEqual({ status: 'active' });

    expect((await t.json('POST', `/api/annotators/${id}/stop`)).status).toBe(200);
    const whileStopping = await t.json('POST', `/api/annotators/${id}/start`);
    expect(whileStopping.status).toBe(400);
    expect(whileStopping.body.error).toMatch(/stopping/);
    expect((await row(id)).startGeneration).toBe(1);
  });

  it('starts again from stopped and error with a new generation and a new secret', async () => {
    const id = await createAnnotator();
    await t.json('POST', `/api/annotators/${id}/start`);
    const firstHash = (await row(id)).webhookSecretHash;
    await t.db.updateTable('annotators').set({ status: 'stopped' }).where('id', '=', id).execute();
    expect((await t.json('POST', `/api/annotators/${id}/start`)).status).toBe(200);
    await t.db.updateTable('annotators').set({ status: 'error' }).where('id', '=', id).execute();
    expect((await t.json('POST', `/api/annotators/${id}/start`)).status).toBe(200);
    const a = await row(id);
    expect(a.startGeneration).toBe(3);
    expect(a.webhookSecretHash).not.toBe(firstHash);
    expect(a.webhookSecretHash).toBe(sha256(webhookSecret(t.ctx.secrets, id, 3)));
  });

  it('answers 404 for missing and deleted annotators, 400 for bad ids, 401 without a session', async () => {
    expect((await t.json('POST', '/api/annotators/424242/start')).status).toBe(404);
    const id = await createAnnotator();
    expect((await t.json('DELETE', `/api/annotators/${id}`)).status).toBe(200);
    const deleted = await t.json('POST', `/api/annotators/${id}/start`);
    expect(deleted.status).toBe(404);
    expect(deleted.body).toEqual({ error: 'Annotator not found' });
    for (const bad of ['abc', '0', '-1', '99999999999']) {
      expect((await t.json('POST', `/api/annotators/${bad}/start`)).status, bad).toBe(400);
    }
    expect((await t.anonymous.json('POST', `/api/annotators/${id}/start`)).status).toBe(401);
  });
});

describe('POST /api/annotators/:id/stop', () => {
  it('stops a start in progress and an active annotator', async () => {
    const id = await createAnnotator();
    await t.json('POST', `/api/annotators/${id}/start`);
    const res = await t.json('POST', `/api/annotators/${id}/stop`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true });
    expect(await row(id)).toMatchObject({ status: 'stopping', startPhase: null });
    expect((await events(id)).at(-1)).toMatchObject({ fromStatus: 'starting', toStatus: 'stopping', message: 'start called off by admin' });

    const other = await createAnnotator();
    await t.db.updateTable('annotators').set({ status: 'active', routedAt: new Date() }).where('id', '=', other).execute();
    expect((await t.json('POST', `/api/annotators/${other}/stop`)).status).toBe(200);
    expect(await row(other)).toMatchObject({ status: 'stopping', routedAt: null });
  });

  it('answers 400 when nothing runs, 404 when missing or deleted', async () => {
    const id = await createAnnotator();
    const created = await t.json('POST', `/api/annotators/${id}/stop`);
    expect(created.status).toBe(400);
    expect(created.body).toEqual({ error: 'Annotator has no running container', details: { status: 'created' } });
    for (const status of ['stopped', 'stopping'] as const) {
      await t.db.updateTable('annotators').set({ status }).where('id', '=', id).execute();
      expect((await t.json('POST', `/api/annotators/${id}/stop`)).status, status).toBe(400);
    }
    expect((await t.json('POST', '/api/annotators/424242/stop')).status).toBe(404);
    await t.json('DELETE', `/api/annotators/${id}`);
    expect((await t.json('POST', `/api/annotators/${id}/stop`)).status).toBe(404);
    expect((await t.anonymous.json('POST', `/api/annotators/${id}/stop`)).status).toBe(401);
  });
});

describe('GET /api/annotators/:id/status', () => {
  it('reports the lifecycle fields, with url only once active and routed', async () => {
    const id = await createAnnotator();
    const created = await t.json('GET', `/api/annotators/${id}/status`);
    expect(created.status).toBe(200);
    const { subdomain } = (await row(id));
    expect(created.body).toEqual({ status: 'created', containerId: null, containerIp: null, subdomain, url: null, phase: null, statusReason: null });

    await t.json('POST', `/api/annotators/${id}/start`);
    const starting = await t.json('GET', `/api/annotators/${id}/status`);
    expect(starting.body).toMatchObject({ status: 'starting', containerId: `fleet-ls-${NAMESPACE}-${id}`, phase: 'database', url: null });

    await t.db.updateTable('annotators').set({ status: 'active', startPhase: null, containerIp: '127.0.0.1' }).where('id', '=', id).execute();
    expect((await t.json('GET', `/api/annotators/${id}/status`)).body.url).toBeNull();
    await t.db.updateTable('annotators').set({ routedAt: new Date() }).where('id', '=', id).execute();
    expect((await t.json('GET', `/api/annotators/${id}/status`)).body).toMatchObject({
      status: 'active',
      containerIp: '127.0.0.1',
      url: `http://${subdomain}.fleet.localhost`,
      phase: null,
    });
  });

  it('shows deleted annotators as deleted, 404s missing ones, needs a session', async () => {
    const id = await createAnnotator();
    await t.json('DELETE', `/api/annotators/${id}`);
    expect((await t.json('GET', `/api/annotators/${id}/status`)).body.status).toBe('deleted');
    expect((await t.json('GET', '/api/annotators/424242/status')).status).toBe(404);
    expect((await t.anonymous.json('GET', `/api/annotators/${id}/status`)).status).toBe(401);
  });
});

describe('POST /api/annotators/:id/token (X-Webhook-Secret, no session)', () => {
  it('accepts the current secret, stores the token sealed and records an event', async () => {
    const id = await createAnnotator();
    await t.json('POST', `/api/annotators/${id}/start`);
    const secret = webhookSecret(t.ctx.secrets, id, 1);
    const res = await t.anonymous.json('POST', `/api/annotators/${id}/token`, { token: 'ls-token-0123456789' }, { 'x-webhook-secret': secret });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true });
    const a = await row(id);
    expect(a.apiTokenEnc).not.toContain('ls-token');
    expect(t.ctx.secrets.decrypt(a.apiTokenEnc!)).toBe('ls-token-0123456789');
    expect(a.tokenReportedAt).not.toBeNull();
    expect((await events(id)).at(-1)).toMatchObject({ eventType: 'token_reported' });
    // The list shows a prefix only.
    const listed = await t.json('GET', `/api/annotators/${id}`);
    expect(listed.body.apiToken).toBe('ls-tok…');
  });

  it('answers 401 in the error shape for a missing, wrong or previous-start secret', async () => {
    const id = await createAnnotator();
    await t.json('POST', `/api/annotators/${id}/start`);
    const old = webhookSecret(t.ctx.secrets, id, 1);
    await t.db.updateTable('annotators').set({ status: 'stopped' }).where('id', '=', id).execute();
    await t.json('POST', `/api/annotators/${id}/start`);
    for (const headers of [{}, { 'x-webhook-secret': '' }, { 'x-webhook-secret': 'wrong' }, { 'x-webhook-secret': old }] as Array<Record<string, string>>) {
      const res = await t.anonymous.json('POST', `/api/annotators/${id}/token`, { token: 'abcdef' }, headers);
      expect(res.status, JSON.stringify(headers)).toBe(401);
      expect(res.body).toEqual({ error: 'Invalid or missing X-Webhook-Secret' });
    }
    // Never started: no hash at all.
    const fresh = await createAnnotator();
    expect((await t.anonymous.json('POST', `/api/annotators/${fresh}/token`, { token: 'abcdef' }, { 'x-webhook-secret': 'x' })).status).toBe(401);
    expect((await row(id)).apiTokenEnc).toBeNull();
  });

  it('answers 400 for bad bodies, and an unknown or deleted id exactly as a wrong secret (401)', async () => {
    const id = await createAnnotator();
    await t.json('POST', `/api/annotators/${id}/start`);
    const secret = { 'x-webhook-secret': webhookSecret(t.ctx.secrets, id, 1) };
    for (const body of [{}, { token: '' }, { token: 5 }, { token: 'abcdef', extra: 1 }, { token: 'x'.repeat(513) }]) {
      expect((await t.anonymous.json('POST', `/api/annotators/${id}/token`, body, secret)).status, JSON.stringify(body)).toBe(400);
    }
    expect((await t.anonymous.json('POST', `/api/annotators/${id}/token`, '{"token":', secret)).status).toBe(400);
    const wrong = await t.anonymous.json('POST', `/api/annotators/${id}/token`, { token: 'abcdef' }, { 'x-webhook-secret': 'not-the-secret' });
    expect(wrong.status).toBe(401);
    const unknown = await t.anonymous.json('POST', '/api/annotators/424242/token', { token: 'abcdef' }, secret);
    expect([unknown.status, unknown.body]).toEqual([wrong.status, wrong.body]);
    expect(unknown.body).toEqual({ error: 'Invalid or missing X-Webhook-Secret' });
    await t.json('DELETE', `/api/annotators/${id}`);
    const deleted = await t.anonymous.json('POST', `/api/annotators/${id}/token`, { token: 'abcdef' }, secret);
    expect([deleted.status, deleted.body]).toEqual([wrong.status, wrong.body]);
  });

  it('checks the secret before locking the row: a wrong secret is refused while the row is locked', async () => {
    const id = await createAnnotator();
    await t.json('POST', `/api/annotators/${id}/start`);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holder = t.db.transaction().execute(async (trx) => {
      await trx.selectFrom('annotators').select('id').where('id', '=', id).forUpdate().execute();
      locked();
      await held;
    });
    await isLocked;
    try {
      // Answered at once, although the row stays locked until after the answer.
      const wrong = await t.anonymous.json('POST', `/api/annotators/${id}/token`, { token: 'abcdef' }, { 'x-webhook-secret': 'guess' });
      expect(wrong.status).toBe(401);
    } finally {
      release();
      await holder;
    }
    const ok = await t.anonymous.json('POST', `/api/annotators/${id}/token`, { token: 'abcdef' }, { 'x-webhook-secret': webhookSecret(t.ctx.secrets, id, 1) });
    expect(ok.status).toBe(200);
  });
});

describe('POST /api/annotators/:id/password', () => {
  it('issues a password shown once and stores it sealed; a reset replaces it', async () => {
    const id = await createAnnotator();
    const first = await t.json('POST', `/api/annotators/${id}/password`);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ username: `lifecycle${seq}@example.com`, password: expect.stringMatching(/^[A-Za-z0-9_-]{20}$/) });
    let a = await row(id);
    expect(a.lsPasswordVersion).toBe(1);
    expect(a.lsPasswordEnc).not.toContain(first.body.password);
    expect(t.ctx.secrets.decrypt(a.lsPasswordEnc!)).toBe(first.body.password);

    const second = await t.json('POST', `/api/annotators/${id}/password`);
    expect(second.body.password).not.toBe(first.body.password);
    a = await row(id);
    expect(a.lsPasswordVersion).toBe(2);
    expect(t.ctx.secrets.decrypt(a.lsPasswordEnc!)).toBe(second.body.password);
    expect((await events(id)).filter((e) => e.eventType === 'password_issued')).toHaveLength(2);

    // The spec hands it to the instance's entrypoint; it is part of the spec hash.
    const settings = await readFleetSettings(t.ctx);
    const spec = buildInstanceSpec(t.ctx.config, t.ctx.secrets, { ...a, lsPasswordEnc: a.lsPasswordEnc }, settings, t.ctx.instanceDatabases.target(id));
    expect(spec.env[ENV.annotatorPassword]).toBe(second.body.password);
    expect(spec.env[ENV.annotatorEmail]).toBe(a.email);
    const without = buildInstanceSpec(t.ctx.config, t.ctx.secrets, { ...a, lsPasswordEnc: null }, settings, t.ctx.instanceDatabases.target(id));
    expect(without.env[ENV.annotatorPassword]).toBeUndefined();
    expect(without.specHash).not.toBe(spec.specHash);
  });

  it('answers 404 for missing or deleted annotators and 401 without a session', async () => {
    expect((await t.json('POST', '/api/annotators/424242/password')).status).toBe(404);
    const id = await createAnnotator();
    expect((await t.anonymous.json('POST', `/api/annotators/${id}/password`)).status).toBe(401);
    await t.json('DELETE', `/api/annotators/${id}`);
    expect((await t.json('POST', `/api/annotators/${id}/password`)).status).toBe(404);
    expect((await row(id)).lsPasswordEnc).toBeNull();
  });
});

describe('instance spec', () => {
  it('is deterministic per start generation and changes with the image, limits and generation', async () => {
    const settings = await readFleetSettings(t.ctx);
    const a = { id: 3, email: 'x@example.com', subdomain: 'x', startGeneration: 1, lsPasswordEnc: null };
    const target = t.ctx.instanceDatabases.target(3);
    const one = buildInstanceSpec(t.ctx.config, t.ctx.secrets, a, settings, target);
    expect(buildInstanceSpec(t.ctx.config, t.ctx.secrets, a, settings, target)).toEqual(one);
    expect(buildInstanceSpec(t.ctx.config, t.ctx.secrets, { ...a, startGeneration: 2 }, settings, target).specHash).not.toBe(one.specHash);
    expect(buildInstanceSpec(t.ctx.config, t.ctx.secrets, a, { ...settings, image: 'other:1' }, target).specHash).not.toBe(one.specHash);
    expect(buildInstanceSpec(t.ctx.config, t.ctx.secrets, a, { ...settings, memoryMb: 1024 }, target).specHash).not.toBe(one.specHash);
    expect(one.env).toMatchObject({
      DJANGO_DB: 'default',
      POSTGRE_NAME: `ls_annotator_${NAMESPACE}_3`,
      POSTGRE_USER: `ls_annotator_${NAMESPACE}_3`,
      POSTGRE_HOST: '127.0.0.1',
      POSTGRE_PORT: '5432',
      LS_PORT: '30003',
      LS_BIND_HOST: '127.0.0.1',
      LABEL_STUDIO_HOST: 'http://x.fleet.localhost',
      ANNOTATOR_ID: '3',
      WEBHOOK_SECRET: webhookSecret(t.ctx.secrets, 3, 1),
      LATEST_VERSION_CHECK: 'false',
      // Webhooks to FLEET_CALLBACK_URL (a private/loopback address) pass LS's SSRF guard; metadata stays blocked.
      USE_DEFAULT_BANNED_SUBNETS: 'false',
      USER_ADDITIONAL_BANNED_SUBNETS: '169.254.0.0/16',
    });
    expect(one.env.LABEL_STUDIO_USER_TOKEN!.length).toBeGreaterThanOrEqual(6);
    expect(one.env.LABEL_STUDIO_USER_TOKEN!.length).toBeLessThanOrEqual(40);
  });

  it('reads fleet settings, falling back to defaults for values of the wrong type or range', async () => {
    await t.json('PUT', '/api/settings/fleet.memoryMb', { value: 'lots' });
    await t.json('PUT', '/api/settings/fleet.cpus', { value: 0.5 });
    await t.json('PUT', '/api/settings/fleet.healthTimeoutSeconds', { value: -5 });
    await t.json('PUT', '/api/settings/fleet.image', { value: 'custom/ls:2' });
    const s = await readFleetSettings(t.ctx);
    expect(s).toMatchObject({ memoryMb: 2048, cpus: 0.5, image: 'custom/ls:2', deleteDatabaseOnDelete: true });
    expect(s.policy.phaseTimeoutSeconds.healthy).toBe(600);
    for (const key of ['fleet.memoryMb', 'fleet.cpus', 'fleet.healthTimeoutSeconds', 'fleet.image']) {
      await t.db.deleteFrom('settings').where('key', '=', key).execute();
    }
  });
});

describe('per-annotator PostgreSQL databases', () => {
  const adminUrl = TEST_DATABASE_URL();
  const asRole = (role: string, database: string) => {
    const u = new URL(adminUrl);
    u.username = role;
    u.password = 'irrelevant-under-trust';
    u.pathname = `/${database}`;
    return new pg.Client({ connectionString: u.toString() });
  };
  const rolePassword = async (role: string) => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      return (await c.query('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [role])).rows[0]?.rolpassword as string | undefined;
    } finally {
      await c.end();
    }
  };

  it('creates role and database idempotently and rotates the password as a SCRAM verifier', async () => {
    const dbs = t.ctx.instanceDatabases;
    const first = await dbs.ensure(7, 'pw-one');
    expect(first).toEqual({ createdRole: true, createdDatabase: true });
    const v1 = await rolePassword(dbs.name(7));
    expect(v1).toMatch(/^SCRAM-SHA-256\$4096:/);
    const again = await dbs.ensure(7, 'pw-two');
    expect(again).toEqual({ createdRole: false, createdDatabase: false });
    const v2 = await rolePassword(dbs.name(7));
    expect(v2).toMatch(/^SCRAM-SHA-256\$4096:/);
    expect(v2).not.toBe(v1);
    expect(await dbs.exists(7)).toEqual({ role: true, database: true });
    expect(await dbs.listNames()).toContain(dbs.name(7));
  });

  it('lets a role reach its own database only', async () => {
    const dbs = t.ctx.instanceDatabases;
    await dbs.ensure(8, 'pw-8');
    await dbs.ensure(9, 'pw-9');
    const own = asRole(dbs.name(8), dbs.name(8));
    await own.connect();
    await own.query('CREATE TABLE proof (id int)');
    expect((await own.query('SELECT current_user AS u')).rows[0].u).toBe(dbs.name(8));
    await own.end();

    const other = asRole(dbs.name(8), dbs.name(9));
    const err = await other.connect().then(
      () => null,
      (e: { code?: string; message: string }) => e,
    );
    await other.end().catch(() => {});
    expect(err?.code).toBe('42501');
    expect(err?.message).toMatch(/permission denied for database/);

    // Nor can roles without a grant (PUBLIC), e.g. a role created for something else.
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    const stranger = `lf_stranger_${NAMESPACE}`;
    await admin.query(`CREATE ROLE ${stranger} LOGIN`);
    try {
      const s = asRole(stranger, dbs.name(9));
      const e2 = await s.connect().then(() => null, (e: { code?: string }) => e);
      await s.end().catch(() => {});
      expect(e2?.code).toBe('42501');
      const attrs = (await admin.query('SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = $1', [dbs.name(8)])).rows[0];
      expect(attrs).toEqual({ rolsuper: false, rolcreatedb: false, rolcreaterole: false });
      const owner = (await admin.query('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1', [dbs.name(8)])).rows[0];
      expect(owner.owner).toBe(dbs.name(8));
    } finally {
      await admin.query(`DROP ROLE ${stranger}`);
      await admin.end();
    }
  });

  it('with an admin that is not a superuser (CREATEROLE CREATEDB, as on RDS): creates, then repairs owner and privileges of an existing pair', async () => {
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    const fleetAdmin = `lf_admin_${NAMESPACE}`;
    await admin.query(`CREATE ROLE ${fleetAdmin} LOGIN CREATEROLE CREATEDB`);
    const u = new URL(adminUrl);
    u.username = fleetAdmin;
    const dbs = new InstanceDatabases({ LS_DATABASE_URL: u.toString(), FLEET_NAMESPACE: `${NAMESPACE}r` });
    const ownerOf = async (name: string) =>
      (await admin.query('SELECT pg_get_userbyid(datdba) AS owner, datacl::text AS acl FROM pg_database WHERE datname = $1', [name])).rows[0] as { owner: string; acl: string };
    try {
      // Created by the non-superuser: the role owns its database; PUBLIC may not connect.
      for (const id of [1, 2]) expect(await dbs.ensure(id)).toEqual({ createdRole: true, createdDatabase: true });
      const one = dbs.name(1);
      expect((await ownerOf(one)).owner).toBe(one);
      // Without a password the role cannot log in until a start sets one.
      expect((await admin.query('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [one])).rows[0].rolpassword).toBeNull();

      // Someone changed the pair behind the fleet's back: another owner, PUBLIC may connect, and
      // the fleet's admin is no longer a member of the role.
      const two = dbs.name(2);
      await admin.query(`ALTER DATABASE ${two} OWNER TO ${fleetAdmin}`);
      await admin.query(`GRANT CONNECT ON DATABASE ${two} TO PUBLIC`);
      await admin.query(`REVOKE ${two} FROM ${fleetAdmin}`);
      expect(await dbs.ensure(2, 'pw-2')).toEqual({ createdRole: false, createdDatabase: false });
      const repaired = await ownerOf(two);
      expect(repaired.owner).toBe(two);
      expect(repaired.acl).not.toMatch(/(^|[{,])=c/); // no privilege for PUBLIC ("=c/…")
      expect((await admin.query('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [two])).rows[0].rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
      const own = asRole(two, two);
      await own.connect();
      expect((await own.query('SELECT current_user AS u')).rows[0].u).toBe(two);
      await own.end();
    } finally {
      for (const id of [1, 2]) await dbs.drop(id).catch(() => {});
      await dbs.close();
      await admin.query(`DROP ROLE IF EXISTS ${fleetAdmin}`);
      await admin.end();
    }
  });

  it('drops database and role, even with open connections; dropping again is a no-op', async () => {
    const dbs = t.ctx.instanceDatabases;
    await dbs.ensure(10, 'pw-10');
    const open = asRole(dbs.name(10), dbs.name(10));
    await open.connect();
    open.on('error', () => {});
    expect(await dbs.drop(10)).toEqual({ droppedDatabase: true, droppedRole: true });
    expect(await dbs.exists(10)).toEqual({ role: false, database: false });
    expect(await dbs.drop(10)).toEqual({ droppedDatabase: false, droppedRole: false });
    await open.end().catch(() => {});
  });

  it('computes the SCRAM verifier exactly as PostgreSQL does', async () => {
    // PostgreSQL hashes a plain password with its own random salt; ours, given that salt, must match.
    const role = `lf_scram_${NAMESPACE}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      await admin.query("SET password_encryption = 'scram-sha-256'");
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'the-password'`);
      const stored = (await rolePassword(role))!;
      const salt = /^SCRAM-SHA-256\$4096:([^$]+)\$/.exec(stored)![1]!;
      expect(await scramVerifier('the-password', Buffer.from(salt, 'base64'))).toBe(stored);
      expect(await scramVerifier('another-password', Buffer.from(salt, 'base64'))).not.toBe(stored);
    } finally {
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.end();
    }
  });
});

describe('routes', () => {
  it('file provider writes one file per annotator atomically, lists and removes them', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lf-routes-'));
    try {
      const names = fleetNames({ FLEET_NAMESPACE: NAMESPACE });
      const routes = fileRoutes({ dir, entrypoint: 'web', parseName: names.parseInstance });
      const target = { annotatorId: 4, name: names.instance(4), host: 'alice.fleet.localhost', upstream: { host: '127.0.0.1', port: 30004 } };
      await routes.ensure(target);
      await routes.ensure(target);
      writeFileSync(path.join(dir, 'someone-else.yml'), 'http: {}\n');
      expect(readdirSync(dir).sort()).toEqual([`${names.instance(4)}.yml`, 'someone-else.yml']);
      const doc = JSON.parse(readFileSync(path.join(dir, `${names.instance(4)}.yml`), 'utf8'));
      expect(doc).toEqual({
        http: {
          routers: { [names.instance(4)]: { rule: 'Host(`alice.fleet.localhost`)', entryPoints: ['web'], service: names.instance(4) } },
          services: { [names.instance(4)]: { loadBalancer: { servers: [{ url: 'http://127.0.0.1:30004' }] } } },
        },
      });
      expect(await routes.list()).toEqual([{ annotatorId: 4, name: names.instance(4) }]);
      await routes.remove(names.instance(4));
      await routes.remove(names.instance(4));
      expect(await routes.list()).toEqual([]);
      expect(readdirSync(dir)).toEqual(['someone-else.yml']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('docker provider puts the route on the container as labels', () => {
    const labels = dockerLabelRoutes({ entrypoint: 'web', network: 'labelfleet' }).containerLabels({
      annotatorId: 2,
      name: 'fleet-ls-2',
      host: 'bob.fleet.localhost',
      upstream: { host: 'fleet-ls-2', port: 8080 },
    });
    expect(labels).toEqual({
      'traefik.enable': 'true',
      'traefik.http.routers.fleet-ls-2.rule': 'Host(`bob.fleet.localhost`)',
      'traefik.http.routers.fleet-ls-2.entrypoints': 'web',
      'traefik.http.routers.fleet-ls-2.service': 'fleet-ls-2',
      'traefik.http.services.fleet-ls-2.loadbalancer.server.port': '8080',
      'traefik.docker.network': 'labelfleet',
    });
  });
});

describe('the annotators step without PostgreSQL for instances', () => {
  it('fails a start at once with a clear error event', async () => {
    const id = await createAnnotator();
    await t.json('POST', `/api/annotators/${id}/start`);
    const failuresBefore = await containerEventCount('failure');
    const inErrorBefore = await inError();
    const saved = t.ctx.instanceDatabases;
    t.ctx.instanceDatabases = new InstanceDatabases({ FLEET_NAMESPACE: NAMESPACE });
    try {
      const report = await t.service.reconciler.runOnce({ wait: true });
      expect(report).not.toBe('busy');
      const steps = (report as Exclude<typeof report, 'busy'>).steps;
      expect(steps.annotators!.errors.join('\n')).toMatch(/LS_DATABASE_URL/);
    } finally {
      t.ctx.instanceDatabases = saved;
    }
    const a = await row(id);
    expect(a.status).toBe('error');
    expect(a.statusReason).toMatch(/per-annotator databases need PostgreSQL: set LS_DATABASE_URL/);
    expect((await events(id)).at(-1)).toMatchObject({ eventType: 'status_change', fromStatus: 'starting', toStatus: 'error' });
    // labelfleet_container_events_total{kind="failure"} counted each failed start once (this pass also
    // fails the file's other annotators still starting: none of them can get a database either).
    const failed = (await inError()) - inErrorBefore;
    expect(failed).toBeGreaterThanOrEqual(1);
    expect(await containerEventCount('failure')).toBe(failuresBefore + failed);
  });
});

describe('the annotators step cleans up deleted annotators per fleet.deleteDatabaseOnDelete', () => {
  it('drops database and role when true (the default), once', async () => {
    // Only this annotator may be acted on: nothing else is starting or active in this file now.
    await t.db.updateTable('annotators').set({ status: 'stopped' }).where('status', 'in', ['starting', 'active', 'stopping']).execute();
    const dropId = await createAnnotator();
    await t.ctx.instanceDatabases.ensure(dropId, `pw-${dropId}`);
    await t.db.updateTable('annotators').set({ status: 'deleted', startGeneration: 1 }).where('id', '=', dropId).execute();
    await t.json('PUT', '/api/settings/fleet.deleteDatabaseOnDelete', { value: true });
    const first = await t.service.reconciler.runOnce({ wait: true });
    expect(first).not.toBe('busy');
    expect(await t.ctx.instanceDatabases.exists(dropId)).toEqual({ role: false, database: false });
    const lines = (first as Exclude<typeof first, 'busy'>).steps.annotators!.actions;
    expect(lines).toContain(`annotator ${dropId}: cleaned up: container and route removed; database and role ${t.ctx.instanceDatabases.name(dropId)} dropped`);
    expect((await row(dropId)).cleanedUpAt).not.toBeNull();
    expect((await events(dropId)).at(-1)).toMatchObject({ eventType: 'cleaned_up', message: expect.stringContaining('dropped') });

    // A second pass does nothing more for them (other lines: this file's created annotators' databases made ahead).
    const second = await t.service.reconciler.runOnce({ wait: true });
    expect(actionsOf(second, dropId)).toEqual([]);
  });

  it('keeps the database when the setting is false', async () => {
    const id = await createAnnotator();
    await t.ctx.instanceDatabases.ensure(id, `pw-${id}`);
    await t.db.updateTable('annotators').set({ status: 'deleted', startGeneration: 1 }).where('id', '=', id).execute();
    await t.json('PUT', '/api/settings/fleet.deleteDatabaseOnDelete', { value: false });
    try {
      const pass = await t.service.reconciler.runOnce({ wait: true });
      expect(actionsOf(pass, id)).toEqual([`annotator ${id}: cleaned up: container and route removed; database kept (fleet.deleteDatabaseOnDelete is false)`]);
      expect(await t.ctx.instanceDatabases.exists(id)).toEqual({ role: true, database: true });
      expect((await row(id)).cleanedUpAt).not.toBeNull();
    } finally {
      await t.db.deleteFrom('settings').where('key', '=', 'fleet.deleteDatabaseOnDelete').execute();
      await t.ctx.instanceDatabases.drop(id);
    }
  });
});

describe("a created annotator's database is made ahead of its first start", () => {
  const pass = async () => {
    const r = await t.service.reconciler.runOnce({ wait: true });
    expect(r).not.toBe('busy');
    return r;
  };
  /** Passes until no created annotator of this file waits for its database (a pass makes at most 4). */
  const settle = async () => {
    // Those a pass saw while the step had no PostgreSQL (a case above swaps it out) are not due
    // again until the next full resync; made due here as that resync would.
    await t.db.updateTable('annotators').set({ dueAt: new Date() }).where('status', '=', 'created').where('databasePreparedAt', 'is', null).execute();
    let waiting: Array<{ id: number; statusReason: string | null }> = [];
    for (let i = 0; i < 20; i++) {
      waiting = await t.db.selectFrom('annotators').select(['id', 'statusReason']).where('status', '=', 'created').where('databasePreparedAt', 'is', null).execute();
      if (!waiting.length) return;
      await pass();
    }
    throw new Error(`created annotators still without their database after 20 passes: ${JSON.stringify(waiting)}`);
  };

  it('makes role (no password) and database once, and records it without waking anything', async () => {
    await t.db.updateTable('annotators').set({ status: 'stopped' }).where('status', 'in', ['starting', 'active', 'stopping']).execute();
    await settle();
    const id = await createAnnotator();
    const dbs = t.ctx.instanceDatabases;
    expect(await dbs.exists(id)).toEqual({ role: false, database: false });
    expect(actionsOf(await pass(), id)).toEqual([`annotator ${id}: database ${dbs.name(id)} made ahead of the first start`]);
    expect(await dbs.exists(id)).toEqual({ role: true, database: true });
    const made = await row(id);
    expect(made.status).toBe('created');
    expect(made.databasePreparedAt).not.toBeNull();
    expect(made.dueAt).toBeNull(); // the record is bookkeeping: nothing due, the next passes leave it alone
    expect(actionsOf(await pass(), id)).toEqual([]);
    // No password yet: the role cannot log in (the start sets that start's: reconciler-faults.test.ts).
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL() });
    await admin.connect();
    try {
      expect((await admin.query('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [dbs.name(id)])).rows[0]?.rolpassword).toBeNull();
    } finally {
      await admin.end();
    }
  });

  it('spreads many over passes, and a delete drops what was made even when the record never landed', async () => {
    await settle();
    const created = await t.json('POST', '/api/annotators/bulk', {
      annotators: Array.from({ length: 6 }, (_, i) => ({ name: `Ahead ${i}`, email: `ahead${i}-${NAMESPACE}@example.com` })),
    });
    expect(created.status).toBe(201);
    const ids = (created.body.annotators as Array<{ id: number }>).map((a) => a.id);
    const made = (r: Awaited<ReturnType<typeof pass>>) => ids.filter((id) => actionsOf(r, id).some((l) => l.includes('made ahead')));
    expect(made(await pass())).toHaveLength(4);
    // The rest are due again after the poll interval and made by a later pass.
    await new Promise((r) => setTimeout(r, 300));
    expect(made(await pass())).toHaveLength(2);
    for (const id of ids) expect((await row(id)).databasePreparedAt).not.toBeNull();

    // As after a crash between CREATE DATABASE and its record: made, not recorded; then deleted.
    const [gone, plain] = ids as [number, number];
    await t.db.updateTable('annotators').set({ databasePreparedAt: null }).where('id', '=', gone).execute();
    expect((await t.json('DELETE', `/api/annotators/${gone}`)).status).toBe(200);
    expect((await t.json('DELETE', `/api/annotators/${plain}`)).status).toBe(200);
    const r = await pass();
    for (const id of [gone, plain]) {
      expect(actionsOf(r, id)).toEqual([`annotator ${id}: cleaned up: container and route removed; database and role ${t.ctx.instanceDatabases.name(id)} dropped`]);
      expect(await t.ctx.instanceDatabases.exists(id)).toEqual({ role: false, database: false });
    }
  });
});
