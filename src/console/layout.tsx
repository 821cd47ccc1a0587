/** The page shell every console page shares: head, skip link, navigation, session, live status. */
import { raw } from 'hono/html';
import type { Child, PropsWithChildren } from 'hono/jsx';
import type { ChangeTopic } from '../domain/fleet-changes.ts';
import type { AssetBundle } from './assets.ts';
import { Time } from './components.tsx';

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
  return (
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{`${title} · LabelFleet`}</title>
      {/* An empty icon: browsers would otherwise ask for /favicon.ico. */}
      <link rel="icon" href="data:," />
      <link rel="stylesheet" href={assets.style} />
      <script type="module" src={assets.script}></script>
    </head>
  );
}

const DOCTYPE = raw('<!DOCTYPE html>');

export function Page(props: PropsWithChildren<PageProps>) {
  return (
    <>
      {DOCTYPE}
      <html lang="en">
        <Head title={props.title} assets={props.assets} />
        <body
          data-topics={props.topics?.join(',') || undefined}
          data-fleet-tz={props.fleetTimeZone}
          data-session-expires={props.session?.expiresAt.toISOString()}
        >
          <a class="skip" href="#main">
            Skip to content
          </a>
          <header class="top">
            <a class="brand" href="/">
              LabelFleet
            </a>
            <nav aria-label="Main">
              <ul>
                {NAV.map((n) => (
                  <li>
                    <a href={n.href} aria-current={props.nav === n.key ? 'page' : undefined}>
                      {n.label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
            {props.session ? (
              <div class="session">
                <span class="live" data-live-status role="status">
                  {props.topics?.length ? 'Live' : ''}
                </span>
                <span class="who">{props.session.email}</span>
                <span class="expires">
                  session until <Time at={props.session.expiresAt} />
                </span>
                <button type="button" class="button small" data-signout>
                  Sign out
                </button>
              </div>
            ) : null}
          </header>
          <main id="main" tabindex={-1}>
            <div class="page-head">
              <h1>{props.title}</h1>
              {props.actions ? <div class="page-actions">{props.actions}</div> : null}
            </div>
            {props.children}
          </main>
          <div class="toast" data-toast role="status" aria-live="polite"></div>
          <dialog class="dialog" data-dialog aria-labelledby="dialog-title">
            <form method="dialog">
              <h2 id="dialog-title" data-dialog-title>
                Confirm
              </h2>
              <div data-dialog-body></div>
              <div class="form-actions">
                {/* Not "Cancel": that is also what some actions are called (cancel a batch, a start). */}
                <button value="cancel" class="button" data-dialog-cancel>
                  Go back
                </button>
                <button value="ok" class="button primary" data-dialog-ok>
                  OK
                </button>
              </div>
            </form>
          </dialog>
        </body>
      </html>
    </>
  );
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
