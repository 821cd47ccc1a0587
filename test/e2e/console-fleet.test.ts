/**
 * The labeling day from the console, end to end, in a real Chromium against a fleet with a real
 * Label Studio (Docker, host networking, its own namespace and port block), Traefik and moto S3:
 * the lead creates role, config, workflow and annotator through the forms; presses Start and
 * watches the start progress reach `active` phase by phase; the reconciler assigns a batch; the
 * annotator's annotations go in through Label Studio's API; the batches page shows the progress
 * rise to completed and the overview's counts rise — neither page reloaded. Then the workflow
 * graph and quality pages, and sign-out. One Label Studio instance.
 *
 * Run under the machine-wide lock: flock /tmp/lf-docker.lock npx vitest run --project e2e test/e2e/console-fleet.test.ts
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InstanceDatabases } from '../../orchestrator/databases.ts';
import { LABELS } from '../../orchestrator/instance-spec.ts';
import { SecretBox } from '../../src/crypto.ts';
import { openDatabase } from '../../src/db/index.ts';
import { labelStudioFor } from '../../src/labelstudio/instances.ts';
import { createLogger } from '../../src/logger.ts';
import { createService, type Service } from '../../src/service.ts';
import { launchBrowser, openPanel, signIn, watchProblems, type TestBrowser } from '../helpers/browser.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { TEST_DATABASE_URL, testEnv } from '../helpers/env.ts';
import { freePort, freePortBase, waitUntil } from '../helpers/process.ts';
import { createTestBucket, PNG_1PX } from '../helpers/s3.ts';
import { TEST_SECRET_KEY, testConfig } from '../helpers/service.ts';

const RUN = randomBytes(3).toString('hex');
const NS = `cs${RUN}`;
const DOMAIN = `${NS}.fleet.localhost`;
const DOCKER_SOCKET = testEnv('DOCKER_SOCKET', '/var/run/docker.sock');
const TRAEFIK_DYNAMIC_DIR = testEnv('TRAEFIK_DYNAMIC_DIR');
const docker = new Docker({ socketPath: DOCKER_SOCKET });

const CONFIG_XML = `<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single" required="true">
    <Choice value="cat"/><Choice value="dog"/>
  </Choices>
</View>`;
const IMAGES = ['console/src/a.png', 'console/src/b.png', 'console/src/c.png'];

let database: TestDatabase;
let service: Service | undefined;
let browser: TestBrowser;
let page: Page;
let problems: string[];
let base = '';
let annotatorId = 0;

const db = () => database.handle.db;

beforeAll(async () => {
  const s3 = await createTestBucket('lf-console');
  for (const key of IMAGES) await s3.storage.put(s3.bucket, key, PNG_1PX, { contentType: 'image/png' });
  database = await createTestDatabase();
  const port = await freePort();
  const lsBase = await freePortBase(29_000, 3);
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
    LS_PORT_BASE: String(lsBase),
    TRAEFIK_PROVIDER: 'docker',
    TRAEFIK_URL: testEnv('TRAEFIK_URL'),
    TRAEFIK_DYNAMIC_DIR,
    LS_DATABASE_URL: TEST_DATABASE_URL(),
    RECONCILE_INTERVAL_MS: '2000',
    LIVE_POLL_MS: '300',
  });
  const handle = await openDatabase({ url: database.url, dataDir: '/nonexistent', poolSize: 5 });
  service = await createService(config, { database: handle, logger: createLogger(config.LOG_LEVEL), secrets: new SecretBox(TEST_SECRET_KEY) });
  await service.start({ reconcile: true });
  base = `http://127.0.0.1:${port}`;
  browser = await launchBrowser();
  page = await browser.context.newPage();
  problems = watchProblems(page);
  await signIn(page, base);
});

afterAll(async () => {
  await browser?.close();
  if (service && annotatorId) {
    await db().updateTable('annotators').set({ status: 'deleted' }).where('id', '=', annotatorId).execute().catch(() => {});
    await service.reconciler.runOnce({ wait: true }).catch(() => {});
    await waitUntil(
      'clean-up of the deleted annotator',
      async () => (await db().selectFrom('annotators').select('cleanedUpAt').where('id', '=', annotatorId).executeTakeFirst())?.cleanedUpAt != null,
      60_000,
    ).catch(() => {});
  }
  await service?.stop().catch(() => {});
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

const markPage = (p: Page) => p.evaluate(() => ((window as unknown as { __notReloaded: boolean }).__notReloaded = true));
const stillSamePage = (p: Page) => p.evaluate(() => (window as unknown as { __notReloaded?: boolean }).__notReloaded === true);
const statValue = async (p: Page, label: string) => Number(((await p.locator('.stat', { hasText: label }).locator('.stat-value').first().textContent()) ?? '').replace(/,/g, ''));

describe('the labeling day from the console, with a real Label Studio', () => {
  it('sets up role, config, workflow and annotator through the forms', async () => {
    await page.goto(`${base}/roles`);
    await openPanel(page, 'New role');
    await page.getByRole('form', { name: 'New role' }).getByLabel('Name').fill(`labeler-${RUN}`);
    await page.getByRole('button', { name: 'Create role' }).click();
    await page.locator('#roles td', { hasText: `labeler-${RUN}` }).waitFor();

    await page.goto(`${base}/labeling-configs/new`);
    await page.locator('#f-name').fill('Cats and dogs');
    await page.getByLabel('Label Studio XML').fill(CONFIG_XML);
    await page.getByRole('button', { name: 'Create labeling config' }).click();
    await page.waitForURL(/\/labeling-configs\/\d+$/);

    await page.goto(`${base}/workflows/new`);
    await page.locator('#f-name').fill('Classify');
    await page.getByLabel('Role').selectOption({ label: `labeler-${RUN}` });
    await page.getByLabel('Labeling config').selectOption({ label: 'Cats and dogs' });
    await page.getByLabel('S3 source prefix').fill('console/src/');
    await page.getByLabel('S3 export prefix').fill('console/exports/');
    await page.getByLabel('Images per batch').fill('3');
    await page.getByLabel('Shuffle images').uncheck();
    await page.getByRole('button', { name: 'Create workflow' }).click();
    await page.waitForURL(/\/workflows\/\d+$/);

    await page.goto(`${base}/annotators`);
    await openPanel(page, 'New annotator');
    const form = page.getByRole('form', { name: 'New annotator' });
    await form.getByLabel('Name').fill('Console Fleet');
    await form.getByLabel('Email').fill(`console-${RUN}@e2e.test`);
    await form.getByLabel('Role').selectOption({ label: `labeler-${RUN}` });
    await form.getByRole('button', { name: 'Create annotator' }).click();
    await page.waitForURL(/\/annotators\/\d+$/);
    annotatorId = Number(page.url().split('/').pop());
    expect(annotatorId).toBeGreaterThan(0);
  });

  it('starts the annotator and shows the progress reach active, phase by phase, without a reload', async () => {
    expect(annotatorId).toBeGreaterThan(0);
    await markPage(page);
    await page.getByRole('button', { name: 'Start' }).click();
    const seenPhases = new Set<string>();
    await waitUntil(
      'the start progress to reach 100%',
      async () => {
        const current = await page.locator('.phase.current').getAttribute('data-phase').catch(() => null);
        if (current) seenPhases.add(current);
        if (await page.locator('.phase.failed').count()) throw new Error(`start failed: ${await page.locator('[data-progress-message]').textContent()}`);
        return (await page.locator('[data-progress-percent]').textContent()) === '100%';
      },
      420_000,
      250,
    );
    await expect(page.locator('[data-progress-message]').textContent()).resolves.toMatch(/^Label Studio is up at http:\/\//);
    expect(await page.locator('.phase.done').count()).toBe(6);
    // Label Studio's boot is the long phase: the page showed it under way.
    expect([...seenPhases]).toContain('healthy');
    await page.getByRole('link', { name: 'Open Label Studio' }).waitFor();
    expect(await stillSamePage(page)).toBe(true);
    const a = await db().selectFrom('annotators').select('status').where('id', '=', annotatorId).executeTakeFirstOrThrow();
    expect(a.status).toBe('active');
  });

  it('shows the batch progress and the overview counts change as the annotator works, without a reload', async () => {
    expect(annotatorId).toBeGreaterThan(0);
    // The reconciler assigns and sets up a batch once the annotator is active.
    const batch = await waitUntil(
      'the batch to be in progress',
      async () => {
        const b = await db().selectFrom('assignments').selectAll().where('annotatorId', '=', annotatorId).executeTakeFirst();
        if (b?.error) throw new Error(`batch: ${b.error}`);
        return b?.status === 'in_progress' ? b : undefined;
      },
      120_000,
    );
    const overview = await browser.context.newPage();
    const overviewProblems = watchProblems(overview);
    await overview.goto(`${base}/`);
    await overview.locator('[data-live-status][data-state="live"]').waitFor();
    await markPage(overview);
    const todayBefore = await statValue(overview, 'annotations today');

    await page.goto(`${base}/batches?annotatorId=${annotatorId}`);
    await page.locator('[data-live-status][data-state="live"]').waitFor();
    await markPage(page);
    const progressText = () => page.locator(`tr[data-batch="${batch.id}"] .progress-text`).textContent();
    await expect(progressText()).resolves.toBe('0/3');

    const annotator = await db().selectFrom('annotators').selectAll().where('id', '=', annotatorId).executeTakeFirstOrThrow();
    const ls = labelStudioFor(service!.ctx, annotator);
    const tasks = await db().selectFrom('assignmentTasks').select(['lsTaskId']).where('assignmentId', '=', batch.id).orderBy('position').execute();
    for (const [i, task] of tasks.entries()) {
      await ls.createAnnotation(task.lsTaskId!, { result: [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [i % 2 ? 'dog' : 'cat'] } }], lead_time: 3 });
      if (i < tasks.length - 1) await waitUntil(`batch progress ${i + 1}/3 on the page`, async () => (await progressText()) === `${i + 1}/3`, 30_000, 200);
    }
    await waitUntil('the batch to show completed', async () => (await page.locator(`tr[data-batch="${batch.id}"] .badge`).textContent()) === 'completed', 90_000, 250);
    await expect(progressText()).resolves.toBe('3/3');
    await waitUntil('annotations today to rise by 3 on the overview', async () => (await statValue(overview, 'annotations today')) === todayBefore + 3, 30_000, 250);
    expect(await stillSamePage(page)).toBe(true);
    expect(await stillSamePage(overview)).toBe(true);
    expect(overviewProblems).toEqual([]);
    await overview.close();
  });

  it('draws the workflow graph and the quality page, then signs out', async () => {
    await page.goto(`${base}/workflows`);
    await page.locator('svg.graph a.node', { hasText: 'Classify' }).waitFor();
    await expect(page.locator('svg.graph a.node', { hasText: 'Classify' }).textContent()).resolves.toMatch(/1\/1 batches/);
    await page.goto(`${base}/quality`);
    await page.getByRole('heading', { name: 'Quality', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${base}/login`);
    expect(problems).toEqual([]);
  });
});
