/**
 * Adversarial review of the webhook inbox (src/workflows/inbox.ts, migrations 0042/0043) and what
 * it feeds (src/workflows/ingest.ts): what an annotator, an operator or Label Studio can do to it,
 * stated as what a user or operator would notice. Tests in `it.fails` are open bugs: each names
 * its bug; the owner flips it to `it` with the fix.
 */
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcileSteps } from '../../orchestrator/steps.ts';
import { openDatabase, type DbHandle } from '../../src/db/index.ts';
import type { Annotator } from '../../src/db/types.ts';
import { webhookInbox } from '../../src/workflows/inbox.ts';
import { seedAnnotator, seedInProgressBatch, seedRole, webhookHeaders, webhooksApplied } from '../helpers/batches.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

const choice = (c: unknown) => [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [c] } }];
let annotationId = 610_000;
let clock = Date.parse('2026-03-01T00:00:00Z');

/** A Label Studio webhook body as LS sends it (project and task objects included). */
function payload(action: string, lsProjectId: number, lsTaskId: number, over: { id?: number; result?: unknown[] } = {}) {
  const updated = new Date((clock += 1000)).toISOString();
  return {
    action,
    annotation: {
      id: over.id ?? ++annotationId,
      result: over.result ?? choice('cat'),
      was_cancelled: false,
      ground_truth: false,
      created_at: updated,
      updated_at: updated,
      lead_time: 4.2,
      task: lsTaskId,
      project: lsProjectId,
      completed_by: 1,
    },
    project: { id: lsProjectId, title: 'x', task_number: 3 },
    task: { id: lsTaskId, data: { image: 'http://x' }, meta: {} },
  };
}

/** Polls `fn` until it is true or `ms` passed; returns its last answer (the caller asserts it). */
async function eventually(fn: () => Promise<boolean>, ms = 15_000): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
}

const taskStatus = async (t: TestService, annotatorId: number, lsTaskId: number) =>
  (
    await t.db
      .selectFrom('assignmentTasks as t')
      .innerJoin('assignments as a', 'a.id', 't.assignmentId')
      .select('t.status')
      .where('a.annotatorId', '=', annotatorId)
      .where('t.lsTaskId', '=', lsTaskId)
      .executeTakeFirstOrThrow()
  ).status;

const inboxRows = async (t: TestService, failed: boolean) =>
  Number(
    (await sql<{ n: string }>`SELECT count(*) AS n FROM ${sql.table(failed ? 'webhook_inbox_set_aside' : 'webhook_inbox')}`.execute(t.db)).rows[0]!.n,
  );

describe('a gold task annotated with a result that gold scoring cannot read is applied; nobody else waits', () => {
  let t: TestService;
  let mallory: Annotator;
  let alice: Annotator;
  beforeAll(async () => {
    t = await startTestService({ overrides: { wake: () => {} } });
    const role = await seedRole(t);
    mallory = await seedAnnotator(t, { roleId: role.id });
    alice = await seedAnnotator(t, { roleId: role.id });
  });
  afterAll(async () => t?.close());

  /*
   * Was a bug (high, fixed): an annotator controls the result JSON of their own Label Studio (its API takes any
   * result). A choice given as an object whose `toString` is not a function — `{"toString": 0}` —
   * is valid JSON, passes the webhook's validation (domain/json-value.ts) and is stored in the
   * inbox. When it lands on a gold task, applyGold → scoreGoldTasks → scoreGold → strings() calls
   * String(value), which throws a TypeError ("Cannot convert object to primitive value"). The
   * drainer (inbox.ts #drainOnce) reads any error without a SQLSTATE as "the database is away":
   * the group is rolled back and retried every DRAIN_RETRY_MS, forever, never one by one, never
   * set aside. Every other annotator's events queue behind it; every ANNOTATIONS_DELETED webhook
   * (which waits for the drain) answers 500 and is lost; every reconcile pass's webhook-inbox step
   * fails. Fix: classify only connection failures as "stop and retry" (no SQLSTATE and a socket /
   * pg connection error); any other error of a group → one by one, and an event failing alone with
   * it → set aside. Also make strings()/labelKey() in domain/gold-scoring.ts total (canonical() for
   * non-strings instead of String()).
   */
  it("is applied while everyone else's events are applied and deletions still answer 200", async () => {
    const m = await seedInProgressBatch(t, { annotatorId: mallory.id, lsProjectId: 6101, real: 2, gold: 1, prefix: 'poison' });
    const a = await seedInProgressBatch(t, { annotatorId: alice.id, lsProjectId: 6102, real: 2, prefix: 'bystander' });
    const poison = payload('ANNOTATION_CREATED', m.lsProjectId, m.gold[0]!, { result: choice({ toString: 0 }) });
    expect((await t.anonymous.json('POST', '/api/webhook', poison, webhookHeaders(t, mallory))).status).toBe(200);
    await webhooksApplied(t);

    // Alice annotates a task of hers: an ordinary event, acknowledged.
    const ok = payload('ANNOTATION_CREATED', a.lsProjectId, a.real[0]!);
    expect((await t.anonymous.json('POST', '/api/webhook', ok, webhookHeaders(t, alice))).status).toBe(200);
    // What Alice sees: her task annotated moments later.
    const applied = await eventually(async () => (await taskStatus(t, alice.id, a.real[0]!)) === 'annotated');
    // And she can delete an annotation (the deletion waits for the drain).
    const del = await t.anonymous.json(
      'POST',
      '/api/webhook',
      { action: 'ANNOTATIONS_DELETED', annotations: [{ id: ok.annotation.id }], project: { id: a.lsProjectId } },
      webhookHeaders(t, alice),
    );
    expect({ applied, deletion: del.status, pending: await inboxRows(t, false) }).toEqual({ applied: true, deletion: 200, pending: 0 });
  }, 120_000);
});

describe('an event set aside by one process is named by whichever process reports next, once', () => {
  let t: TestService;
  let other: DbHandle | undefined;
  beforeAll(async () => {
    t = await startTestService({ overrides: { wake: () => {} } });
  });
  afterAll(async () => {
    await other?.close();
    await t?.close();
  });

  /*
   * Was a bug (medium; fixed by migration 0051): README and inbox.ts promise a set-aside event is "named in the next reconcile
   * report's webhook-inbox errors". The names live in the memory of the process whose drain set
   * the event aside (WebhookInbox.#setAside), so the report of any other process — `fleet
   * reconcile` run by an operator, the replica holding the reconcile lock, the service after a
   * restart — names nothing, while the row stays in webhook_inbox forever (no purge, no API, no
   * gauge). Fix: the step reads set-aside rows from webhook_inbox (e.g. those with failed_at and
   * no reported_at, marking them reported in the same statement), not from process memory.
   */
  it('is named by the webhook-inbox step of `fleet reconcile` (another process on the same database)', async () => {
    const role = await seedRole(t);
    const a = await seedAnnotator(t, { roleId: role.id });
    const b = await seedInProgressBatch(t, { annotatorId: a.id, lsProjectId: 6201, real: 2, prefix: 'aside' });
    // A row the service's drain sets aside (a value the database refuses: 22P02).
    const p = payload('ANNOTATION_CREATED', b.lsProjectId, b.real[0]!);
    const event = {
      annotator: a.id, event_type: 'annotation_created', source: 'webhook', project: b.lsProjectId, ls_task: b.real[0]!, annotation: p.annotation.id,
      result: p.annotation.result, updated_at: p.annotation.updated_at, time_spent_ms: 4200, lead_time: 'abc', was_cancelled: false,
      review_decision: null, review_reason: null,
    };
    await sql`INSERT INTO webhook_inbox (event) VALUES (${JSON.stringify(event)}::jsonb)`.execute(t.db);
    await webhookInbox(t.ctx).drain();
    expect(await inboxRows(t, true)).toBe(1);

    // An operator runs `fleet reconcile`: its own process, its own connection pool.
    other = await openDatabase({ url: t.database.url, dataDir: '/nonexistent', poolSize: 2 });
    const cli = { ...t.ctx, database: other } as typeof t.ctx;
    const step = reconcileSteps(cli).find((s) => s.name === 'webhook-inbox')!;
    const report = await step.run(cli);
    expect(report.errors).toEqual([expect.stringContaining(`annotator ${a.id}`)]);
    // Named once: neither that process's next pass nor the service's names it again; it is kept.
    expect((await step.run(cli)).errors).toEqual([]);
    expect((await reconcileSteps(t.ctx).find((s) => s.name === 'webhook-inbox')!.run(t.ctx)).errors).toEqual([]);
    expect(await inboxRows(t, true)).toBe(1);
  }, 60_000);
});

describe('faults the inbox survives (regression tests: passing)', () => {
  let t: TestService;
  let a: Annotator;
  let second: DbHandle | undefined;
  let project = 6300;
  beforeAll(async () => {
    t = await startTestService({ overrides: { wake: () => {} } });
    a = await seedAnnotator(t, { roleId: (await seedRole(t)).id });
  });
  afterAll(async () => {
    await second?.close();
    await t?.close();
  });

  /** `n` UPDATED events of `a` on the 20 tasks of a fresh batch, each newer than the last, stored as the handler stores them. */
  async function backlog(n: number) {
    const b = await seedInProgressBatch(t, { annotatorId: a.id, lsProjectId: ++project, real: 20, prefix: 'fault' });
    const events = Array.from({ length: n }, (_, k) => {
      const p = payload('ANNOTATION_UPDATED', b.lsProjectId, b.real[k % 20]!, { id: project * 100 + (k % 20) });
      return {
        annotator: a.id, event_type: 'annotation_updated', source: 'webhook', project: b.lsProjectId, ls_task: b.real[k % 20]!,
        annotation: p.annotation.id, result: p.annotation.result, updated_at: p.annotation.updated_at, time_spent_ms: 4200, lead_time: 4.2,
        was_cancelled: false, review_decision: null, review_reason: null,
      };
    });
    await sql`INSERT INTO webhook_inbox (event) SELECT e FROM jsonb_array_elements(${JSON.stringify(events)}::jsonb) e`.execute(t.db);
    return b;
  }
  const recorded = async (lsProjectId: number) =>
    Number((await sql<{ n: string }>`SELECT count(*) AS n FROM annotation_events WHERE ls_project_id = ${lsProjectId}`.execute(t.db)).rows[0]!.n);

  it("applies every event once when the drainer's connection is ended by the server mid-drain (pg_terminate_backend)", async () => {
    const b = await backlog(3_000);
    // The batch's tasks held by another transaction: the drain's group statement waits for them,
    // running, however fast the drain would otherwise be.
    const holder = new pg.Client({ connectionString: t.database.url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM assignment_tasks WHERE assignment_id = $1 FOR UPDATE', [b.assignmentId]);
    const inbox = webhookInbox(t.ctx);
    const draining = inbox.drain().catch((err: Error) => err);
    // The drain's group statement, running: its backend is ended as a failover or an operator would.
    const killed = await eventually(async () => {
      const { rows } = await sql<{ ok: boolean }>`
        SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'active' AND query LIKE '%labelfleet_ingest_annotations%' AND pid <> pg_backend_pid()`.execute(t.db);
      return rows.some((r) => r.ok);
    }, 30_000);
    await holder.query('COMMIT');
    await holder.end();
    expect(killed).toBe(true);
    await draining;
    // What the retry timer and every reconcile pass do: drain again until nothing is left.
    expect(await eventually(async () => (await inbox.drain().then(() => true, () => false)) && (await inboxRows(t, false)) === 0, 60_000)).toBe(true);
    expect({ recorded: await recorded(b.lsProjectId), setAside: await inboxRows(t, true) }).toEqual({ recorded: 3_000, setAside: 0 });
  }, 120_000);

  it('applies every event once with two processes draining the same backlog at once', async () => {
    const b = await backlog(3_000);
    second = await openDatabase({ url: t.database.url, dataDir: '/nonexistent', poolSize: 4 });
    const other = webhookInbox({ ...t.ctx, database: second });
    await Promise.all([webhookInbox(t.ctx).drain(), other.drain()]);
    expect({ pending: await inboxRows(t, false), setAside: await inboxRows(t, true), recorded: await recorded(b.lsProjectId) }).toEqual({
      pending: 0,
      setAside: 0,
      recorded: 3_000,
    });
  }, 120_000);
});

describe("the comparison with Label Studio applying an export read before a deletion: a deleted annotation stays deleted", () => {
  let t: TestService;
  beforeAll(async () => {
    t = await startTestService({ overrides: { wake: () => {} } });
  });
  afterAll(async () => t?.close());

  /*
   * Was a bug (medium, fixed by migration 0050): compare.ts reads Label Studio's export of a batch's project, then settles each
   * task to it (settleTaskState → labelfleet_ingest_annotations with p_settle, which ignores the
   * tombstones: `live ... AND (p_settle OR tomb.found IS NULL)`). An annotator who deletes an
   * annotation between the export's read and the settle — the deletion webhook applied in that
   * window, as Label Studio sends it at once — gets the deleted annotation back on the task: it
   * counts toward the batch's completion and is exported, until some later comparison. Label
   * Studio never gives a deleted annotation's id back, so a tombstone is final truth, newer than
   * any export that still shows it. Fix: settling never applies an annotation that has a
   * tombstone (keep `tomb.found IS NULL` for p_settle with a non-null annotation), and compare's
   * eventFor/settleTask leave such a task as the deletion left it.
   */
  it('leaves the task open: the annotator deleted that annotation after the export was read', async () => {
    const { compareWithLabelStudio } = await import('../../src/workflows/compare.ts');
    const a = await seedAnnotator(t, { roleId: (await seedRole(t)).id });
    const b = await seedInProgressBatch(t, { annotatorId: a.id, lsProjectId: 6501, real: 2, prefix: 'stale' });
    const created = payload('ANNOTATION_CREATED', b.lsProjectId, b.real[0]!);
    expect((await t.anonymous.json('POST', '/api/webhook', created, webhookHeaders(t, a))).status).toBe(200);
    await webhooksApplied(t);
    expect(await taskStatus(t, a.id, b.real[0]!)).toBe('annotated');
    // The reconciler reads Label Studio's export: the annotation is there.
    const exported = [
      { id: b.real[0]!, data: {}, annotations: [{ ...created.annotation, result: created.annotation.result as never }] },
      { id: b.real[1]!, data: {}, annotations: [] },
    ];
    // Meanwhile the annotator deletes it; Label Studio's webhook is applied at once.
    const del = await t.anonymous.json('POST', '/api/webhook', { action: 'ANNOTATIONS_DELETED', annotations: [{ id: created.annotation.id }], project: { id: b.lsProjectId } }, webhookHeaders(t, a));
    expect(del.status).toBe(200);
    expect(await taskStatus(t, a.id, b.real[0]!)).toBe('open');
    // The comparison applies what it read.
    const batch = await t.db.selectFrom('assignments').selectAll().where('id', '=', b.assignmentId).executeTakeFirstOrThrow();
    await compareWithLabelStudio(t.ctx, batch, exported);
    expect(await taskStatus(t, a.id, b.real[0]!)).toBe('open');
  }, 60_000);
});
