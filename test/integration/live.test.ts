/**
 * The two event streams over a real HTTP connection: GET /api/changes and
 * GET /api/annotators/:id/progress — what they send, heartbeats, ending on ready / failed, letting
 * go when the client leaves, and closing when the service stops. The reconciler does not run: the
 * test writes what its annotators step would write (phase by phase), so each event is known.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { changeFeed } from '../../src/live/index.ts';
import { transitionAnnotator, writeContainerEvent } from '../../src/workflows/annotators.ts';
import { freePort, waitUntil } from '../helpers/process.ts';
import { openSse, type SseEvent } from '../helpers/sse.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let base = '';
let cookie = '';

beforeAll(async () => {
  const port = await freePort();
  t = await startTestService({ env: { HOST: '127.0.0.1', PORT: String(port), LIVE_POLL_MS: '100', LIVE_HEARTBEAT_SECONDS: '1' } });
  await t.service.start({ reconcile: false });
  base = `http://127.0.0.1:${port}`;
  const csrf = (await (await fetch(`${base}/api/auth/csrf`)).json()) as { csrfToken: string };
  const res = await fetch(`${base}/api/auth/callback/credentials`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'admin@fleet.local', password: 'admin', csrfToken: csrf.csrfToken }),
  });
  cookie = res.headers.get('set-cookie')!.split(';')[0]!;
});

afterAll(async () => {
  await t.service.stop();
  await t.close();
});

const open = (path: string) => openSse(`${base}${path}`, { cookie });
const data = (e: SseEvent) => JSON.parse(e.data);

async function createAnnotator(name: string) {
  const r = await t.json('POST', '/api/annotators', { name, email: `${name.toLowerCase().replace(/\W+/g, '.')}@live.test` });
  expect(r.status).toBe(201);
  return r.body.id as number;
}

/** What orchestrator/annotators-step.ts writes when a start moves from one phase to the next. */
async function advance(id: number, from: string, to: string, message: string, reason: string) {
  const a = await t.db.selectFrom('annotators').select(['startGeneration']).where('id', '=', id).executeTakeFirstOrThrow();
  await t.db
    .updateTable('annotators')
    .set({ startPhase: to as never, phaseStartedAt: new Date(), statusReason: reason, updatedAt: new Date() })
    .where('id', '=', id)
    .execute();
  await writeContainerEvent(t.db, {
    annotatorId: id,
    eventType: 'start_progress',
    fromStatus: 'starting',
    toStatus: 'starting',
    message,
    details: { phase: to, previousPhase: from, generation: a.startGeneration },
  });
}

describe('GET /api/changes', () => {
  it('needs a session', async () => {
    const res = await fetch(`${base}/api/changes`);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'Unauthorized' });
  });

  it('says ready, then which topics changed, with heartbeats between', async () => {
    const s = await open('/api/changes');
    try {
      expect(s.status).toBe(200);
      expect(s.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(s.headers.get('cache-control')).toBe('no-cache');
      await s.waitFor('the ready event', (ev) => ev.some((e) => e.event === 'ready'));
      expect(data(s.events[0]!).topics).toContain('annotators');
      // Let the feed take its baseline, then change two topics.
      await new Promise((r) => setTimeout(r, 400));
      await createAnnotator('Change Seen');
      await s.waitFor('an annotators change', (ev) => ev.some((e) => e.event === 'change' && data(e).topics.includes('annotators')));
      const role = await t.json('POST', '/api/roles', { name: 'live-role' });
      expect(role.status).toBe(201);
      await s.waitFor('a configs change', (ev) => ev.some((e) => e.event === 'change' && data(e).topics.includes('configs')));
      const change = s.events.find((e) => e.event === 'change')!;
      expect(Number.isNaN(Date.parse(data(change).at))).toBe(false);
      await waitUntil('a keepalive comment', async () => s.comments.includes('keepalive'), 10_000, 100);
    } finally {
      s.close();
    }
  });

  it('lets go of the feed when the client leaves', async () => {
    const feed = changeFeed(t.ctx);
    const streams = await Promise.all([open('/api/changes'), open('/api/changes')]);
    await Promise.all(streams.map((s) => s.waitFor('ready', (ev) => ev.some((e) => e.event === 'ready'))));
    expect(feed.size).toBeGreaterThanOrEqual(2);
    for (const s of streams) s.close();
    await waitUntil('every stream to unsubscribe', async () => feed.size === 0, 10_000, 50);
  });
});

describe('GET /api/annotators/:id/progress', () => {
  it('is a 404 or 400 in the error shape for unknown or malformed ids, 401 without a session', async () => {
    const missing = await fetch(`${base}/api/annotators/999999/progress`, { headers: { cookie } });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'Annotator not found' });
    expect((await fetch(`${base}/api/annotators/abc/progress`, { headers: { cookie } })).status).toBe(400);
    expect((await fetch(`${base}/api/annotators/1/progress`)).status).toBe(401);
  });

  it('follows a start phase by phase and ends after ready', async () => {
    const id = await createAnnotator('Progress Ready');
    const s = await open(`/api/annotators/${id}/progress`);
    try {
      await s.waitFor('the first event', (ev) => ev.length >= 1);
      expect(data(s.events[0]!)).toMatchObject({ status: 'created', phase: null, percent: 0, ready: false, failed: false, message: 'Not started yet' });

      expect((await t.json('POST', `/api/annotators/${id}/start`)).status).toBe(200);
      await s.waitFor('starting', (ev) => ev.some((e) => data(e).status === 'starting'));
      await advance(id, 'database', 'container', 'database ls_annotator_x created', 'starting: container');
      await s.waitFor('container', (ev) => ev.some((e) => data(e).phase === 'container'));
      await advance(id, 'container', 'healthy', 'container running', 'starting: waiting for Label Studio');
      await s.waitFor('healthy', (ev) => ev.some((e) => data(e).phase === 'healthy'));
      expect(s.isEnded()).toBe(false);
      await t.db.transaction().execute(async (trx) => {
        await transitionAnnotator(trx, id, 'active', 'Label Studio is up at http://x.fleet.localhost', { generation: 1 });
        await trx.updateTable('annotators').set({ startPhase: null, routedAt: new Date() }).where('id', '=', id).execute();
      });
      await s.waitFor('ready', (ev) => ev.some((e) => data(e).ready === true));
      await Promise.race([s.ended, new Promise((_, reject) => setTimeout(() => reject(new Error('the stream did not end after ready')), 10_000))]);

      const seen = s.events.map((e) => data(e));
      expect(s.events.every((e) => e.event === 'progress')).toBe(true);
      // Percent never goes back, and every phase the start went through was reported.
      const percents = seen.map((p) => p.percent);
      expect([...percents].sort((a, b) => a - b)).toEqual(percents);
      expect(seen.map((p) => p.phase)).toEqual(expect.arrayContaining(['database', 'container', 'healthy', 'active']));
      const last = seen.at(-1);
      expect(last).toMatchObject({ status: 'active', phase: 'active', percent: 100, ready: true, failed: false });
      expect(last.url).toMatch(/^http:\/\//);
      expect(last.phases.map((p: { state: string }) => p.state)).toEqual(['done', 'done', 'done', 'done', 'done', 'done']);
      expect(last.phases[0].message).toBe('database ls_annotator_x created');
    } finally {
      s.close();
    }
  });

  it('ends after failed, with the failed phase and its reason', async () => {
    const id = await createAnnotator('Progress Failed');
    expect((await t.json('POST', `/api/annotators/${id}/start`)).status).toBe(200);
    const s = await open(`/api/annotators/${id}/progress`);
    try {
      await s.waitFor('starting', (ev) => ev.some((e) => data(e).status === 'starting'));
      await advance(id, 'database', 'container', 'database created', 'starting: container');
      await t.db.transaction().execute((trx) => transitionAnnotator(trx, id, 'error', 'phase container took longer than 300 s'));
      await t.db.updateTable('annotators').set({ startPhase: null }).where('id', '=', id).execute();
      await s.waitFor('failed', (ev) => ev.some((e) => data(e).failed === true));
      await s.ended;
      expect(data(s.events.at(-1)!)).toMatchObject({ status: 'error', phase: 'container', failed: true, ready: false, percent: 10, message: 'phase container took longer than 300 s' });
    } finally {
      s.close();
    }
  });

  it('for an annotator already active: one ready event, then the end', async () => {
    const id = await createAnnotator('Already Active');
    await sql`UPDATE annotators SET status = 'active', routed_at = now() WHERE id = ${id}`.execute(t.db);
    const s = await open(`/api/annotators/${id}/progress`);
    await s.ended;
    expect(s.events.map((e) => [e.event, data(e).ready])).toEqual([['progress', true]]);
  });
});

describe('the OpenAPI document', () => {
  it('describes both streams as text/event-stream', async () => {
    const doc = (await t.json('GET', '/api/openapi.json')).body;
    for (const path of ['/api/annotators/{id}/progress', '/api/changes']) {
      expect(Object.keys(doc.paths[path].get.responses['200'].content)).toEqual(['text/event-stream']);
    }
    expect(doc.components.schemas.StartProgressEvent.properties).toHaveProperty('percent');
    expect(doc.components.schemas.FleetChangeEvent.properties).toHaveProperty('topics');
  });
});

describe('service stop', () => {
  it('ends open streams, so a graceful stop does not wait for browsers', async () => {
    const port = await freePort();
    const other = await startTestService({ env: { HOST: '127.0.0.1', PORT: String(port) } });
    await other.service.start({ reconcile: false });
    const csrf = (await (await fetch(`http://127.0.0.1:${port}/api/auth/csrf`)).json()) as { csrfToken: string };
    const login = await fetch(`http://127.0.0.1:${port}/api/auth/callback/credentials`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'admin@fleet.local', password: 'admin', csrfToken: csrf.csrfToken }),
    });
    const c = login.headers.get('set-cookie')!.split(';')[0]!;
    const s = await openSse(`http://127.0.0.1:${port}/api/changes`, { cookie: c });
    await s.waitFor('ready', (ev) => ev.some((e) => e.event === 'ready'));
    const started = Date.now();
    await other.service.stop();
    await s.ended;
    expect(Date.now() - started).toBeLessThan(20_000);
    await other.database.drop();
  });
});
