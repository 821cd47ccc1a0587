/**
 * The console against an attacker, in a real Chromium against a real LabelFleet and PostgreSQL:
 * - markup in anything a user or Label Studio can name (annotator names, role names and
 *   descriptions, workflow names in pages and in the graph's SVG, labeling config names and XML,
 *   gold task names, batch errors, event messages, rejection reasons, setting descriptions) is
 *   shown as the text it is, on every page that shows it, and never runs;
 * - the page to return to after sign-in is always on this origin, whatever `next` says, for a
 *   browser that signs in and for one that is already signed in;
 * - a session that ends while a page is open (expired, or signed out in another tab) is said so,
 *   on the sign-in page, and signing in again returns to the page;
 * - no console answer can be framed (X-Frame-Options DENY and frame-ancestors 'none'): a page of
 *   another origin that frames the console gets Chromium's error page in its frames.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeContainerEvent } from '../../src/workflows/annotators.ts';
import { launchBrowser, signIn, watchProblems, type TestBrowser } from '../helpers/browser.ts';
import { freePort, waitUntil } from '../helpers/process.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

const LONG = { timeout: 180_000 };

let t: TestService;
let browser: TestBrowser;
let base = '';

/** Markup that would run, or add elements, if a page put it into HTML or SVG unescaped. */
const EVIL = [
  '<img src=x onerror="window.__xss=1">',
  '"><svg onload="window.__xss=2">',
  "</title><script>window.__xss=3</script>",
  "' onfocus='window.__xss=4' autofocus x='",
  '<a href="javascript:window.__xss=5">x</a>',
  // Shown literally: an entity in a name is text, not the character it names.
  'Tom & Jerry &amp; &lt;b&gt; &#39;',
];

/** What an injected element would look like in the page (none may exist). */
const INJECTED = 'img[src="x"], svg[onload], [onerror], [onfocus], [onload], script:not([src]), a[href^="javascript:"]';

const ids = { roles: [] as number[], annotators: [] as number[], workflows: [] as number[], config: 0, gold: 0 };

beforeAll(async () => {
  const port = await freePort();
  t = await startTestService({ env: { HOST: '127.0.0.1', PORT: String(port), LIVE_POLL_MS: '200', LIVE_HEARTBEAT_SECONDS: '1' } });
  await t.service.start({ reconcile: false });
  base = `http://127.0.0.1:${port}`;

  for (const [i, evil] of EVIL.entries()) {
    const role = await t.json('POST', '/api/roles', { name: `role ${i} ${evil}`, description: evil });
    expect(role.status).toBe(201);
    ids.roles.push(role.body.id);
    const a = await t.json('POST', '/api/annotators', { name: evil, email: `evil${i}@attack.test`, roleId: role.body.id, notes: evil });
    expect(a.status).toBe(201);
    ids.annotators.push(a.body.id);
  }
  const config = await t.json('POST', '/api/labeling-configs', {
    name: EVIL[0],
    description: EVIL[1],
    configXml: `<View><Header value="${EVIL[2]!.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')}"/><Image name="image" value="$image"/><Choices name="label" toName="image"><Choice value="a"/></Choices></View>`,
  });
  expect(config.status).toBe(201);
  ids.config = config.body.id;
  let previous: number | null = null;
  for (const [i, evil] of EVIL.entries()) {
    const w: { status: number; body: { id: number } } = await t.json('POST', '/api/workflows', {
      name: `${i}${evil}`.slice(0, 255),
      roleId: ids.roles[i],
      labelingConfigId: ids.config,
      s3SourcePath: `in/${i}/`,
      s3ExportPath: `out/${i}/`,
      ...(previous === null ? {} : { previousWorkflowId: previous }),
    });
    expect(w.status, JSON.stringify(w.body)).toBe(201);
    ids.workflows.push(w.body.id);
    previous = w.body.id;
  }
  const gold = await t.json('POST', '/api/gold-tasks', {
    name: EVIL[3],
    s3ImageKey: 'gold/1.jpg',
    labelingConfigId: ids.config,
    category: EVIL[4],
    expectedLabels: [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['a'] } }],
  });
  expect(gold.status, JSON.stringify(gold.body)).toBe(201);
  ids.gold = gold.body.id;
  expect((await t.json('PUT', '/api/settings/custom.note', { value: EVIL[0], description: EVIL[1] })).status).toBe(200);

  // What Label Studio and the reconciler write: a batch error, a container event, a rejection.
  const [a0, a1] = ids.annotators as [number, number];
  await sql`INSERT INTO assignments (workflow_id, annotator_id, status, task_count, error)
            VALUES (${ids.workflows[0]}, ${a0}, 'pending', 5, ${EVIL[1]})`.execute(t.db);
  await writeContainerEvent(t.db, { annotatorId: a0, eventType: 'status_change', fromStatus: 'created', toStatus: 'error', message: EVIL[2]! });
  await sql`INSERT INTO rejections (workflow_id, original_annotator_id, reviewer_annotator_id, image_key, reason, action_taken)
            VALUES (${ids.workflows[1]}, ${a0}, ${a1}, ${EVIL[3]}, ${EVIL[4]}, 'none')`.execute(t.db);

  browser = await launchBrowser();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await t?.service.stop();
  await t?.close();
});

/** Loads `path`; returns what ran or was injected, and the page's visible text. */
async function visit(page: Page, path: string) {
  await page.goto(`${base}${path}`);
  await page.waitForLoadState('networkidle').catch(() => {});
  return page.evaluate((selector) => {
    const w = window as unknown as { __xss?: number };
    const fields = [...document.querySelectorAll<HTMLInputElement | HTMLTextAreaElement>('input, textarea')].map((f) => f.value);
    return {
      ran: w.__xss ?? null,
      injected: [...document.querySelectorAll(selector)].map((e) => e.outerHTML.slice(0, 80)),
      text: `${document.body.innerText}\n${fields.join('\n')}\n${[...document.querySelectorAll('svg text')].map((e) => e.textContent).join('\n')}`,
    };
  }, INJECTED);
}

describe('markup in names and texts', () => {
  it('is shown as text on every page that shows it, and never runs', LONG, async () => {
    const page = await browser.context.newPage();
    const problems = watchProblems(page);
    await signIn(page, base);
    const [a0] = ids.annotators;
    // Each page with the texts a user must see there, literally.
    const expectations: [string, string[]][] = [
      ['/', []],
      ['/annotators', EVIL],
      [`/annotators/${a0}`, [EVIL[0]!, EVIL[1]!, EVIL[2]!]],
      ['/workflows', EVIL.map((e, i) => `${i}${e}`)],
      [`/workflows/${ids.workflows[1]}`, [`1${EVIL[1]}`]],
      ['/batches', [EVIL[0]!, EVIL[1]!]],
      ['/quality', [EVIL[4]!]],
      ['/labeling-configs', [EVIL[0]!, EVIL[1]!]],
      [`/labeling-configs/${ids.config}`, [EVIL[0]!, EVIL[2]!.replace(/</g, '&lt;').replace(/>/g, '&gt;')]],
      ['/gold-tasks', [EVIL[3]!, EVIL[4]!]],
      [`/gold-tasks/${ids.gold}`, [EVIL[3]!]],
      ['/roles', EVIL],
      [`/roles/${ids.roles[2]}`, [`role 2 ${EVIL[2]}`]],
      ['/events', [EVIL[2]!]],
      ['/settings', [JSON.stringify(EVIL[0]), EVIL[1]!]],
    ];
    for (const [path, texts] of expectations) {
      const seen = await visit(page, path);
      expect({ path, ran: seen.ran, injected: seen.injected }).toEqual({ path, ran: null, injected: [] });
      for (const text of texts) expect(seen.text.includes(text), `${path} shows ${text}`).toBe(true);
    }
    // The graph draws workflow names into SVG: escaped there too (names are cut at 26 characters).
    await visit(page, '/workflows');
    const graph = await page.locator('svg.graph .node-title').allTextContents();
    expect(graph).toContain(`1${EVIL[1]}`.slice(0, 25) + '…');
    expect(problems).toEqual([]);
    await page.close();
  });
});

describe('the page after sign-in', () => {
  /** `next` values that name another site once a browser reads them (WHATWG URL parsing). */
  const ELSEWHERE = [
    'https://evil.example/',
    '//evil.example/x',
    '/\\evil.example',
    '/\t/evil.example',
    '/\n/evil.example',
    '\t//evil.example',
    'javascript:alert(1)',
    ' /\\/evil.example',
  ];

  it('is this origin for a browser already signed in, whatever next says', async () => {
    const cookie = await sessionCookie();
    for (const next of ELSEWHERE) {
      const res = await fetch(`${base}/login?next=${encodeURIComponent(next)}`, { headers: { cookie }, redirect: 'manual' });
      expect([next, res.status, res.headers.get('location')]).toEqual([next, 303, '/']);
    }
    const res = await fetch(`${base}/login?next=${encodeURIComponent('/annotators?status=error#top')}`, { headers: { cookie }, redirect: 'manual' });
    expect(res.headers.get('location')).toBe('/annotators?status=error#top');
  });

  it('is this origin after signing in through the form, whatever next says', LONG, async () => {
    const b = await launchBrowser();
    try {
      const page = await b.context.newPage();
      const elsewhere: string[] = [];
      await b.context.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith(base)) return route.continue();
        elsewhere.push(url);
        return route.abort('internetdisconnected');
      });
      for (const next of ['/\t/evil.example', '//evil.example/x']) {
        await page.goto(`${base}/login?next=${encodeURIComponent(next)}`);
        await page.getByLabel('Email').fill('admin@fleet.local');
        await page.getByLabel('Password').fill('admin');
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.waitForURL(`${base}/`);
        await page.getByRole('button', { name: 'Sign out' }).click();
        await page.waitForURL(/\/login/);
      }
      expect(elsewhere).toEqual([]);
    } finally {
      await b.close();
    }
  });
});

describe('framing and browser headers', () => {
  it('are DENY, same-origin referrers and no HSTS on every kind of console answer', async () => {
    const cookie = await sessionCookie();
    const assetPath = (await (await fetch(`${base}/login`)).text()).match(/\/console\/assets\/[\w.-]+\.js/)![0];
    for (const [path, withSession] of [['/login', false], ['/', true], ['/annotators', true], ['/no-such-page', true], ['/workflows', false], [assetPath, false]] as const) {
      const res = await fetch(`${base}${path}`, { headers: withSession ? { cookie } : {}, redirect: 'manual' });
      await res.arrayBuffer();
      const h = (name: string) => res.headers.get(name);
      expect([path, h('x-frame-options'), h('referrer-policy'), h('strict-transport-security'), /frame-ancestors 'none'/.test(h('content-security-policy') ?? '')]).toEqual([
        path,
        'DENY',
        'same-origin',
        null,
        true,
      ]);
    }
  });

  it('cannot be framed by another site: Chromium shows nothing of the console in the frame', LONG, async () => {
    // A page of another origin (another port) that frames the sign-in page and the overview.
    const framer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><title>framer</title><iframe id="a" src="${base}/login"></iframe><iframe id="b" src="${base}/"></iframe>`);
    });
    await new Promise<void>((resolve) => framer.listen(0, '127.0.0.1', resolve));
    const b = await launchBrowser();
    const page = await b.context.newPage();
    try {
      await signIn(page, base);
      await page.goto(`http://127.0.0.1:${(framer.address() as AddressInfo).port}/`);
      const children = () => page.frames().filter((f) => f !== page.mainFrame());
      // Refused by frame-ancestors / X-Frame-Options, a frame holds Chromium's error page.
      await waitUntil('both frames to settle', async () => children().length === 2 && children().every((f) => f.url().startsWith('chrome-error://')), 20_000, 100);
      for (const f of children()) expect(await f.locator('form, nav, main, input').count()).toBe(0);
    } finally {
      await b.close();
      framer.close();
    }
  });
});

describe('a session that ends while a page is open', () => {
  async function signedInPage() {
    const b = await launchBrowser();
    const page = await b.context.newPage();
    await signIn(page, base);
    return { b, page };
  }

  it('sends the next page to the sign-in page saying the session has ended, then back', LONG, async () => {
    const { b, page } = await signedInPage();
    try {
      await page.goto(`${base}/annotators?status=created`);
      await page.goto('about:blank');
      // Ended on the server, earlier than the browser's clock expects (another tab, an admin, skew).
      await t.db.updateTable('sessions').set({ expiresAt: new Date(Date.now() - 1000) }).execute();
      await page.goto(`${base}/workflows`);
      await page.waitForURL(/\/login\?/);
      await expect(page.getByRole('status').filter({ hasText: 'Your session has ended' }).isVisible()).resolves.toBe(true);
      await page.getByLabel('Email').fill('admin@fleet.local');
      await page.getByLabel('Password').fill('admin');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${base}/workflows`);
    } finally {
      await b.close();
    }
  });

  it('is noticed by a page left open with live updates, without any click', LONG, async () => {
    const { b, page } = await signedInPage();
    try {
      await page.goto(`${base}/annotators`);
      await page.locator('[data-live-status][data-state="live"]').waitFor();
      // Signed out elsewhere: the session is revoked. The open stream ends at its next heartbeat
      // and cannot be opened again.
      await t.db.updateTable('sessions').set({ revokedAt: new Date() }).execute();
      await page.waitForURL(/\/login\?.*expired=1/, { timeout: 60_000 });
      expect(new URL(page.url()).searchParams.get('next')).toBe('/annotators');
      await expect(page.getByText('Your session has ended').isVisible()).resolves.toBe(true);
    } finally {
      await b.close();
    }
  });
});

async function sessionCookie() {
  const csrf = (await (await fetch(`${base}/api/auth/csrf`)).json()) as { csrfToken: string };
  const res = await fetch(`${base}/api/auth/callback/credentials`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'admin@fleet.local', password: 'admin', csrfToken: csrf.csrfToken }),
  });
  return res.headers.get('set-cookie')!.split(';')[0]!;
}
