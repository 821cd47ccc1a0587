/** The page shell every console page shares: head, skip link, navigation, session, live status. */
import type { Child, PropsWithChildren } from 'hono/jsx';
import type { ChangeTopic } from '../domain/fleet-changes.ts';
import type { AssetBundle } from './assets.ts';
import { Time } from './components.tsx';
import { attrs, html, raw } from './html.ts';

export const NAV = [
  { key: 'overview', href: '/', label: 'Overview' },
  { key: 'annotators', href: '/annotators', label: 'Annotators' },
  { key: 'workflows', href: '/workflows', label: 'Workflows' },
  { key: 'batches', href: '/batches', label: 'Batches' },
  { key: 'quality', href: '/quality', label: 'Quality' },
  { key: 'labeling-configs', href: '/labeling-configs', label: 'Labeling configs' },
  { key: 'gold-tasks', href: '/gold-tasks', label: 'Gold tasks' },
  { key: 'roles', href: '/roles', label: 'Roles' },
  { key: 'events', href: '/events', label: 'Events' },
  { key: 'settings', href: '/settings', label: 'Settings' },
] as const;
export type NavKey = (typeof NAV)[number]['key'];

export interface SessionView {
  email: string;
  expiresAt: Date;
}

export interface PageProps {
  title: string;
  nav?: NavKey;
  assets: AssetBundle;
  session?: SessionView;
  /** Change-stream topics whose changes refresh this page's live regions. */
  topics?: readonly ChangeTopic[];
  /** The fleet's time zone (setting monitoring.timeZone), where "today" is meant. */
  fleetTimeZone?: string;
  actions?: Child;
}

function Head({ title, assets }: { title: string; assets: AssetBundle }) {
  // An empty icon: browsers would otherwise ask for /favicon.ico.
  return html`<head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/><title>${title} · LabelFleet</title><link rel="icon" href="data:,"/><link rel="stylesheet" href="${assets.style}"/><script type="module" src="${assets.script}"></script></head>`;
}

const DOCTYPE = raw('<!DOCTYPE html>');

/** The navigation with `current` marked as the page shown: one string per page, made once. */
const navigation = new Map(
  [undefined, ...NAV.map((n) => n.key)].map((current) => [
    current,
    html`<nav aria-label="Main"><ul>${NAV.map(
      (n) => html`<li><a${attrs({ href: n.href, 'aria-current': current === n.key ? 'page' : undefined })}>${n.label}</a></li>`,
    )}</ul></nav>`,
  ]),
);

/**
 * After every page's content: the toast and the confirmation dialog the client script uses (its
 * way back is not called "Cancel": that is also what some actions are called — a batch, a start).
 */
const PAGE_END = html`<div class="toast" data-toast="true" role="status" aria-live="polite"></div><dialog class="dialog" data-dialog="true" aria-labelledby="dialog-title"><form method="dialog"><h2 id="dialog-title" data-dialog-title="true">Confirm</h2><div data-dialog-body="true"></div><div class="form-actions"><button value="cancel" class="button" data-dialog-cancel="true">Go back</button><button value="ok" class="button primary" data-dialog-ok="true">OK</button></div></form></dialog>`;

/**
 * Every signed-in page: head, skip link, navigation, session, the page's title, actions and
 * content. A string template (html.ts) around the content: the frame is the same on every page.
 */
export function Page(props: PropsWithChildren<PageProps>) {
  const session = props.session
    ? html`<div class="session"><span class="live" data-live-status="true" role="status">${props.topics?.length ? 'Live' : ''}</span><span class="who">${props.session.email}</span><span class="expires">session until ${Time({ at: props.session.expiresAt })}</span><button type="button" class="button small" data-signout="true">Sign out</button></div>`
    : null;
  const body = attrs({
    'data-topics': props.topics?.join(',') || undefined,
    'data-fleet-tz': props.fleetTimeZone,
    'data-session-expires': props.session?.expiresAt.toISOString(),
  });
  const actions = props.actions ? html`<div class="page-actions">${props.actions}</div>` : null;
  return html`${DOCTYPE}<html lang="en">${Head({ title: props.title, assets: props.assets })}<body${body}><a class="skip" href="#main">Skip to content</a><header class="top"><a class="brand" href="/">LabelFleet</a>${navigation.get(props.nav)}${session}</header><main id="main" tabindex="-1"><div class="page-head"><h1>${props.title}</h1>${actions}</div>${props.children}</main>${PAGE_END}</body></html>`;
}

/** The sign-in page: no navigation, no session. */
export function BarePage(props: PropsWithChildren<{ title: string; assets: AssetBundle }>) {
  return (
    <>
      {DOCTYPE}
      <html lang="en">
        <Head title={props.title} assets={props.assets} />
        <body class="bare">
          <main id="main" tabindex={-1}>
            {props.children}
          </main>
        </body>
      </html>
    </>
  );
}
