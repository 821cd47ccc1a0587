/**
 * The console in a real Chromium (Debian's package, driven by playwright-core) against a real
 * LabelFleet on a real port and PostgreSQL — everything but Label Studio (test/e2e/console-fleet.test.ts
 * adds that): sign in; create a role, a labeling config, a workflow and annotators through the
 * forms; validation errors at the field they concern; live start progress and live counts without
 * a reload; bulk create and delete; password shown once; pause / resume; settings checked;
 * accessibility (axe-core) of every page; every page with the network blocked except the service;
 * keyboard use; tablet width; sign out.
 *
 * Screenshots for README ("Console"): `CONSOLE_SCREENSHOTS=1 npx vitest run --project integration
 * test/integration/console.test.ts` writes docs/console/*.jpg from this test's seeded fleet.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transitionAnnotator, writeContainerEvent } from '../../src/workflows/annotators.ts';
import { expectAccessible, launchBrowser, openPanel, signIn, watchProblems, type TestBrowser } from '../helpers/browser.ts';
import { freePort, waitUntil } from '../helpers/process.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

const LONG = { timeout: 180_000 };
const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS === '1';

let t: TestService;
let browser: TestBrowser;
let page: Page;
let problems: string[];
let base = '';
const ids = { role: 0, config: 0, workflow: 0, annotator: 0, gold: 0 };

const CONFIG_XML = `<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single">
    <Choice value="cat"/><Choice value="dog"/>
  </Choices>
</View>`;

/** A fleet in mid-day: annotators in every status, chained workflows, batches, annotations, gold, rejections. */
async function seedFleet(t: TestService) {
  const db = t.db;
  await sql`INSERT INTO roles (name, color) VALUES ('reviewer', '#F59E0B')`.execute(db);
  await sql`INSERT INTO annotators (name, email, subdomain, role_id, status, last_active_at, reviewed_count, rejection_count)
    SELECT 'Seed Annotator ' || g, 'seed' || g || '@console.test', 'seed-' || g, (SELECT id FROM roles WHERE name = 'reviewer'),
           (ARRAY['active','active','active','stopped','created','error'])[1 + g % 6], now() - make_interval(mins => g * 7), 20, g % 5
      FROM generate_series(1, 24) g`.execute(db);
  await sql`INSERT INTO labeling_configs (name, config_xml) VALUES ('Seed config', ${CONFIG_XML})`.execute(db);
  await sql`INSERT INTO workflows (name, role_id, labeling_config_id, s3_source_path, s3_export_path, previous_workflow_id, rejection_mode)
    SELECT 'Seed stage ' || g, (SELECT id FROM roles WHERE name = 'reviewer'), (SELECT id FROM labeling_configs WHERE name = 'Seed config'),
           'seed/' || g || '/', 'seed-out/' || g || '/', NULL, (ARRAY['none','none','archive'])[g]
      FROM generate_series(1, 3) g`.execute(db);
  await sql`UPDATE workflows SET previous_workflow_id = id - 1 WHERE name IN ('Seed stage 2', 'Seed stage 3')`.execute(db);
  await sql`UPDATE workflows SET rejection_archive_bucket = 'seed-out/rejected/' WHERE rejection_mode = 'archive'`.execute(db);
  await sql`INSERT INTO assignments (workflow_id, annotator_id, status, task_count, completed_count, started_at, error)
    SELECT (SELECT min(id) FROM workflows WHERE name LIKE 'Seed stage%') + g % 3, a.id,
           (ARRAY['in_progress','in_progress','completed','pending','failed'])[1 + g % 5], 20, (g * 3) % 20, now(),
           CASE WHEN g % 5 = 4 THEN 'Label Studio did not answer' END
      FROM generate_series(1, 30) g JOIN annotators a ON a.email = 'seed' || (1 + g % 24) || '@console.test'`.execute(db);
  await sql`INSERT INTO annotation_events (annotator_id, assignment_id, event_type, ls_task_id, ls_annotation_id, time_spent_ms, created_at)
    SELECT a.id, NULL, 'annotation_created', g, 100000 + g, (g * 7919) % 90000, now() - make_interval(mins => (g * 13) % 1380)
      FROM generate_series(1, 400) g JOIN annotators a ON a.email = 'seed' || (1 + g % 12) || '@console.test'`.execute(db);
  await sql`INSERT INTO assignment_tasks (assignment_id, s3_image_key, is_gold, status)
    SELECT id, 'gold/' || id || '-' || k || '.jpg', true, 'annotated' FROM assignments, generate_series(1, 6) k`.execute(db);
  await sql`INSERT INTO gold_results (assignment_task_id, assignment_id, annotator_id, score)
    SELECT t.id, t.assignment_id, s.annotator_id, ((s.annotator_id * 37 + t.id) % 100) / 100.0
      FROM assignment_tasks t JOIN assignments s ON s.id = t.assignment_id`.execute(db);
  await sql`INSERT INTO rejections (workflow_id, original_annotator_id, reviewer_annotator_id, image_key, reason, action_taken)
    SELECT (SELECT max(id) FROM workflows WHERE name LIKE 'Seed stage%'), a.id, a.id - 1, 'seed/' || a.id || '.jpg', 'box too loose', 'archive'
      FROM annotators a WHERE a.email LIKE 'seed%' AND a.id % 4 = 0`.execute(db);
  await sql`INSERT INTO container_events (annotator_id, event_type, from_status, to_status, message)
    SELECT id, 'status_change', 'starting', status::text, 'seeded' FROM annotators WHERE email LIKE 'seed%'`.execute(db);
}

beforeAll(async () => {
  const port = await freePort();
  t = await startTestService({ env: { HOST: '127.0.0.1', PORT: String(port), LIVE_POLL_MS: '200' } });
  await t.service.start({ reconcile: false });
  base = `http://127.0.0.1:${port}`;
  await seedFleet(t);
  browser = await launchBrowser();
  page = await browser.context.newPage();
  problems = watchProblems(page);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await t?.service.stop();
  await t?.close();
});

/** A marker that survives only as long as the page is not reloaded. */
async function markPage(p: Page) {
  await p.evaluate(() => ((window as unknown as { __notReloaded: boolean }).__notReloaded = true));
}
const stillSamePage = (p: Page) => p.evaluate(() => (window as unknown as { __notReloaded?: boolean }).__notReloaded === true);

const fieldError = (p: Page, form: string, field: string) => p.locator(`${form} [data-error-for="${field}"]`);

describe('the console in Chromium', () => {
  it('sends a browser without a session to the sign-in page, and back after signing in', LONG, async () => {
    await page.goto(`${base}/annotators?status=active`);
    await page.waitForURL(/\/login\?next=/);
    await expect(page.getByRole('heading', { name: 'LabelFleet' }).isVisible()).resolves.toBe(true);
    // A wrong password is said so, on the page.
    await page.getByLabel('Email').fill('admin@fleet.local');
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForFunction(() => document.querySelector('.form-error')?.textContent?.includes('Invalid email or password'));
    await page.getByLabel('Password').fill('admin');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/annotators?status=active`);
    await expect(page.getByRole('heading', { name: 'Annotators', level: 1 }).isVisible()).resolves.toBe(true);
    // The session's end is shown.
    await expect(page.locator('.session').textContent()).resolves.toMatch(/session until/);
  });

  it('creates a role through the form', LONG, async () => {
    await page.goto(`${base}/roles`);
    await openPanel(page, 'New role');
    const form = page.getByRole('form', { name: 'New role' });
    await form.getByLabel('Name').fill('Labeler');
    await form.getByLabel('Colour').fill('blue');
    await form.getByRole('button', { name: 'Create role' }).click();
    // The API's zod message appears at the colour field.
    await page.waitForFunction(() => document.querySelector('[data-error-for="color"]')?.textContent?.includes('hex colour'));
    await expect(page.locator('#f-color').getAttribute('aria-invalid')).resolves.toBe('true');
    await form.getByLabel('Colour').fill('#3B82F6');
    await form.getByRole('button', { name: 'Create role' }).click();
    await page.locator('#roles td', { hasText: 'Labeler' }).waitFor();
    const role = await t.db.selectFrom('roles').selectAll().where('name', '=', 'Labeler').executeTakeFirstOrThrow();
    expect(role.color).toBe('#3B82F6');
    ids.role = role.id;
  });

  it('edits a role on its own page: a bad colour at its field, then the saved description in the list', LONG, async () => {
    await page.goto(`${base}/roles`);
    await page.getByRole('link', { name: 'Edit role Labeler' }).click();
    await page.waitForURL(`${base}/roles/${ids.role}`);
    const form = page.getByRole('form', { name: 'Edit Labeler' });
    await expect(form.getByLabel('Colour').inputValue()).resolves.toBe('#3B82F6');
    await form.getByLabel('Colour').fill('#12345');
    await form.getByRole('button', { name: 'Save' }).click();
    await page.waitForFunction(() => document.querySelector('[data-error-for="color"]')?.textContent?.includes('hex colour'));
    await form.getByLabel('Colour').fill('#10B981');
    await form.getByLabel('Description').fill('Draws boxes <b>fast</b>');
    await form.getByRole('button', { name: 'Save' }).click();
    await page.locator('[data-toast]', { hasText: 'Saved.' }).waitFor();
    const role = await t.db.selectFrom('roles').selectAll().where('id', '=', ids.role).executeTakeFirstOrThrow();
    expect([role.name, role.color, role.description]).toEqual(['Labeler', '#10B981', 'Draws boxes <b>fast</b>']);
    // Unused, so it can be deleted here; a role in use cannot (the seeded reviewer role).
    await expect(page.getByRole('button', { name: 'Delete role Labeler' }).isEnabled()).resolves.toBe(true);
    await page.goto(`${base}/roles`);
    await expect(page.getByRole('button', { name: 'Delete role reviewer' }).isDisabled()).resolves.toBe(true);
    await expect(page.locator('#roles tr', { hasText: 'Labeler' }).locator('td.wrap').textContent()).resolves.toBe('Draws boxes <b>fast</b>');
  });

  it('creates a labeling config; an XML error appears at the field with its line and column', LONG, async () => {
    await page.goto(`${base}/labeling-configs/new`);
    await page.locator('#f-name').fill('Cats and dogs');
    await page.getByLabel('Label Studio XML').fill('<View>\n  <Image name="image" value="$image">\n</View>');
    await page.getByRole('button', { name: 'Create labeling config' }).click();
    await page.waitForFunction(() => /^Line \d+, column \d+: /.test(document.querySelector('[data-error-for="configXml"]')?.textContent ?? ''));
    expect(await page.locator('#f-configXml').evaluate((el) => document.activeElement === el)).toBe(true);
    await page.getByLabel('Label Studio XML').fill(CONFIG_XML);
    await page.getByRole('button', { name: 'Create labeling config' }).click();
    await page.waitForURL(/\/labeling-configs\/\d+$/);
    ids.config = Number(page.url().split('/').pop());
    const row = await t.db.selectFrom('labelingConfigs').selectAll().where('id', '=', ids.config).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ name: 'Cats and dogs', configXml: CONFIG_XML });
    await expect(page.getByText('The XML can be edited').isVisible()).resolves.toBe(true);
  });

  it('creates a workflow; a validation error appears next to the field it concerns', LONG, async () => {
    await page.goto(`${base}/workflows/new`);
    await page.locator('#f-name').fill('Classify pets');
    await page.getByLabel('Role').selectOption({ label: 'Labeler' });
    await page.getByLabel('Labeling config').selectOption({ label: 'Cats and dogs' });
    await page.getByLabel('S3 source prefix').fill('s3://other-bucket/pets/');
    await page.getByLabel('S3 export prefix').fill('exports/pets/');
    await page.getByLabel('Gold standard rate').fill('1.5');
    await page.getByRole('button', { name: 'Create workflow' }).click();
    await page.waitForFunction(() => !document.querySelector('[data-error-for="s3SourcePath"]')?.hasAttribute('hidden'));
    await expect(fieldError(page, 'form', 's3SourcePath').textContent()).resolves.toMatch(/not an s3:\/\/ URL/);
    await expect(fieldError(page, 'form', 'goldStandardRate').textContent()).resolves.toMatch(/1/);
    // Other fields carry no error, and nothing was created.
    await expect(fieldError(page, 'form', 'name').isHidden()).resolves.toBe(true);
    expect((await t.db.selectFrom('workflows').select('id').where('name', '=', 'Classify pets').execute()).length).toBe(0);

    await page.getByLabel('S3 source prefix').fill('pets/');
    await page.getByLabel('Gold standard rate').fill('0.1');
    await page.getByRole('button', { name: 'Create workflow' }).click();
    await page.waitForURL(/\/workflows\/\d+$/);
    ids.workflow = Number(page.url().split('/').pop());
    const w = await t.db.selectFrom('workflows').selectAll().where('id', '=', ids.workflow).executeTakeFirstOrThrow();
    expect(w).toMatchObject({ name: 'Classify pets', roleId: ids.role, labelingConfigId: ids.config, s3SourcePath: 'pets/', goldStandardRate: 0.1, isActive: true });
  });

  it('pauses and resumes the workflow', LONG, async () => {
    await page.goto(`${base}/workflows/${ids.workflow}`);
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('button', { name: 'Resume' }).waitFor();
    expect((await t.db.selectFrom('workflows').select('isActive').where('id', '=', ids.workflow).executeTakeFirstOrThrow()).isActive).toBe(false);
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByRole('button', { name: 'Pause' }).waitFor();
    expect((await t.db.selectFrom('workflows').select('isActive').where('id', '=', ids.workflow).executeTakeFirstOrThrow()).isActive).toBe(true);
  });

  it('creates an annotator through the form and shows its Label Studio password once', LONG, async () => {
    await page.goto(`${base}/annotators`);
    await openPanel(page, 'New annotator');
    const form = page.getByRole('form', { name: 'New annotator' });
    await form.getByLabel('Name').fill('Ada Lovelace');
    await form.getByLabel('Email').fill('not-an-email');
    await form.getByRole('button', { name: 'Create annotator' }).click();
    await page.waitForFunction(() => !document.querySelector('[data-error-for="email"]')?.hasAttribute('hidden'));
    await form.getByLabel('Email').fill('ada@console.test');
    await form.getByLabel('Role').selectOption({ label: 'Labeler' });
    await form.getByRole('button', { name: 'Create annotator' }).click();
    await page.waitForURL(/\/annotators\/\d+$/);
    ids.annotator = Number(page.url().split('/').pop());
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Ada Lovelace');
    await expect(page.locator('[data-progress-message]').textContent()).resolves.toBe('Not started yet');

    await page.getByRole('button', { name: 'Issue Label Studio password' }).click();
    const dialog = page.getByRole('dialog', { name: 'Label Studio password' });
    await dialog.waitFor();
    const password = await dialog.getByLabel('Password').inputValue();
    expect(password.length).toBeGreaterThanOrEqual(15);
    await expect(dialog.getByText('Username: ada@console.test').isVisible()).resolves.toBe(true);
    await dialog.getByRole('button', { name: 'Copy password' }).click();
    await page.locator('[data-toast].shown').waitFor();
    await dialog.getByRole('button', { name: 'Close' }).click();
    // Stored sealed, never in plain text.
    const row = await t.db.selectFrom('annotators').select('lsPasswordEnc').where('id', '=', ids.annotator).executeTakeFirstOrThrow();
    expect(row.lsPasswordEnc).not.toBeNull();
    expect(row.lsPasswordEnc).not.toContain(password);
  });

  it('follows a start phase by phase on the annotator page, without a reload', LONG, async () => {
    await page.goto(`${base}/annotators/${ids.annotator}`);
    await markPage(page);
    await page.getByRole('button', { name: 'Start' }).click();
    await page.waitForFunction(() => document.querySelector('[data-phase="database"] [data-phase-state]')?.textContent === 'current');
    // What the reconciler's annotators step records, phase by phase.
    const gen = (await t.db.selectFrom('annotators').select('startGeneration').where('id', '=', ids.annotator).executeTakeFirstOrThrow()).startGeneration;
    const phases: [string, string, string][] = [
      ['database', 'container', 'database ls_annotator created'],
      ['container', 'healthy', 'container running'],
      ['healthy', 'token', 'Label Studio answers /health/'],
      ['token', 'route', 'token reported'],
    ];
    for (const [from, to, message] of phases) {
      // One transaction, as the annotators step writes a phase and its event (a poll between two
      // separate writes would show the new phase before the message of the one it ended).
      await t.db.transaction().execute(async (trx) => {
        await trx.updateTable('annotators').set({ startPhase: to as never, phaseStartedAt: new Date(), statusReason: `starting: ${to}` }).where('id', '=', ids.annotator).execute();
        await writeContainerEvent(trx, { annotatorId: ids.annotator, eventType: 'start_progress', fromStatus: 'starting', toStatus: 'starting', message, details: { phase: to, previousPhase: from, generation: gen } });
      });
      await page.waitForFunction((ph) => document.querySelector(`[data-phase="${ph}"] [data-phase-state]`)?.textContent === 'current', to);
      await expect(page.locator(`[data-phase="${from}"] [data-phase-message]`).textContent()).resolves.toBe(message);
    }
    await expect(page.locator('[data-progress-percent]').textContent()).resolves.toBe('90%');
    await t.db.transaction().execute(async (trx) => {
      await transitionAnnotator(trx, ids.annotator, 'active', 'Label Studio is up', { generation: gen });
      await trx.updateTable('annotators').set({ startPhase: null, routedAt: new Date() }).where('id', '=', ids.annotator).execute();
    });
    await page.waitForFunction(() => document.querySelector('[data-progress-percent]')?.textContent === '100%');
    await expect(page.locator('[data-progress-message]').textContent()).resolves.toMatch(/^Label Studio is up at http:\/\//);
    // The rest of the page followed: status and buttons, still without a reload.
    await page.getByRole('link', { name: 'Open Label Studio' }).waitFor();
    await page.getByRole('button', { name: 'Stop' }).waitFor();
    expect(await stillSamePage(page)).toBe(true);
    expect(problems).toEqual([]);
  });

  it('shows fleet changes on the overview without a reload', LONG, async () => {
    await page.goto(`${base}/`);
    await page.locator('[data-live-status][data-state="live"]').waitFor();
    await markPage(page);
    const created = page.locator('.stat', { hasText: /^\s*\d+\s*created/ }).locator('.stat-value');
    const before = Number(await created.textContent());
    // Another admin (the API) adds two annotators.
    for (const n of [1, 2]) expect((await t.json('POST', '/api/annotators', { name: `Live ${n}`, email: `live${n}@console.test` })).status).toBe(201);
    await waitUntil('the created count to rise by 2', async () => Number(await created.textContent()) === before + 2, 20_000, 200);
    const todayBefore = Number((await page.locator('.stat', { hasText: 'annotations today' }).locator('.stat-value').textContent())!.replace(/,/g, ''));
    await sql`INSERT INTO annotation_events (annotator_id, event_type, ls_task_id, ls_annotation_id, time_spent_ms)
      VALUES (${ids.annotator}, 'annotation_created', 1, 900001, 4000), (${ids.annotator}, 'annotation_created', 2, 900002, 5000)`.execute(t.db);
    await waitUntil(
      'annotations today to rise by 2',
      async () => Number((await page.locator('.stat', { hasText: 'annotations today' }).locator('.stat-value').textContent())!.replace(/,/g, '')) === todayBefore + 2,
      20_000,
      200,
    );
    expect(await stillSamePage(page)).toBe(true);
  });

  it("shows instants in the viewer's time zone and names the fleet's zone where today is meant", LONG, async () => {
    // The browser runs in Europe/Berlin (test/helpers/browser.ts); the fleet's day is UTC (the default).
    await page.goto(`${base}/`);
    expect(await page.locator('.stat', { hasText: 'annotations today' }).textContent()).toContain('(UTC day)');
    const first = page.locator('time[datetime]').first();
    await first.waitFor();
    const instant = new Date((await first.getAttribute('datetime'))!);
    const berlin = (o: Intl.DateTimeFormatOptions) => new Intl.DateTimeFormat('en-GB', { ...o, timeZone: 'Europe/Berlin' }).format(instant);
    const expected = berlin({ dateStyle: 'full', timeStyle: 'long' });
    await waitUntil('the instant shown in Berlin time', async () => (await first.getAttribute('title')) === expected, 10_000, 100);
    expect(expected).toMatch(/CES?T$/);
  });

  it('creates many annotators from pasted lines, reporting bad lines by number', LONG, async () => {
    await page.goto(`${base}/annotators`);
    await openPanel(page, 'Add many (paste lines or CSV)');
    const form = page.getByRole('form', { name: 'Add many annotators' });
    await form.getByLabel('Annotators, one per line').fill('Bo One <bo1@console.test>\nBo Two, not-an-email\n');
    await form.getByRole('button', { name: 'Create all' }).click();
    await page.waitForFunction(() => document.querySelector('[data-error-for="lines"]')?.textContent?.includes('Line 2: "not-an-email" is not an email address'));
    await form.getByLabel('Annotators, one per line').fill('Bo One <bo1@console.test>\nBo Two, bo2@console.test, Labeler\nbo3@console.test\n');
    await form.getByRole('button', { name: 'Create all' }).click();
    await page.locator('[data-toast]', { hasText: 'Created 3 annotator(s).' }).waitFor();
    const rows = await t.db.selectFrom('annotators').select(['name', 'email', 'roleId']).where('email', 'like', 'bo%@console.test').orderBy('email').execute();
    expect(rows).toEqual([
      { name: 'Bo One', email: 'bo1@console.test', roleId: null },
      { name: 'Bo Two', email: 'bo2@console.test', roleId: ids.role },
      { name: 'bo3', email: 'bo3@console.test', roleId: null },
    ]);
  });

  it('searches, filters and pages the table on the server; deletes a selection', LONG, async () => {
    await page.goto(`${base}/annotators`);
    await page.getByLabel('Search name or email').fill('bo');
    await page.waitForFunction(() => document.querySelectorAll('table.annotators tbody tr').length === 3);
    expect(page.url()).toContain('q=bo');
    await page.getByLabel('Select every annotator on this page').check();
    await expect(page.locator('[data-selected-count]').textContent()).resolves.toBe('3 selected');
    await page.getByRole('button', { name: 'Delete selected' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.locator('[data-toast]', { hasText: 'Deleted 3 annotator(s).' }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('table.annotators tbody tr').length === 0);
    const statuses = await t.db.selectFrom('annotators').select('status').where('email', 'like', 'bo%@console.test').execute();
    expect(statuses.map((s) => s.status)).toEqual(['deleted', 'deleted', 'deleted']);

    await page.goto(`${base}/annotators?status=active&sort=email&dir=desc`);
    const emails = await page.locator('table.annotators tbody tr td:nth-child(3)').allTextContents();
    const expected = await t.db.selectFrom('annotators').select('email').where('status', '=', 'active').orderBy(sql`lower(email)`, 'desc').orderBy('id', 'desc').limit(50).execute();
    expect(emails).toEqual(expected.map((e) => e.email));
    await expect(page.locator('th[aria-sort="descending"]').textContent()).resolves.toMatch(/Email/);
  });

  it('checks a setting before saving it and saves a valid one', LONG, async () => {
    await page.goto(`${base}/settings`);
    const row = page.locator('tr', { has: page.locator('code', { hasText: /^quality\.accuracyThreshold$/ }) });
    await row.getByLabel('quality.accuracyThreshold value').fill('1.5');
    await row.getByRole('button', { name: 'Save' }).click();
    await expect(row.locator('[data-error-for="value"]').textContent()).resolves.toBe('must be at most 1');
    expect(await t.db.selectFrom('settings').select('key').where('key', '=', 'quality.accuracyThreshold').executeTakeFirst()).toBeUndefined();
    await row.getByLabel('quality.accuracyThreshold value').fill('0.8');
    await row.getByRole('button', { name: 'Save' }).click();
    await page.locator('[data-toast]', { hasText: 'quality.accuracyThreshold saved.' }).waitFor();
    const stored = await t.db.selectFrom('settings').select(sql<string>`value::text`.as('v')).where('key', '=', 'quality.accuracyThreshold').executeTakeFirstOrThrow();
    expect(stored.v).toBe('0.8');
  });

  it("says 'Required' once at each required field left empty, on every form", LONG, async () => {
    // Zod's wording for an empty value ("Too small: expected string to have >=1 characters"),
    // and the field's other checks that an empty value fails too, are one word at the field.
    await page.goto(`${base}/roles`);
    await openPanel(page, 'New role');
    await page.getByRole('form', { name: 'New role' }).getByRole('button', { name: 'Create role' }).click();
    await page.waitForFunction(() => !document.querySelector('[data-error-for="name"]')?.hasAttribute('hidden'));
    await expect(fieldError(page, 'form[aria-label="New role"]', 'name').textContent()).resolves.toBe('Required');

    await page.goto(`${base}/annotators`);
    await openPanel(page, 'New annotator');
    const annotatorForm = page.getByRole('form', { name: 'New annotator' });
    await annotatorForm.getByLabel('Email').fill('someone@console.test');
    await annotatorForm.getByRole('button', { name: 'Create annotator' }).click();
    await page.waitForFunction(() => !document.querySelector('form[aria-label="New annotator"] [data-error-for="name"]')?.hasAttribute('hidden'));
    await expect(fieldError(page, 'form[aria-label="New annotator"]', 'name').textContent()).resolves.toBe('Required');
    await expect(fieldError(page, 'form[aria-label="New annotator"]', 'email').isHidden()).resolves.toBe(true);

    await page.goto(`${base}/gold-tasks/new`);
    await page.getByLabel('Expected labels (Label Studio result JSON)').fill('');
    await page.getByRole('button', { name: 'Create gold task' }).click();
    await page.waitForFunction(() => !document.querySelector('[data-error-for="s3ImageKey"]')?.hasAttribute('hidden'));
    // The image key fails both "at least 1 character" and "not blank": one word, not both.
    await expect(fieldError(page, 'form', 's3ImageKey').textContent()).resolves.toBe('Required');
    await expect(fieldError(page, 'form', 'expectedLabels').textContent()).resolves.toBe('Required');
    // A whitespace-only key is not empty: the API's own message for it stays.
    await page.getByLabel('Image key in S3').fill('   ');
    await page.getByLabel('Expected labels (Label Studio result JSON)').fill(
      JSON.stringify([{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['cat'] } }]),
    );
    await page.getByRole('button', { name: 'Create gold task' }).click();
    await page.waitForFunction(() => document.querySelector('[data-error-for="s3ImageKey"]')?.textContent === 'must not be blank');
    await expect(fieldError(page, 'form', 'expectedLabels').isHidden()).resolves.toBe(true);
    await page.getByLabel('Image key in S3').fill('gold/cat-1.jpg');
    await page.getByLabel('Labeling config').selectOption({ label: 'Cats and dogs' });
    await page.getByRole('button', { name: 'Create gold task' }).click();
    await page.waitForURL(/\/gold-tasks\/\d+$/);
    ids.gold = Number(page.url().split('/').pop());
    expect((await t.db.selectFrom('goldTasks').select('s3ImageKey').where('id', '=', ids.gold).executeTakeFirstOrThrow()).s3ImageKey).toBe('gold/cat-1.jpg');
  });

  it('asks before cancelling a batch with two different buttons: going back keeps it', LONG, async () => {
    const open = await t.db.selectFrom('assignments').select('id').where('status', '=', 'in_progress').orderBy('id').executeTakeFirstOrThrow();
    await page.goto(`${base}/batches`);
    await page.getByRole('button', { name: `Cancel batch ${open.id}`, exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    // Not "Cancel" and "Cancel": the one that cancels the batch says so.
    await expect(dialog.getByRole('button').allTextContents()).resolves.toEqual(['Go back', `Cancel batch ${open.id}`]);
    await dialog.getByRole('button', { name: 'Go back' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect((await t.db.selectFrom('assignments').select('status').where('id', '=', open.id).executeTakeFirstOrThrow()).status).toBe('in_progress');
    await page.getByRole('button', { name: `Cancel batch ${open.id}`, exact: true }).click();
    await dialog.getByRole('button', { name: `Cancel batch ${open.id}`, exact: true }).click();
    await page.locator('[data-toast]', { hasText: `Cancel batch ${open.id}: done.` }).waitFor();
    await page.locator(`tr[data-batch="${open.id}"] .badge`, { hasText: 'cancelled' }).waitFor();
    expect((await t.db.selectFrom('assignments').select('status').where('id', '=', open.id).executeTakeFirstOrThrow()).status).toBe('cancelled');
  });

  it('filters batches and events by an annotator typed as an email or a name, offering the matches when several', LONG, async () => {
    const annotatorsOf = (table: string) => page.locator(`table.${table} tbody td a[href^="/annotators/"]`).allTextContents();
    const filterBy = async (path: string, text: string) => {
      await page.goto(`${base}${path}`);
      await page.getByLabel('Annotator', { exact: true }).fill(text);
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.waitForURL(/annotator=/);
    };
    const batchesOf = async (email: string) =>
      Number((await sql<{ n: number }>`SELECT count(*)::int AS n FROM assignments s JOIN annotators a ON a.id = s.annotator_id WHERE a.email = ${email}`.execute(t.db)).rows[0]!.n);

    // An email: only that annotator's batches, all of them, and the field keeps the email.
    await filterBy('/batches', 'SEED7@console.test');
    expect(await batchesOf('seed7@console.test')).toBeGreaterThan(0);
    const seven = await annotatorsOf('batches');
    expect(seven).toEqual(Array(await batchesOf('seed7@console.test')).fill('Seed Annotator 7'));
    await expect(page.getByLabel('Annotator', { exact: true }).inputValue()).resolves.toBe('seed7@console.test');

    // A name that is also part of others' names ("Seed Annotator 2" of 20–24): the exact one wins.
    await filterBy('/batches', 'seed annotator 2');
    expect(new Set(await annotatorsOf('batches'))).toEqual(new Set(['Seed Annotator 2']));

    // Part of eleven names: no rows, the first ten offered as links; following one filters by it.
    await filterBy('/batches', 'Annotator 1');
    const matches = page.getByRole('status').filter({ hasText: 'Several annotators match' });
    await expect(matches.getByRole('link').allTextContents()).resolves.toEqual([
      'Seed Annotator 1 (seed1@console.test)',
      ...Array.from({ length: 9 }, (_, k) => `Seed Annotator 1${k} (seed1${k}@console.test)`),
    ]);
    await expect(page.locator('table.batches tbody tr').count()).resolves.toBe(0);
    await matches.getByRole('link', { name: 'Seed Annotator 11 (seed11@console.test)' }).click();
    await page.waitForURL(/annotatorId=/);
    expect(await annotatorsOf('batches')).toEqual(Array(await batchesOf('seed11@console.test')).fill('Seed Annotator 11'));

    // Nobody: said, and no rows (never every batch).
    await filterBy('/batches', 'nobody at all');
    await page.getByText('No annotator matches “nobody at all”.').waitFor();
    await page.getByText('No batches.').waitFor();

    // The events page: the same field.
    await filterBy('/events', 'seed3@console.test');
    const events = await annotatorsOf('events');
    expect(events.length).toBeGreaterThan(0);
    expect(new Set(events)).toEqual(new Set(['Seed Annotator 3']));
  });

  it('shows an unknown address as a console page saying so; the API keeps its JSON 404', LONG, async () => {
    // A page of its own: the shared page's watcher counts every 404 document as a problem.
    const p = await browser.context.newPage();
    try {
      for (const path of ['/no-such-page', '/annotators/12/extra', '/workflows/new/x']) {
        const res = await p.goto(`${base}${path}`);
        expect([path, res?.status(), res?.headers()['content-type']]).toEqual([path, 404, 'text/html; charset=UTF-8']);
        await expect(p.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Not found');
        await expect(p.locator('main').textContent()).resolves.toContain(`There is no page at ${path}.`);
        await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Annotators' }).waitFor();
      }
      await expectAccessible(p, 'the not-found page');
      const api = await p.request.get(`${base}/api/no-such-thing`);
      expect([api.status(), await api.json()]).toEqual([404, { error: 'No route for GET /api/no-such-thing' }]);
    } finally {
      await p.close();
    }
  });

  it('draws the workflow graph and the quality page', LONG, async () => {
    await page.goto(`${base}/workflows`);
    const nodes = page.locator('svg.graph a.node');
    expect(await nodes.count()).toBe(4);
    await expect(page.locator('svg.graph .archive').count()).resolves.toBe(1);
    await expect(page.locator('svg.graph .edge.chain').count()).resolves.toBe(2);
    await expect(page.locator('svg.graph .edge.rejection').count()).resolves.toBe(1);
    await page.locator('svg.graph a.node', { hasText: 'Classify pets' }).click();
    await page.waitForURL(`${base}/workflows/${ids.workflow}`);

    await page.goto(`${base}/quality`);
    await page.locator('#chart-accuracy canvas').waitFor();
    // The chart shows the lowest accuracies first, as the API computes them.
    const lowest = await t.json('GET', '/api/quality');
    const scored = (lowest.body.annotatorScores as { accuracy: number | null }[]).filter((s) => s.accuracy !== null);
    expect(scored.length).toBeGreaterThan(0);
    await expect(page.locator('#chart-accuracy').getAttribute('aria-label')).resolves.toContain(`Lowest accuracy ${(Math.min(...scored.map((s) => s.accuracy!)) * 100).toFixed(1)}%`);
    // Every bar is named below it (drawn on the chart's canvas: dark text pixels under each bar).
    const named = await page.locator('#chart-accuracy').evaluate((el) => {
      const bars = (JSON.parse(el.dataset.series!) as { names: string[] }).names.length;
      const canvas = el.querySelector('canvas')!;
      const plot = el.querySelector('.u-over')!.getBoundingClientRect();
      const box = canvas.getBoundingClientRect();
      const k = canvas.width / box.width;
      const top = Math.round((plot.bottom - box.top + 8) * k);
      const pixels = canvas.getContext('2d')!.getImageData(0, top, canvas.width, canvas.height - top);
      const darkInColumn = (x: number) => {
        let n = 0;
        for (let cx = Math.round(x - 4 * k); cx <= Math.round(x + 4 * k); cx++)
          for (let y = 0; y < pixels.height; y++) {
            const i = (y * pixels.width + cx) * 4;
            if (pixels.data[i + 3]! > 128 && pixels.data[i]! < 140 && pixels.data[i + 1]! < 140 && pixels.data[i + 2]! < 140) n++;
          }
        return n;
      };
      return { bars, named: Array.from({ length: bars }, (_, i) => darkInColumn((plot.left - box.left + ((i + 0.5) * plot.width) / bars) * k) > 20) };
    });
    expect(named.bars).toBeGreaterThan(12);
    expect(named.named).toEqual(Array(named.bars).fill(true));
    await expect(page.getByText('Nobody is flagged or paused.').isVisible()).resolves.toBe(true);
    await expect(page.locator('.stat', { hasText: 'accuracy threshold' }).locator('.stat-value').textContent()).resolves.toBe('80.0%');
  });

  it('is usable by keyboard: the skip link, then the navigation', LONG, async () => {
    await page.goto(`${base}/batches`);
    await page.keyboard.press('Tab');
    await expect(page.evaluate(() => document.activeElement?.textContent)).resolves.toBe('Skip to content');
    await page.keyboard.press('Enter');
    await expect(page.evaluate(() => document.activeElement?.id)).resolves.toBe('main');
    await page.goto(`${base}/batches`);
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      await page.keyboard.press('Tab');
      seen.push((await page.evaluate(() => document.activeElement?.textContent?.trim())) ?? '');
    }
    expect(seen).toEqual(['Skip to content', 'LabelFleet', 'Overview', 'Annotators']);
    // A batch filter by keyboard.
    await page.getByLabel('Only with problems').focus();
    await page.keyboard.press('Space');
    await page.getByRole('button', { name: 'Filter' }).focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(/problems=1/);
    const problemCells = await page.locator('table.batches tbody tr td:nth-child(7)').allTextContents();
    expect(problemCells.length).toBeGreaterThan(0);
    expect(problemCells.every((c) => c !== '–')).toBe(true);
  });

  it('signs out, and the pages then need a session again', LONG, async () => {
    await page.goto(`${base}/`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${base}/login`);
    await page.goto(`${base}/workflows`);
    await page.waitForURL(/\/login\?next=%2Fworkflows/);
    expect(problems).toEqual([]);
  });
});

describe('every page', () => {
  const pages = () => [
    '/',
    '/annotators',
    `/annotators/${ids.annotator}`,
    '/workflows',
    '/workflows/new',
    `/workflows/${ids.workflow}`,
    '/batches',
    '/quality',
    '/labeling-configs',
    '/labeling-configs/new',
    `/labeling-configs/${ids.config}`,
    '/gold-tasks',
    '/gold-tasks/new',
    `/gold-tasks/${ids.gold}`,
    '/roles',
    `/roles/${ids.role}`,
    '/events',
    '/settings',
  ];

  it('has no accessibility violation of any impact (axe-core), also at tablet width', LONG, async () => {
    const b = await launchBrowser();
    try {
      const p = await b.context.newPage();
      await p.goto(`${base}/login`);
      await expectAccessible(p, '/login');
      await signIn(p, base);
      for (const path of pages()) {
        await p.goto(`${base}${path}`);
        await p.waitForLoadState('networkidle').catch(() => {});
        await expectAccessible(p, path);
      }
      // Tablet width: the page itself never scrolls sideways (wide tables scroll in their region).
      await p.setViewportSize({ width: 768, height: 1024 });
      for (const path of pages()) {
        await p.goto(`${base}${path}`);
        const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        expect([path, overflow]).toEqual([path, 0]);
      }
      await p.goto(`${base}/annotators`);
      await expectAccessible(p, '/annotators at 768 px');
      // The annotators table reads whole at 768 px: each email on one line, not broken mid-word.
      const emailLines = await p.locator('table.annotators tbody tr').evaluateAll((rows) =>
        rows.map((row) => {
          const cell = [...row.querySelectorAll('td')].find((td) => td.textContent!.includes('@'))!;
          const range = document.createRange();
          range.selectNodeContents(cell);
          return [cell.textContent, new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size];
        }),
      );
      expect(emailLines.length).toBeGreaterThan(10);
      expect(emailLines.filter(([, lines]) => lines !== 1)).toEqual([]);
    } finally {
      await b.close();
    }
  });

  it('loads with the network blocked except the service, with no refused script or style', LONG, async () => {
    const b = await launchBrowser();
    try {
      const elsewhere: string[] = [];
      await b.context.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith(base) || url.startsWith('data:')) return route.continue();
        elsewhere.push(url);
        return route.abort('internetdisconnected');
      });
      const p = await b.context.newPage();
      const seen = watchProblems(p);
      const served: string[] = [];
      p.on('response', (r) => served.push(`${r.status()} ${r.url()}`));
      await signIn(p, base);
      for (const path of pages()) {
        await p.goto(`${base}${path}`);
        await p.waitForLoadState('networkidle').catch(() => {});
        // The script ran: times are in the viewer's zone and charts are drawn.
        await expect(p.locator('time[title]').count().then((n) => n >= 0)).resolves.toBe(true);
        if ((await p.locator('[data-chart]').count()) > 0) await p.locator('[data-chart] canvas').first().waitFor();
      }
      expect(elsewhere).toEqual([]);
      expect(seen).toEqual([]);
      expect(served.filter((s) => !/^(200|303|304) /.test(s))).toEqual([]);
      expect(served.some((s) => /\/console\/assets\/app-[A-Z0-9]+\.js$/.test(s))).toBe(true);
    } finally {
      await b.close();
    }
  });
});

describe('screenshots for README', () => {
  // Always taken (and checked to be small); written over docs/console/ only when asked.
  it('takes a small screenshot of each main page', LONG, async () => {
    const dir = SCREENSHOTS ? 'docs/console' : mkdtempSync(path.join(tmpdir(), 'lf-shots-'));
    const b = await launchBrowser({ viewport: { width: 1280, height: 800 } });
    try {
      const p = await b.context.newPage();
      await signIn(p, base);
      mkdirSync(dir, { recursive: true });
      const seedAnnotator = await t.db.selectFrom('annotators').select('id').where('email', '=', 'seed3@console.test').executeTakeFirstOrThrow();
      for (const [name, url] of [
        ['overview', '/'],
        ['annotators', '/annotators'],
        ['annotator', `/annotators/${seedAnnotator.id}`],
        ['workflows', '/workflows'],
        ['batches', '/batches'],
        ['quality', '/quality'],
      ] as const) {
        await p.goto(`${base}${url}`);
        await p.waitForLoadState('networkidle').catch(() => {});
        await p.waitForTimeout(300);
        const file = path.join(dir, `${name}.jpg`);
        await p.screenshot({ path: file, type: 'jpeg', quality: 55 });
        const size = statSync(file).size;
        expect(size, `${name}.jpg`).toBeGreaterThan(10_000);
        expect(size, `${name}.jpg`).toBeLessThan(200_000);
      }
    } finally {
      await b.close();
      if (!SCREENSHOTS) rmSync(dir, { recursive: true, force: true });
    }
  });
});
