/**
 * The whole product, end to end: a batch flows through a Label Studio that THE FLEET started.
 *
 * Everything is real and on 127.0.0.1: PostgreSQL, the Docker Engine with the fleet image
 * (FLEET_IMAGE, host networking on LS_PORT_BASE + annotator id), Traefik (docker-label routes),
 * moto S3, and LabelFleet listening on a real port (FLEET_CALLBACK_URL) so the container can report
 * its token and Label Studio can POST its webhooks there — which Label Studio's SSRF guard only
 * allows because the fleet starts instances with USE_DEFAULT_BANNED_SUBNETS=false
 * (orchestrator/instance-spec.ts).
 *
 * Admin API: role → image-classification labeling config → workflow (autoAssign) over images in
 * S3 → annotator → POST start. The reconciler (its own loop, no explicit passes) brings the
 * instance up, auto-assigns a batch and provisions it (project, tasks, webhook). The test then
 * annotates every task through Label Studio's API as the annotator's browser would, and checks
 * that each annotation ARRIVED by webhook (source 'webhook', not found later by reconcile), that
 * the batch completed, and that the export landed in S3 with the right content. A pipeline's
 * subscription (made with an API key) to a receiver on 127.0.0.1 then gets exactly one
 * batch.completed, signed as Standard Webhooks says, naming the JSON and JSONL exports.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InstanceDatabases } from '../../orchestrator/databases.ts';
import { fleetNames, LABELS } from '../../orchestrator/instance-spec.ts';
import { SecretBox } from '../../src/crypto.ts';
import { openDatabase } from '../../src/db/index.ts';
import type { Annotator } from '../../src/db/types.ts';
import { currentWebhookSecret, labelStudioFor } from '../../src/labelstudio/instances.ts';
import { createLogger } from '../../src/logger.ts';
import { metrics } from '../../src/metrics.ts';
import { createService, type Service } from '../../src/service.ts';
import type { Storage } from '../../src/storage/s3.ts';
import { webhooksApplied } from '../helpers/batches.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { TEST_DATABASE_URL, testEnv } from '../helpers/env.ts';
import { freePort, freePortBase, waitUntil } from '../helpers/process.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { createTestBucket, PNG_1PX } from '../helpers/s3.ts';
import { signIn, TEST_SECRET_KEY, testConfig } from '../helpers/service.ts';

const RUN = randomBytes(3).toString('hex');
const NS = `fb${RUN}`;
const DOMAIN = `${NS}.fleet.localhost`;
const DOCKER_SOCKET = testEnv('DOCKER_SOCKET', '/var/run/docker.sock');
const TRAEFIK_DYNAMIC_DIR = testEnv('TRAEFIK_DYNAMIC_DIR');
const docker = new Docker({ socketPath: DOCKER_SOCKET });
const names = fleetNames({ FLEET_NAMESPACE: NS });

const CONFIG_XML = `<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single" required="true">
    <Choice value="cat"/><Choice value="dog"/>
  </Choices>
</View>`;
const IMAGES = ['fb/src/img-0.png', 'fb/src/img-1.png', 'fb/src/img-2.png'];
const EXPORT_PATH = 'fb/exports/';

let database: TestDatabase;
let service: Service | undefined;
let cookie = '';
let bucket = '';
let storage: Storage;
let annotatorId = 0;
let receiver: Receiver;
let subscription: { id: number; secret: string };

async function api(method: string, p: string, body?: unknown) {
  const res = await service!.app.request(p, {
    method,
    headers: { cookie, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const db = () => database.handle.db;
const annotatorRow = (): Promise<Annotator> => db().selectFrom('annotators').selectAll().where('id', '=', annotatorId).executeTakeFirstOrThrow();
const assignmentsOf = (id: number) => db().selectFrom('assignments').selectAll().where('annotatorId', '=', id).orderBy('id').execute();
const tasksOf = (assignmentId: number) => db().selectFrom('assignmentTasks').selectAll().where('assignmentId', '=', assignmentId).orderBy('position').execute();
const containerEventCount = async (kind: 'start' | 'restart' | 'failure') =>
  (await metrics.containerEvents.get()).values.find((v) => v.labels.kind === kind)?.value ?? 0;

beforeAll(async () => {
  const s3 = await createTestBucket('lf-fleet-batches');
  ({ bucket, storage } = s3);
  for (const key of IMAGES) await storage.put(bucket, key, PNG_1PX, { contentType: 'image/png' });

  database = await createTestDatabase();
  const port = await freePort();
  const base = await freePortBase(28_000, 3);
  const config = testConfig({
    ...s3.env,
    DATABASE_URL: database.url,
    HOST: '127.0.0.1',
    PORT: String(port),
    FLEET_CALLBACK_URL: `http://127.0.0.1:${port}`,
    FLEET_NAMESPACE: NS,
    FLEET_DOMAIN: DOMAIN,
    FLEET_IMAGE: testEnv('FLEET_IMAGE'),
    DOCKER_SOCKET,
    DOCKER_NETWORK_MODE: 'host',
    LS_PORT_BASE: String(base),
    TRAEFIK_PROVIDER: 'docker',
    TRAEFIK_URL: testEnv('TRAEFIK_URL'),
    TRAEFIK_DYNAMIC_DIR,
    LS_DATABASE_URL: TEST_DATABASE_URL(),
    RECONCILE_INTERVAL_MS: '2000',
  });
  const handle = await openDatabase({ url: database.url, dataDir: '/nonexistent', poolSize: 5 });
  service = await createService(config, { database: handle, logger: createLogger(config.LOG_LEVEL), secrets: new SecretBox(TEST_SECRET_KEY) });
  await service.start({ reconcile: true });
  cookie = await signIn(service.app);
  // Label Studio is compared with the database right after provisioning, then not again for an
  // hour: an annotation recorded below can only have come by webhook.
  expect((await api('PUT', '/api/settings/batches.compareIntervalSeconds', { value: 3600 })).status).toBe(200);

  // A pipeline subscribes to batch.completed with an API key; deliveries may go to loopback here.
  receiver = await startReceiver();
  expect((await api('PUT', '/api/settings/webhooks.allowedNetworks', { value: ['127.0.0.0/8'] })).status).toBe(200);
  const key = await api('POST', '/api/api-keys', { name: 'pipeline', scopes: ['admin'] });
  const sub = await service.app.request('/api/webhook-subscriptions', {
    method: 'POST',
    headers: { authorization: `Bearer ${key.body.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url: receiver.url, eventTypes: ['batch.completed', 'batch.failed'] }),
  });
  expect(sub.status).toBe(201);
  subscription = await sub.json();
});

afterAll(async () => {
  // Delete the annotator and let a pass clean up container, route, volume, database and role.
  if (service && annotatorId) {
    await api('DELETE', `/api/annotators/${annotatorId}`).catch(() => {});
    await service.reconciler.runOnce({ wait: true }).catch(() => {});
    await waitUntil('clean-up of the deleted annotator', async () => (await annotatorRow()).cleanedUpAt !== null, 60_000).catch(() => {});
  }
  await service?.stop().catch(() => {});
  await receiver?.stop().catch(() => {});
  // Whatever a failed run left behind.
  const leftovers = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.namespace}=${NS}`] }) });
  for (const c of leftovers) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  for (const v of (await docker.listVolumes()).Volumes ?? []) {
    if (v.Name.startsWith(`fleet-ls-${NS}-`)) await docker.getVolume(v.Name).remove().catch(() => {});
  }
  for (const f of existsSync(TRAEFIK_DYNAMIC_DIR) ? readdirSync(TRAEFIK_DYNAMIC_DIR) : []) {
    if (f.startsWith(`fleet-ls-${NS}-`)) rmSync(path.join(TRAEFIK_DYNAMIC_DIR, f), { force: true });
  }
  if (annotatorId) {
    const dbs = new InstanceDatabases({ LS_DATABASE_URL: TEST_DATABASE_URL(), FLEET_NAMESPACE: NS });
    await dbs.drop(annotatorId).catch(() => {});
    await dbs.close();
  }
  await database?.drop();
});

describe('a batch through a Label Studio the fleet started', () => {
  let assignmentId = 0;
  let workflowId = 0;

  it('starts the annotator and auto-assigns a batch, provisioned in their Label Studio', async () => {
    const role = await api('POST', '/api/roles', { name: `labeler-${RUN}` });
    expect(role.status).toBe(201);
    const config = await api('POST', '/api/labeling-configs', { name: `Classification ${RUN}`, configXml: CONFIG_XML });
    expect(config.status).toBe(201);
    const workflow = await api('POST', '/api/workflows', {
      name: 'Classify',
      roleId: role.body.id,
      labelingConfigId: config.body.id,
      s3SourcePath: 'fb/src/',
      s3ExportPath: EXPORT_PATH,
      imagesPerProject: 3,
      autoAssign: true,
      shuffleImages: false,
    });
    expect(workflow.status).toBe(201);
    workflowId = workflow.body.id;
    const annotator = await api('POST', '/api/annotators', { name: 'Fleet Batches', email: `fb-${RUN}@e2e.test`, roleId: role.body.id });
    expect(annotator.status).toBe(201);
    annotatorId = annotator.body.id;

    const startsBefore = await containerEventCount('start');
    expect(await api('POST', `/api/annotators/${annotatorId}/start`)).toEqual({ status: 200, body: { success: true, status: 'starting' } });
    const status = await waitUntil(
      'the annotator to become active',
      async () => {
        const s = await api('GET', `/api/annotators/${annotatorId}/status`);
        if (s.body.status === 'error') throw new Error(`annotator in error: ${s.body.statusReason}`);
        return s.body.status === 'active' ? s.body : undefined;
      },
      240_000,
      1000,
    );
    expect(status).toMatchObject({ status: 'active', containerId: names.instance(annotatorId), containerIp: '127.0.0.1' });
    expect(await containerEventCount('start')).toBe(startsBefore + 1);

    // Activation wakes the reconciler: the batch is assigned and set up without anyone asking.
    const batch = await waitUntil(
      'the batch to be provisioned',
      async () => {
        const [a] = await assignmentsOf(annotatorId);
        // (a thrown error is kept as the last error, shown if the wait times out)
        if (a?.error) throw new Error(`batch ${a.status}: ${a.error}`);
        return a?.status === 'in_progress' && a.lsCheckedAt !== null ? a : undefined;
      },
      60_000,
    );
    expect(batch).toMatchObject({ workflowId, status: 'in_progress', taskCount: 3, goldTaskCount: 0, completedCount: 0, error: null });
    assignmentId = batch.id;

    // In the annotator's own Label Studio, reached as the batch code reaches it.
    const annotatorNow = await annotatorRow();
    const ls = labelStudioFor(service!.ctx, annotatorNow);
    const project = await ls.getProject(batch.lsProjectId!);
    expect(project.label_config).toBe(CONFIG_XML);
    const tasks = await tasksOf(assignmentId);
    expect(tasks.map((t) => t.s3ImageKey)).toEqual(IMAGES);
    const lsTasks = await ls.exportTasks(batch.lsProjectId!, { all: true });
    expect(lsTasks.map((t) => t.id).sort()).toEqual(tasks.map((t) => t.lsTaskId).sort());
    const hooks = await ls.listWebhooks(batch.lsProjectId!);
    expect(hooks).toHaveLength(1);
    expect(hooks[0]).toMatchObject({
      url: `${service!.ctx.config.FLEET_CALLBACK_URL}/api/webhook`,
      is_active: true,
      send_payload: true,
      headers: { 'X-Annotator-Id': String(annotatorId), 'X-Webhook-Secret': currentWebhookSecret(service!.ctx, annotatorNow) },
    });
  });

  it('receives every annotation by webhook, completes the batch and exports it to S3', async () => {
    expect(assignmentId, 'no batch was provisioned').toBeGreaterThan(0);
    const annotator = await annotatorRow();
    const ls = labelStudioFor(service!.ctx, annotator);
    const tasks = await tasksOf(assignmentId);
    const answers = ['cat', 'dog', 'cat'];
    const created: number[] = [];
    for (const [i, task] of tasks.entries()) {
      const a = await ls.createAnnotation(task.lsTaskId!, { result: [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [answers[i]] } }], lead_time: 4 + i });
      created.push(a.id);
    }

    // Each annotation arrived by webhook while Label Studio answered the submit (applied by the inbox's drainer).
    await webhooksApplied(service!);
    const events = await db().selectFrom('annotationEvents').selectAll().where('assignmentId', '=', assignmentId).orderBy('id').execute();
    expect(events.map((e) => [e.lsAnnotationId, e.eventType, e.source, e.timeSpentMs])).toEqual(
      created.map((id, i) => [id, 'annotation_created', 'webhook', (4 + i) * 1000]),
    );

    // The last webhook woke the reconciler: exported and completed.
    const done = await waitUntil(
      'the batch to complete',
      async () => {
        const a = (await assignmentsOf(annotatorId)).find((x) => x.id === assignmentId)!;
        return a.status === 'completed' ? a : undefined;
      },
      60_000,
    );
    expect(done).toMatchObject({ completedCount: 3, exportKey: `${EXPORT_PATH}assignment-${assignmentId}.json` });
    expect(done.completedAt).not.toBeNull();

    const exported = JSON.parse((await storage.get(bucket, done.exportKey!))!.toString()) as Array<{
      meta: { labelfleet: Record<string, unknown> };
      annotations: Array<{ id: number; result: Array<{ from_name: string; value: { choices: string[] } }> }>;
    }>;
    expect(exported.map((t) => t.meta.labelfleet)).toEqual(
      tasks.map((t) => ({ task: t.id, imageKey: t.s3ImageKey, assignmentId, workflowId, annotatorId })),
    );
    expect(exported.map((t) => t.annotations.map((a) => [a.id, a.result[0]!.from_name, a.result[0]!.value.choices]))).toEqual(
      created.map((id, i) => [[id, 'label', [answers[i]]]]),
    );
    // Still no event from reconcile: nothing had to be caught up.
    const sources = await db().selectFrom('annotationEvents').select('source').where('annotatorId', '=', annotatorId).execute();
    expect(sources.map((s) => s.source)).toEqual(['webhook', 'webhook', 'webhook']);
  });
  it('tells the pipeline: one signed batch.completed naming the JSON and JSONL exports', async () => {
    expect(assignmentId, 'no batch was provisioned').toBeGreaterThan(0);
    const [got] = await receiver.waitFor(1, 60_000);
    const event = new Webhook(subscription.secret).verify(got!.body, got!.headers) as {
      type: string;
      data: { batchId: number; workflowId: number; annotatorId: number; export: { bucket: string; jsonKey: string; jsonlKey: string } };
    };
    expect(event).toMatchObject({
      type: 'batch.completed',
      data: {
        batchId: assignmentId,
        workflowId,
        annotatorId,
        export: { bucket, jsonKey: `${EXPORT_PATH}assignment-${assignmentId}.json`, jsonlKey: `${EXPORT_PATH}assignment-${assignmentId}.jsonl` },
      },
    });
    // The JSONL beside the JSON: one line per real task, with its image, result and annotator.
    const jsonl = (await storage.get(bucket, event.data.export.jsonlKey))!.toString().trim().split('\n').map((l) => JSON.parse(l));
    const tasks = await tasksOf(assignmentId);
    expect(jsonl.map((r) => [r.taskId, r.imageKey, r.annotator.id, r.result[0].value.choices[0]])).toEqual(
      tasks.map((t, i) => [t.id, t.s3ImageKey, annotatorId, ['cat', 'dog', 'cat'][i]]),
    );
    // Exactly once: later passes send nothing more, and the delivery log says delivered.
    await new Promise((r) => setTimeout(r, 5_000));
    expect(receiver.received).toHaveLength(1);
    const log = await api('GET', `/api/webhook-subscriptions/${subscription.id}/deliveries`);
    expect(log.body.data.map((d: { eventType: string; status: string; attemptCount: number }) => [d.eventType, d.status, d.attemptCount])).toEqual([['batch.completed', 'delivered', 1]]);
  });
});
