/**
 * Adversarial review of the annotators step's concurrency (orchestrator/annotators-step.ts:
 * reconcileAll's claims during a pass, takeAgain, RECONCILES_PER_PASS) on the real service and its
 * reconcile loop, PostgreSQL (instance databases included) and the in-memory backend
 * (test/helpers/memory-backend.ts). What an operator sees: each start's phases, once each, in
 * order. Tests in `it.fails` are open bugs: each names its bug; the owner flips it with the fix.
 */
import { randomBytes } from 'node:crypto';
import { CamelCasePlugin, Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceSpec, ObservedInstance } from '../../orchestrator/backends/types.ts';
import { InstanceDatabases } from '../../orchestrator/databases.ts';
import { openDatabase, type DbHandle } from '../../src/db/index.ts';
import type { Database } from '../../src/db/types.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { TEST_DATABASE_URL } from '../helpers/env.ts';
import { MemoryBackend } from '../helpers/memory-backend.ts';
import { startTestService, testConfig, type TestService } from '../helpers/service.ts';

const NAMESPACE = `brk${randomBytes(3).toString('hex')}`;
const DOMAIN = 'break.localhost';

/** A promise with its resolver. */
function latch() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, opened };
}

/**
 * The memory backend, counting ensure() calls for one annotator in flight at once: two at once
 * mean two reconciles of that annotator ran concurrently (the step promises one at a time).
 */
class WatchedBackend extends MemoryBackend {
  readonly inFlight = new Map<number, number>();
  readonly overlaps = new Map<number, number>();
  /** ensure() for an annotator waits for its gate, when one is set. */
  readonly gates = new Map<number, Promise<void>>();
  override async ensure(spec: InstanceSpec): Promise<ObservedInstance> {
    const id = spec.annotatorId;
    const n = (this.inFlight.get(id) ?? 0) + 1;
    this.inFlight.set(id, n);
    if (n > 1) this.overlaps.set(id, (this.overlaps.get(id) ?? 0) + 1);
    try {
      await this.gates.get(id);
      return await super.ensure(spec);
    } finally {
      this.inFlight.set(id, this.inFlight.get(id)! - 1);
    }
  }
}

/**
 * Timing control, test-side only: the service's database handle answers through a pg Client that
 * can hold one statement back (`holdNext`, picked by its text and by who issued it, read from the
 * async stack), and the instance databases can hold a database made ahead of a start.
 */
const control = {
  hold: undefined as undefined | { text: RegExp; caller: (stack: string) => boolean; reached: () => void; release: Promise<void> },
  prepareGate: undefined as undefined | { reached: () => void; release: Promise<void> },
  /** The next statement matching, issued by `caller` with these values, fails with `error` instead of running. */
  fail: undefined as undefined | { text: RegExp; caller: (stack: string) => boolean; values: unknown[]; error: Error },
};

class HeldClient extends pg.Client {
  override query(...args: any[]): any {
    const h = control.hold;
    const text = args[0];
    const f = control.fail;
    if (f && typeof text === 'string' && f.text.test(text) && JSON.stringify(args[1]) === JSON.stringify(f.values) && f.caller(new Error().stack ?? '')) {
      control.fail = undefined;
      return Promise.reject(f.error);
    }
    if (h && typeof text === 'string' && h.text.test(text) && h.caller(new Error().stack ?? '')) {
      control.hold = undefined;
      h.reached();
      return h.release.then(() => (super.query as (...a: unknown[]) => unknown)(...args));
    }
    return (super.query as (...a: unknown[]) => unknown)(...args);
  }
}

class GatedDatabases extends InstanceDatabases {
  override async ensure(annotatorId: number, password?: string) {
    const g = control.prepareGate;
    if (g && password === undefined) {
      control.prepareGate = undefined;
      g.reached();
      await g.release;
    }
    return super.ensure(annotatorId, password);
  }
}

let database: TestDatabase;
let handle: DbHandle;
let t: TestService;
let backend: WatchedBackend;
const ids: number[] = [];

beforeAll(async () => {
  backend = await new WatchedBackend({ namespace: NAMESPACE, domain: DOMAIN, faults: { ensureDelayMs: 1000, slowMs: 300 } }).start();
  // The service's own handle on the test database, its queries through HeldClient.
  database = await createTestDatabase();
  const base = await openDatabase({ url: database.url, dataDir: '/nonexistent', poolSize: 4 });
  const pool = new pg.Pool({ connectionString: database.url, max: 10, Client: HeldClient });
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), plugins: [new CamelCasePlugin({ maintainNestedObjectKeys: true })] });
  handle = { ...base, db, close: async () => (await base.close(), await db.destroy()) };
  const env = { FLEET_NAMESPACE: NAMESPACE, FLEET_DOMAIN: DOMAIN, TRAEFIK_URL: backend.routerUrl, LS_DATABASE_URL: TEST_DATABASE_URL(), RECONCILE_INTERVAL_MS: '2000' };
  t = await startTestService({
    env,
    overrides: { backend, database: handle, instanceDatabases: new GatedDatabases(testConfig({ DATABASE_URL: database.url, ...env })) },
  });
  backend.onReady = async (spec) => {
    const res = await t.anonymous.json('POST', `/api/annotators/${spec.annotatorId}/token`, { token: `tok-${spec.annotatorId}` }, {
      'x-webhook-secret': spec.env.WEBHOOK_SECRET!,
    });
    if (res.status !== 200) throw new Error(`token report answered ${res.status}`);
  };
  t.service.reconciler.start();
});
afterAll(async () => {
  await t?.service.reconciler.stop();
  for (const id of ids) await t?.ctx.instanceDatabases.drop(id).catch(() => {});
  await t?.ctx.instanceDatabases.close();
  await handle?.close().catch(() => {});
  await t?.close();
  await database?.drop();
  await backend?.close();
});

const row = (id: number) => handle.db.selectFrom('annotators').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

async function until(what: string, fn: () => Promise<boolean>, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function phasesOf(id: number): Promise<string[]> {
  const rows = await handle.db
    .selectFrom('containerEvents')
    .select(['eventType', 'details'])
    .where('annotatorId', '=', id)
    .where('eventType', '=', 'start_progress')
    .orderBy('id')
    .execute();
  return rows.map((r) => String((r.details as { phase?: string }).phase));
}

describe('an annotator claimed again while the pass is done with it but has not taken it again is reconciled once at a time', () => {
  /*
   * Was a bug (fixed; the CI symptom of test/e2e/fleet-docker.test.ts, start phases
   * ['container', 'healthy', 'healthy', 'token', 'route']). Both 'healthy' events carry
   * previousPhase 'container'; the second is written one ensure() later by a second reconcile of
   * the same annotator running at the same time. How (annotators-step.ts reconcileAll):
   *  1. A worker reconciles annotator R (here prepare-database, R still created). The POST start
   *     meanwhile makes R due; a claim during the pass puts R in claimedWhileWorking.
   *  2. The worker finishes: working.delete(R), then `await takeAgain([R])` (a SELECT).
   *  3. Before that SELECT answers, claimMore (any wake-up, or the 50 ms tick) claims R again — any
   *     write made it due — R is neither working nor queued, so claimMore's takeAgain reads R and
   *     enqueues it: a worker runs ensure-database (setPhase container, then the container start).
   *  4. The worker's takeAgain now reads R at phase 'container', changed since `seen`, and enqueues
   *     R again — takeAgain never re-checks working/queued —: a second worker reconciles R at once,
   *     decides create-instance, ensure()s the same container and writes setPhase(healthy) a
   *     second time. setPhase's guard (`guarded`) checks status and start generation, not the
   *     phase, so a stale reconcile may also move a phase back (token → healthy).
   * In CI the window of step 3 is one SELECT long; here that SELECT is held until step 3 is done.
   * The root: the worker's `finally` cleared `working` for R after its takeAgain, while another
   * worker held R. Fixed: the mark is cleared before takeAgain; takeAgain skips an annotator working
   * (→ claimedWhileWorking) or queued; phase writes are guarded on the phase decided on.
   */
  it('records each phase once and never reconciles one annotator twice at once', async () => {
    const prepare = latch();
    const releasePrepare = latch();
    control.prepareGate = { reached: prepare.open, release: releasePrepare.opened };
    const created = await t.json('POST', '/api/annotators', { name: 'Twice', email: `twice-${NAMESPACE}@example.com` });
    expect(created.status).toBe(201);
    const id = created.body.id as number;
    ids.push(id);
    // 1. The pass makes R's database ahead of its start (held); the admin starts R meanwhile.
    await prepare.opened;
    expect((await t.json('POST', `/api/annotators/${id}/start`)).status).toBe(200);
    await until('the start claimed during the pass', async () => (await row(id)).dueAt!.getTime() > Date.now() + 1000);
    // 2. The worker's takeAgain SELECT of R, held.
    const selectHeld = latch();
    const releaseSelect = latch();
    control.hold = {
      text: /^select \* from "annotators" where "id" in \(\$1\) order by "id"$/,
      caller: (stack) => /takeAgain/.test(stack) && !/claimMore/.test(stack),
      reached: selectHeld.open,
      release: releaseSelect.opened,
    };
    releasePrepare.open();
    await selectHeld.opened;
    // 3. Any write to R makes it due; a wake-up claims it (here: a password issued).
    expect((await t.json('POST', `/api/annotators/${id}/password`)).status).toBe(200);
    await until('R in its container phase', async () => (await row(id)).startPhase === 'container', 10_000).catch(() => {});
    // 4. The held SELECT answers.
    releaseSelect.open();
    await until('R settled', async () => ['active', 'error'].includes((await row(id)).status), 60_000);
    expect({ phases: await phasesOf(id), overlaps: backend.overlaps.get(id) ?? 0 }).toEqual({
      phases: ['container', 'healthy', 'token', 'route'],
      overlaps: 0,
    });
  }, 120_000);
});

describe("a reconcile that fails outside its action's error handling : the pass ends only after its other reconciles", () => {
  /*
   * Was a bug (fixed): reconcileAnnotator re-reads the row after an action (`row = await ...selectFrom
   * ('annotators')...`) outside its try/catch. When that read fails (the connection ended by a
   * failover or pg_terminate_backend, a statement timeout), the worker rejects, Promise.all in
   * reconcileAll rejects at once, and the annotators step — and the pass, and its lock — end while
   * the other workers are still creating and starting containers: `await Promise.all(pass.creating
   * .values())` and the requeue are skipped, and the next pass (another replica's, or this one's
   * after its pause) reconciles those annotators while the orphaned workers still do — the same
   * double reconcile as above. Design: "nothing the pass began outlives it". Fix: the re-read
   * inside the try (recordFailure), and reconcileAll waits for every worker (Promise.allSettled)
   * before it reports the failure.
   */
  it("ends the pass only once every reconcile it began is done", async () => {
    await t.service.reconciler.stop();
    const make = async (name: string) => {
      const created = await t.json('POST', '/api/annotators', { name, email: `${name}-${NAMESPACE}@example.com` });
      expect(created.status).toBe(201);
      ids.push(created.body.id);
      expect((await t.json('POST', `/api/annotators/${created.body.id}/start`)).status).toBe(200);
      return created.body.id as number;
    };
    const r = await make('orphan-r');
    const s = await make('orphan-s');
    // S's container start takes its time (a busy Docker daemon); R's re-read after its start fails.
    const releaseS = latch();
    backend.gates.set(s, releaseS.opened);
    const lost = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
    control.fail = { text: /^select \* from "annotators" where "id" = \$1$/, caller: (stack) => /reconcileAnnotator/.test(stack), values: [r], error: lost };
    try {
      let passDone = false;
      const pass = t.service.reconciler.runOnce({ wait: true }).finally(() => (passDone = true));
      await until("R's re-read failed", async () => control.fail === undefined);
      await new Promise((resolve) => setTimeout(resolve, 500));
      // S's container start is still under way: the pass waits for it.
      expect({ passDone, sStarting: backend.inFlight.get(s) ?? 0 }).toEqual({ passDone: false, sStarting: 1 });
      releaseS.open();
      const report = await pass;
      if (report === 'busy') throw new Error('the pass lock was busy');
      // The pass is over: nothing it began is still running; R's lost read is R's error, not the pass's.
      expect(backend.inFlight.get(s) ?? 0).toBe(0);
      expect(report.steps.annotators!.errors).toEqual([expect.stringContaining(`annotator ${r}`)]);
    } finally {
      releaseS.open();
      backend.gates.delete(s);
      control.fail = undefined;
    }
  }, 120_000);
});
