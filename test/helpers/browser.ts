/**
 * A real Chromium for console tests: Debian's `chromium` (installed by `npm run env:up`) driven by
 * playwright-core, headless, with a fresh profile and nothing that phones home. Also: signing in
 * through the console's form, an axe-core accessibility scan, and the page problems a user would
 * notice (script errors, Content-Security-Policy refusals, failed requests).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(opts: { viewport?: { width: number; height: number } } = {}): Promise<TestBrowser> {
  const profile = mkdtempSync(path.join(tmpdir(), 'lf-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: opts.viewport ?? { width: 1280, height: 800 },
    timezoneId: 'Europe/Berlin',
    locale: 'en-GB',
  });
  context.setDefaultTimeout(30_000);
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** What went wrong in a page as a user would notice it: script errors, CSP refusals, failed requests. */
export function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    // Chromium logs every 4xx answer to fetch() as an error; the page shows those itself (they are
    // the API's validation messages). Failed page loads are caught below, by response.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) problems.push(`console error: ${msg.text()}`);
  });
  page.on('response', (res) => {
    const type = res.request().resourceType();
    if (res.status() >= 400 && type !== 'fetch' && type !== 'xhr' && type !== 'eventsource') problems.push(`${res.status()} for ${type} ${res.url()}`);
  });
  page.on('requestfailed', (req) => {
    // A page left while a request was open (a stream, a refresh, a lazily loaded chart script)
    // cancels it, and Chromium reports that as ERR_ABORTED: not a failure a user sees. A server
    // that fails answers with a status (caught above) or another net:: error.
    const reason = req.failure()?.errorText ?? '';
    if (/ERR_ABORTED/.test(reason)) return;
    problems.push(`request failed: ${req.method()} ${req.url()} ${reason}`);
  });
  return problems;
}

export async function signIn(page: Page, base: string, email = 'admin@fleet.local', password = 'admin') {
  await page.goto(`${base}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/`);
}

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

/** Runs axe-core (WCAG 2.x A and AA rules and best practices) on the page as it is. */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run: (ctx: Document, opts: unknown) => Promise<{ violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[] }> } }).axe;
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
  });
  return result;
}

/** No accessibility violation of any impact on the page (axe-core's minor and moderate included). */
export async function expectAccessible(page: Page, what: string) {
  const violations = await axeViolations(page);
  expect(violations, `${what}: ${JSON.stringify(violations, null, 1)}`).toEqual([]);
}

/** Opens a <details> panel by its summary's text (leaves it open if it already is). */
export async function openPanel(page: Page, summary: string) {
  const details = page.locator('details', { has: page.locator('summary', { hasText: summary }) });
  if (!(await details.evaluate((d) => (d as HTMLDetailsElement).open))) await details.locator('summary').click();
}
