/**
 * Group commit of the webhook inbox (src/workflows/inbox.ts append): webhooks that arrive while
 * one INSERT is being written are stored together by the next, one statement and one commit, and
 * each is answered only once its own row is committed. What a Label Studio instance and an
 * operator would notice: every acknowledged event applied exactly once, a failed commit answered
 * 5xx to each webhook it held with nothing of them stored, one event the database refuses failing
 * alone.
 *
 * The writer is held up with a table lock from another session, so the webhooks sent meanwhile
 * queue up and are written by one statement once it is released; the drainer is held up with its
 * advisory lock so the stored rows can be read before they are applied.
 */
import pg from 'pg';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Annotator } from '../../src/db/types.ts';
import { seedAnnotator, seedInProgressBatch, seedRole, webhookHeaders, webhooksApplied } from '../helpers/batches.ts';
import { webhookInbox } from '../../src/workflows/inbox.ts';
import { startTestService, type TestService } from '../helpers/service.ts';
import { waitUntil } from '../helpers/process.ts';

/** The drainers' advisory lock (src/workflows/inbox.ts DRAIN_LOCK). */
const DRAIN_LOCK = 7_404_010;

let t: TestService;
let annotator: Annotator;
let project = 8100;
let annotationId = 81_000;
/** Another session: holds the inbox's writer and drainer while webhooks queue. */
let holder: pg.Client;

beforeAll(async () => {
  t = await startTestService({ overrides: { wake: () => {} } });
  annotator = await seedAnnotator(t, { roleId: (await seedRole(t)).id });
  holder = new pg.Client({ connectionString: t.database.url });
  await holder.connect();
});
afterEach(async () => {
  await holder.query('ROLLBACK').catch(() => {});
  await holder.query('SELECT pg_advisory_unlock_all()');
  await sql`DROP TRIGGER IF EXISTS fail_commit ON webhook_inbox`.execute(t.db);
  await sql`ALTER TABLE webhook_inbox DROP CONSTRAINT IF EXISTS refuse_annotation`.execute(t.db);
  await webhooksApplied(t);
});
afterAll(async () => {
  await holder?.end();
  await t?.close();
});

function created(b: { lsProjectId: number }, lsTaskId: number, id = ++annotationId) {
  return {
    action: 'ANNOTATION_CREATED',
    annotation: {
      id,
      result: [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['cat'] } }],
      created_at: '2026-03-01T10:00:00.000001Z',
      updated_at: '2026-03-01T10:00:00.000001Z',
      lead_time: 4,
      task: lsTaskId,
      project: b.lsProjectId,
    },
    project: { id: b.lsProjectId },
    task: { id: lsTaskId },
  };
}

const send = (body: unknown) => t.anonymous.json('POST', '/api/webhook', body, webhookHeaders(t, annotator));

/**
 * Sends `bodies` at once while the inbox's writer is held up by a table lock, so that all but the
 * first queue behind it and are written together when the lock goes; the drainer is held too.
 * Resolves with the answers, in `bodies` order.
 */
async function sendQueued(bodies: unknown[]) {
  // An action LabelFleet ignores (stores nothing) warms the secret cache, so every webhook below
  // reaches the inbox without an annotator read of its own.
  expect((await send({ action: 'PROJECT_UPDATED' })).status).toBe(200);
  await holder.query('SELECT pg_advisory_lock($1)', [DRAIN_LOCK]);
  await holder.query('BEGIN');
  await holder.query('LOCK TABLE webhook_inbox IN SHARE MODE');
  const answers = Promise.all(bodies.map((b) => send(b)));
  // The first INSERT waits for the lock; the others queue behind it in the process.
  await waitUntil(
    'an inbox INSERT to wait for the lock',
    async () => (await holder.query(`SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'webhook_inbox'::regclass AND NOT granted`)).rows[0].n > 0,
    30_000,
    20,
  );
  await new Promise((r) => setTimeout(r, 500));
  await holder.query('COMMIT');
  return answers;
}

/** The inbox rows not yet applied: the annotation each holds and its commit's time. */
async function inboxRows() {
  const { rows } = await holder.query<{ annotation: number; received: string }>(
    `SELECT (event->>'annotation')::int AS annotation, received_at::text AS received FROM webhook_inbox ORDER BY id`,
  );
  return rows;
}

const eventsOf = async (ids: number[]) =>
  Number((await sql<{ n: number }>`SELECT count(*)::int AS n FROM annotation_events WHERE ls_annotation_id = ANY(${ids}::int[])`.execute(t.db)).rows[0]!.n);

describe('webhook inbox: group commit', () => {
  it('stores webhooks sent together in one statement, each applied once, duplicates within the group included', async () => {
    const b = await seedInProgressBatch(t, { annotatorId: annotator.id, lsProjectId: ++project, real: 8, prefix: 'gc' });
    const bodies = b.real.map((task) => created(b, task));
    // Two duplicates of events in the same group (a retrying proxy).
    const sent = [...bodies, bodies[1], bodies[5]];
    const answers = await sendQueued(sent);
    expect(answers.map((a) => a.status)).toEqual(sent.map(() => 200));
    // Stored before the answer: all of them, the queued ones by one commit (one transaction time).
    const rows = await inboxRows();
    expect(rows).toHaveLength(sent.length);
    expect(new Set(rows.slice(1).map((r) => r.received)).size).toBe(1);
    // The drain that waited for its lock applies them.
    await holder.query('SELECT pg_advisory_unlock_all()');
    await waitUntil('the inbox to drain', async () => (await inboxRows()).length === 0, 30_000, 50);
    await webhooksApplied(t);
    const ids = bodies.map((x) => x.annotation.id);
    expect(await eventsOf(ids)).toBe(ids.length);
    const batch = await t.db.selectFrom('assignments').select('completedCount').where('id', '=', b.assignmentId).executeTakeFirstOrThrow();
    expect(batch.completedCount).toBe(b.real.length);
  });

  it('answers 5xx to every webhook of a group whose commit fails, and stores none of them', async () => {
    const b = await seedInProgressBatch(t, { annotatorId: annotator.id, lsProjectId: ++project, real: 6, prefix: 'gc' });
    const bodies = b.real.map((task) => created(b, task));
    // The database fails the commit (as a full disk or an I/O error would): a deferred check.
    await sql.raw(`
      CREATE OR REPLACE FUNCTION test_fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'commit failed (test)' USING ERRCODE = '58030'; END $$;
      CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON webhook_inbox DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION test_fail_commit();`).execute(t.db);
    const answers = await sendQueued(bodies);
    for (const a of answers) {
      expect(a.status).toBe(500);
      expect(a.body).toMatchObject({ error: 'Internal server error' });
    }
    expect(await inboxRows()).toEqual([]);
    // Label Studio does not retry; a sender that does (or the comparison with Label Studio) finds
    // nothing half-stored: sent again once the database is well, each is applied once.
    await sql`DROP TRIGGER fail_commit ON webhook_inbox`.execute(t.db);
    await holder.query('SELECT pg_advisory_unlock_all()');
    const again = await Promise.all(bodies.map((x) => send(x)));
    expect(again.map((a) => a.status)).toEqual(bodies.map(() => 200));
    await webhooksApplied(t);
    await waitUntil('the inbox to drain', async () => (await inboxRows()).length === 0, 30_000, 50);
    expect(await eventsOf(bodies.map((x) => x.annotation.id))).toBe(bodies.length);
  });

  it('fails only the webhook whose event the database refuses; the rest of its group is stored', async () => {
    const b = await seedInProgressBatch(t, { annotatorId: annotator.id, lsProjectId: ++project, real: 6, prefix: 'gc' });
    const bodies = b.real.map((task) => created(b, task));
    const refused = bodies[3]!.annotation.id;
    // A value the database refuses for one event only (a check constraint: SQLSTATE 23514).
    await sql.raw(`ALTER TABLE webhook_inbox ADD CONSTRAINT refuse_annotation CHECK (event->>'annotation' <> '${refused}')`).execute(t.db);
    const answers = await sendQueued(bodies);
    expect(answers.map((a) => a.status)).toEqual(bodies.map((x) => (x.annotation.id === refused ? 400 : 200)));
    expect(answers[3]!.body).toMatchObject({ error: expect.stringContaining('Validation failed') });
    expect((await inboxRows()).map((r) => r.annotation)).toEqual(bodies.map((x) => x.annotation.id).filter((id) => id !== refused));
  });

  it('applies, for a drain asked for while webhooks keep arriving (what a deletion waits for), every event acknowledged before it', async () => {
    const b = await seedInProgressBatch(t, { annotatorId: annotator.id, lsProjectId: ++project, real: 200, prefix: 'gc' });
    const acknowledged: number[] = [];
    let stop = false;
    // Four senders that go on until told to stop.
    const senders = Array.from({ length: 4 }, async (_, s) => {
      for (let i = s; !stop && i < b.real.length; i += 4) {
        const body = created(b, b.real[i]!);
        if ((await send(body)).status === 200) acknowledged.push(body.annotation.id);
      }
    });
    await waitUntil('some webhooks acknowledged', async () => acknowledged.length >= 20, 60_000, 10);
    const before = [...acknowledged];
    await webhookInbox(t.ctx).drain();
    const applied = await eventsOf(before);
    stop = true;
    await Promise.all(senders);
    expect(applied).toBe(before.length);
  });
});
