/**
 * `npm run bench -- webhooks`: sustained webhook ingestion over loopback into a real `fleet serve`
 * (a child process, its own PostgreSQL database), with Label Studio-shaped payloads (~3.5 KB, the
 * project block and its config included, as 1.23.2 sends them).
 *
 * 20 annotators with a batch of 400 tasks each (5 % gold, scored on arrival): every task gets an
 * ANNOTATION_CREATED, one task in five an ANNOTATION_UPDATED too, and 20 % of all deliveries are
 * duplicates of earlier ones (what a retrying proxy or a replay would send). 8 concurrent senders
 * (`BENCH_CONCURRENCY`).
 *
 * Baseline in the same run (issue 15): the same deliveries, same senders and pool size, to a bare
 * Hono endpoint (support/bare-endpoint.ts, its own process) that parses the body and does one
 * `INSERT … ON CONFLICT DO NOTHING` with pg. Reported: events/s acknowledged (200), p50/p99 of both
 * and the ratios; LabelFleet acknowledges once the event is stored in its inbox and applies it a
 * moment later (src/workflows/inbox.ts), so also the time from the last 200 until every event is
 * applied and the events/s applied (first send to last applied); then, once all are applied, what
 * a user would check: every unique event recorded once (zero lost, zero double-counted:
 * event rows, annotated tasks and batch counters), the newest update applied.
 * Targets (issue 15): ≥ 0.7 × the bare endpoint's throughput, p99 < 2 × its p99, 0 lost, 0 double.
 * Where the time goes: CPU per event (ms, from /proc, clock ticks of 10 ms) of each endpoint's
 * process and of the PostgreSQL backends of the benchmark's database during its run (LabelFleet's
 * until every event is applied).
 * The service's and its backends' CPU is also given split at the last 200: acknowledging (with
 * the drains that ran meanwhile) and the drain after it.
 * `BENCH_CPU_PROF=dir` runs the service with --cpu-prof into that directory;
 * `BENCH_WEBHOOKS_BUNDLE=<dist/fleet.mjs>` runs a bundle built earlier (another commit's: the
 * "before" of a paired comparison) instead of building this one.
 */
import http from 'node:http';
import { sql } from 'kysely';
import { SecretBox } from '../../src/crypto.ts';
import { webhookSecret } from '../../orchestrator/instance-spec.ts';
import { seededRandom, shuffle } from '../../src/domain/gold-mixing.ts';
import { fileURLToPath } from 'node:url';
import type { Db } from '../../src/db/index.ts';
import { loadavg } from 'node:os';
import { START_NODE_ARGS } from '../../test/helpers/process.ts';
import { load, processCpuSeconds, ratio } from './lib.ts';
import { startChildServer } from './support/child-server.ts';
import { startFleetProcess } from './support/fleet-process.ts';

const ANNOTATORS = 20;
const TASKS = 400;
const GOLD_EVERY = 20;
const UPDATE_SHARE = 0.2;
const DUPLICATE_SHARE = 0.2;
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const POOL = 10;
const KEY = 'bench-webhooks-secret-key-0123456789-abcdef';

const CONFIG_XML =
  '<View><Image name="image" value="$image"/><Choices name="label" toName="image" choice="single"><Choice value="cat"/><Choice value="dog"/></Choices><RectangleLabels name="box" toName="image"><Label value="car"/><Label value="person"/></RectangleLabels></View>';

interface Send {
  annotatorId: number;
  body: string;
  key: string;
}

function projectBlock(projectId: number) {
  return {
    id: projectId,
    title: `#${projectId} · Bench`,
    description: `[labelfleet:assignment=${projectId}]`,
    label_config: CONFIG_XML,
    parsed_label_config: {
      label: { type: 'Choices', to_name: ['image'], inputs: [{ type: 'Image', value: 'image', valueType: null }], labels: ['cat', 'dog'], labels_attrs: { cat: { value: 'cat' }, dog: { value: 'dog' } } },
      box: { type: 'RectangleLabels', to_name: ['image'], inputs: [{ type: 'Image', value: 'image', valueType: null }], labels: ['car', 'person'], labels_attrs: { car: { value: 'car' }, person: { value: 'person' } } },
    },
    task_number: TASKS,
    finished_task_number: 1,
    num_tasks_with_annotations: 1,
    total_annotations_number: 1,
    skipped_annotations_number: 0,
    show_skip_button: true,
    enable_empty_annotation: true,
    maximum_annotations: 1,
    sampling: 'Sequential sampling',
    organization: 1,
    created_by: 1,
    created_at: '2026-01-01T00:00:00.000000Z',
    updated_at: '2026-01-01T00:00:00.000000Z',
  };
}

function payload(action: string, projectId: number, lsTaskId: number, annotationId: number, choice: string, updatedAt: string) {
  return JSON.stringify({
    action,
    annotation: {
      id: annotationId,
      result: [
        { id: `r${annotationId}a`, type: 'choices', value: { choices: [choice] }, to_name: 'image', from_name: 'label', origin: 'manual' },
        {
          id: `r${annotationId}b`,
          type: 'rectanglelabels',
          value: { x: 12.5, y: 20, width: 30, height: 25, rotation: 0, rectanglelabels: ['car'] },
          to_name: 'image',
          from_name: 'box',
          origin: 'manual',
          original_width: 1024,
          original_height: 768,
          image_rotation: 0,
        },
      ],
      was_cancelled: false,
      ground_truth: false,
      created_at: '2026-01-01T00:00:00.000001Z',
      updated_at: updatedAt,
      draft_created_at: null,
      lead_time: 14.25,
      prediction: {},
      result_count: 2,
      unique_id: `00000000-0000-4000-8000-${String(annotationId).padStart(12, '0')}`,
      import_id: null,
      last_action: null,
      bulk_created: false,
      task: lsTaskId,
      project: projectId,
      completed_by: 1,
      updated_by: 1,
      parent_prediction: null,
      parent_annotation: null,
      last_created_by: null,
    },
    project: projectBlock(projectId),
    task: {
      id: lsTaskId,
      data: { image: `http://127.0.0.1:5055/bench/img-${lsTaskId}.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=${'0'.repeat(64)}` },
      meta: { labelfleet: { task: lsTaskId } },
      created_at: '2026-01-01T00:00:00.000000Z',
      updated_at: updatedAt,
      is_labeled: true,
      overlap: 1,
      inner_id: lsTaskId % 1000,
      total_annotations: 1,
      cancelled_annotations: 0,
      total_predictions: 0,
      project: projectId,
    },
  });
}

export default async function bench() {
  const prof = process.env.BENCH_CPU_PROF;
  const bundle = process.env.BENCH_WEBHOOKS_BUNDLE;
  const loadBefore = loadavg().map((l) => Math.round(l * 100) / 100);
  const env: Record<string, string> = { FLEET_SECRET_KEY: KEY, DATABASE_POOL_SIZE: String(POOL) };
  const fleet = await startFleetProcess(env, async ({ handle: { db } }) => {
    await sql`INSERT INTO roles (name) VALUES ('bench')`.execute(db);
    await sql`INSERT INTO labeling_configs (name, config_xml) VALUES ('bench', ${CONFIG_XML})`.execute(db);
    await sql`INSERT INTO gold_tasks (name, s3_image_key, expected_labels, labeling_config_id)
      VALUES ('gold', 'gold/g.png', '[{"from_name":"label","to_name":"image","type":"choices","value":{"choices":["cat"]}}]', 1)`.execute(db);
    await sql`INSERT INTO workflows (name, role_id, labeling_config_id, s3_source_path, s3_export_path, auto_assign)
      VALUES ('bench', 1, 1, 'src/', 'out/', false)`.execute(db);
    // One more annotator/batch than measured: the warm-up's.
    await sql`INSERT INTO annotators (name, email, subdomain, role_id, status)
      SELECT 'A' || g, 'a' || g || '@bench.local', 'a-' || g, 1, 'active' FROM generate_series(1, ${ANNOTATORS + 1}) g`.execute(db);
    await sql`INSERT INTO assignments (workflow_id, annotator_id, ls_project_id, task_count, status)
      SELECT 1, g, 1000 + g, ${TASKS}, 'in_progress' FROM generate_series(1, ${ANNOTATORS + 1}) g`.execute(db);
    await sql`INSERT INTO assignment_tasks (assignment_id, s3_image_key, ls_task_id, is_gold, gold_task_id, position)
      SELECT a, 'img/' || a || '-' || n || '.png', a * 100000 + n, n % ${GOLD_EVERY} = 0,
             CASE WHEN n % ${GOLD_EVERY} = 0 THEN 1 END, n
        FROM generate_series(1, ${ANNOTATORS + 1}) a, generate_series(1, ${TASKS}) n`.execute(db);
    await sql`CREATE TABLE bare_events (LIKE annotation_events INCLUDING DEFAULTS INCLUDING INDEXES)`.execute(db);
    await sql`ANALYZE`.execute(db);
  }, [...(bundle ? START_NODE_ARGS : []), ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [])], bundle);
  const bare = await startChildServer(fileURLToPath(new URL('./support/bare-endpoint.ts', import.meta.url)), [fleet.database.url, String(POOL)]);
  const secrets = new SecretBox(KEY);
  const headersFor = (annotatorId: number) => ({
    'content-type': 'application/json',
    'x-annotator-id': String(annotatorId),
    'x-webhook-secret': webhookSecret(secrets, annotatorId, 0),
  });
  try {
    // The sends: a CREATED per task, an UPDATED for 20 % of them, then 20 % duplicates interleaved.
    const uniques: Send[] = [];
    const updated = new Map<number, string>();
    let annotationId = 0;
    for (let a = 1; a <= ANNOTATORS; a++) {
      for (let n = 1; n <= TASKS; n++) {
        const id = ++annotationId;
        const lsTaskId = a * 100000 + n;
        uniques.push({ annotatorId: a, key: `c${id}`, body: payload('ANNOTATION_CREATED', 1000 + a, lsTaskId, id, 'cat', '2026-02-01T10:00:00.000001Z') });
        if (id % Math.round(1 / UPDATE_SHARE) === 0) {
          uniques.push({ annotatorId: a, key: `u${id}`, body: payload('ANNOTATION_UPDATED', 1000 + a, lsTaskId, id, 'dog', '2026-02-01T10:05:00.000001Z') });
          updated.set(lsTaskId, 'dog');
        }
      }
    }
    const random = seededRandom(42);
    const ordered = shuffle(uniques, random);
    const sends: Send[] = [];
    const perUnique = DUPLICATE_SHARE / (1 - DUPLICATE_SHARE);
    let dupBudget = 0;
    for (const [i, u] of ordered.entries()) {
      sends.push(u);
      dupBudget += perUnique;
      while (dupBudget >= 1) {
        sends.push(ordered[Math.floor(random() * (i + 1))]!);
        dupBudget -= 1;
      }
    }
    const duplicates = sends.length - uniques.length;

    // Warm-up on the extra annotator's batch (not measured).
    const warm = ANNOTATORS + 1;
    const warmUp = async (n: number) => {
      const res = await fetch(`${fleet.base}/api/webhook`, {
        method: 'POST',
        headers: headersFor(warm),
        body: payload('ANNOTATION_CREATED', 1000 + warm, warm * 100000 + n, 10_000_000 + n, 'cat', '2026-02-01T10:00:00Z'),
      });
      await res.arrayBuffer();
    };
    for (let n = 1; n <= 200; n++) await warmUp(n);

    // A lean keep-alive client (node:http), as Label Studio's python-requests is: the load
    // generator shares the machine's cores with the service and PostgreSQL.
    const port = Number(new URL(fleet.base).port);
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const postTo = (toPort: number, path: string, annotatorId: number, body: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(
          { host: '127.0.0.1', port: toPort, path, method: 'POST', agent, headers: { ...headersFor(annotatorId), 'content-length': Buffer.byteLength(body) } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const postWebhook = (annotatorId: number, body: string) => postTo(port, '/api/webhook', annotatorId, body);
    // The bare endpoint first (warmed up too), then LabelFleet: the same deliveries, senders and pool.
    for (let n = 1; n <= 200; n++) await postTo(bare.port, '/webhook', warm, payload('ANNOTATION_CREATED', 1, 1, 20_000_000 + n, 'cat', '2026-02-01T10:00:00Z'));
    let bareFailures = 0;
    const bareCpu = await cpuMeter(fleet.database.handle.db, bare.pid);
    const bareRun = await load(
      async (i) => {
        const s = sends[i]!;
        if ((await postTo(bare.port, '/webhook', s.annotatorId, s.body)) !== 200) bareFailures++;
      },
      { count: sends.length, concurrency: CONCURRENCY, maxMs: 180_000 },
    );
    const bareCpuMs = await bareCpu.read();
    let failures = 0;
    const fleetCpu = await cpuMeter(fleet.database.handle.db, fleet.pid);
    const webhook = await load(
      async (i) => {
        const s = sends[i]!;
        if ((await postWebhook(s.annotatorId, s.body)) !== 200) failures++;
      },
      { count: sends.length, concurrency: CONCURRENCY, maxMs: 180_000 },
    );

    // Acknowledged is not yet applied (the inbox, src/workflows/inbox.ts): the time from the last
    // 200 until the drainer has applied every event, and the CPU of both, count.
    const { db } = fleet.database.handle;
    const lastAck = performance.now();
    const ackCpuMs = await fleetCpu.read();
    for (;;) {
      const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM webhook_inbox`.execute(db);
      if (rows[0]!.n === 0 || performance.now() - lastAck > 180_000) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const drainMs = Math.round(performance.now() - lastAck);
    const fleetCpuMs = await fleetCpu.read();
    const setAside = await sql<{ n: number }>`SELECT (SELECT count(*) FROM webhook_inbox) + (SELECT count(*) FROM webhook_inbox_set_aside) AS n`.execute(db);

    // What a user would check.
    const measured = sql`annotator_id <= ${ANNOTATORS}`;
    const events = await sql<{ n: number; distinctKeys: number }>`
      SELECT count(*)::int AS n, count(DISTINCT (ls_annotation_id, event_type))::int AS distinct_keys
        FROM annotation_events WHERE ${measured}`.execute(db);
    const tasks = await sql<{ annotated: number; newest: number }>`
      SELECT count(*) FILTER (WHERE t.status = 'annotated')::int AS annotated,
             count(*) FILTER (WHERE t.result->0->'value'->'choices'->>0 = CASE WHEN t.ls_task_id = ANY(${[...updated.keys()]}::int[]) THEN 'dog' ELSE 'cat' END)::int AS newest
        FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id WHERE a.annotator_id <= ${ANNOTATORS}`.execute(db);
    const counters = await sql<{ completed: number }>`
      SELECT coalesce(sum(completed_count), 0)::int AS completed FROM assignments WHERE annotator_id <= ${ANNOTATORS}`.execute(db);
    const gold = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM gold_results WHERE annotator_id <= ${ANNOTATORS}`.execute(db);

    const bareRows = await sql<{ n: number }>`SELECT count(*)::int AS n FROM bare_events WHERE annotator_id <= ${ANNOTATORS}`.execute(db);
    agent.destroy();

    // A run cut short by its time bound sent only the first `webhook.count` deliveries: lost is
    // counted against the distinct events among those (the counters are checked on full runs only).
    const complete = webhook.count === sends.length;
    const uniqueCount = complete ? uniques.length : new Set(sends.slice(0, webhook.count).map((s) => s.key)).size;
    const lost = uniqueCount - events.rows[0]!.n;
    const doubleCounted = complete ? counters.rows[0]!.completed - ANNOTATORS * TASKS : null;
    return {
      bundle: bundle ?? 'this worktree',
      loadAverage: { before: loadBefore, after: loadavg().map((l) => Math.round(l * 100) / 100) },
      sent: { complete, total: sends.length, unique: uniqueCount, duplicates, duplicateShare: ratio(duplicates, sends.length), concurrency: CONCURRENCY },
      bareEndpoint: { ...bareRun, non200: bareFailures, rowsInserted: bareRows.rows[0]!.n },
      webhook,
      applied: {
        drainAfterLastAckMs: drainMs,
        perSecond: Math.round(webhook.count / ((webhook.count / webhook.perSecond) + drainMs / 1000)),
        inboxLeft: setAside.rows[0]!.n,
      },
      cpuMsPerEvent: {
        bareEndpoint: perEvent(bareCpuMs, bareRun.count),
        webhook: perEvent(fleetCpuMs, webhook.count),
        webhookUntilLastAck: perEvent(ackCpuMs, webhook.count),
        webhookAfterLastAck: perEvent({ process: fleetCpuMs.process - ackCpuMs.process, database: fleetCpuMs.database - ackCpuMs.database }, webhook.count),
      },
      ratioToBare: { throughput: ratio(webhook.perSecond, bareRun.perSecond), p50: ratio(webhook.p50, bareRun.p50), p99: ratio(webhook.p99, bareRun.p99) },
      checks: {
        non200: failures,
        eventRows: events.rows[0]!.n,
        distinctEventKeys: events.rows[0]!.distinctKeys,
        lost,
        tasksAnnotated: tasks.rows[0]!.annotated,
        tasksWithNewestResult: tasks.rows[0]!.newest,
        batchCompletedCounts: counters.rows[0]!.completed,
        doubleCounted,
        goldResults: gold.rows[0]!.n,
        goldTasks: ANNOTATORS * Math.floor(TASKS / GOLD_EVERY),
      },
      targets: { throughputRatio: 0.7, p99Ratio: 2, lost: 0, doubleCounted: 0 },
      met: {
        throughput: webhook.perSecond >= 0.7 * bareRun.perSecond,
        p99: webhook.p99 < 2 * bareRun.p99,
        lost: lost === 0 && failures === 0 && setAside.rows[0]!.n === 0,
        doubleCounted: complete ? doubleCounted === 0 && tasks.rows[0]!.newest === ANNOTATORS * TASKS : null,
      },
    };
  } finally {
    await bare.stop();
    await fleet.stop();
  }
}

/**
 * CPU used from now until each read() by process `pid` and by every PostgreSQL backend of `db`'s
 * database (the local server's processes, read from /proc), in ms.
 */
async function cpuMeter(db: Db, pid: number): Promise<{ read(): Promise<{ process: number; database: number }> }> {
  const backends = async () => {
    const { rows } = await sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`.execute(db);
    const cpu = new Map<number, number>();
    for (const r of rows) {
      try {
        cpu.set(r.pid, processCpuSeconds(r.pid));
      } catch {
        // Gone meanwhile.
      }
    }
    return cpu;
  };
  const processBefore = processCpuSeconds(pid);
  const before = await backends();
  return {
    async read() {
      const after = await backends();
      let database = 0;
      for (const [p, s] of after) database += s - (before.get(p) ?? 0);
      return { process: Math.round((processCpuSeconds(pid) - processBefore) * 1000), database: Math.round(database * 1000) };
    },
  };
}

const perEvent = (ms: { process: number; database: number }, events: number) => ({
  process: Math.round((ms.process / events) * 100) / 100,
  database: Math.round((ms.database / events) * 100) / 100,
});

