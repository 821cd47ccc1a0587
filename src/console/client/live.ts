/**
 * Live pages. The page subscribes to GET /api/changes; when a topic it shows (body[data-topics])
 * changes, it fetches itself again and swaps in every `[data-live-region]` (by id) — the server
 * renders, the browser only replaces. Checked rows and focus survive the swap. The annotator page
 * also follows its start progress (GET /api/annotators/:id/progress) and draws each event.
 */
import { toLogin } from './api.ts';
import { enhance } from './enhance.ts';
import { isDialogOpen } from './ui.ts';

let pending = false;
let running: Promise<void> | null = null;
let timer: number | undefined;

function setStatus(text: string, state: 'live' | 'reconnecting' | 'off') {
  const el = document.querySelector<HTMLElement>('[data-live-status]');
  if (!el) return;
  el.textContent = text;
  el.dataset.state = state;
}

/** Keeps the user's selection (checked rows) across a swap. */
function checkedIds(root: ParentNode): Set<string> {
  return new Set([...root.querySelectorAll<HTMLInputElement>('input[data-select-id]:checked')].map((i) => i.dataset.selectId!));
}

/** Fetches `url` (default: this page) and replaces each live region whose id matches. */
export async function refreshLive(url = location.href): Promise<void> {
  if (running) {
    pending = true;
    return running;
  }
  running = (async () => {
    try {
      const res = await fetch(url, { headers: { accept: 'text/html' }, credentials: 'same-origin' });
      if (res.redirected && new URL(res.url).pathname === '/login') return toLogin(true);
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      for (const current of document.querySelectorAll<HTMLElement>('[data-live-region][id]')) {
        const next = doc.getElementById(current.id);
        if (!next) continue;
        const selected = checkedIds(current);
        const focusedId = current.contains(document.activeElement) ? focusKey(document.activeElement) : null;
        const adopted = document.importNode(next, true);
        current.replaceWith(adopted);
        for (const box of adopted.querySelectorAll<HTMLInputElement>('input[data-select-id]')) box.checked = selected.has(box.dataset.selectId!);
        enhance(adopted);
        if (focusedId) adopted.querySelector<HTMLElement>(focusedId)?.focus();
      }
      document.dispatchEvent(new CustomEvent('live:refreshed'));
    } catch {
      // A failed refresh is retried at the next change; the page keeps what it shows.
    } finally {
      running = null;
      if (pending) {
        pending = false;
        schedule();
      }
    }
  })();
  return running;
}

/** A selector that finds "the same" element in the new region (id, else the action and URL). */
function focusKey(el: Element | null): string | null {
  if (!(el instanceof HTMLElement)) return null;
  if (el.id) return `#${CSS.escape(el.id)}`;
  if (el.dataset.url) return `[data-url="${CSS.escape(el.dataset.url)}"]`;
  if (el instanceof HTMLAnchorElement) return `a[href="${CSS.escape(el.getAttribute('href') ?? '')}"]`;
  return null;
}

/** Whether this browser's session has ended (GET /api/auth/session answers {} without one). */
async function sessionEnded(): Promise<boolean> {
  try {
    const res = await fetch('/api/auth/session', { headers: { accept: 'application/json' }, credentials: 'same-origin' });
    const body = (await res.json()) as { user?: unknown };
    return res.ok && !body.user;
  } catch {
    return false;
  }
}

function schedule() {
  window.clearTimeout(timer);
  // Changes come in bursts (a batch of annotations): one refresh per burst.
  timer = window.setTimeout(() => {
    if (isDialogOpen()) return schedule();
    void refreshLive();
  }, 250);
}

export function initLive() {
  const topics = new Set((document.body.dataset.topics ?? '').split(',').filter(Boolean));
  if (topics.size === 0 || typeof EventSource === 'undefined') return;
  const source = new EventSource('/api/changes');
  source.addEventListener('open', () => setStatus('Live', 'live'));
  source.addEventListener('error', () => {
    if (source.readyState !== EventSource.CLOSED) return setStatus('Reconnecting…', 'reconnecting');
    // Refused for good (EventSource gives up on a 401): say why when the session has ended.
    setStatus('Offline', 'reconnecting');
    void sessionEnded().then((gone) => gone && toLogin(true));
  });
  source.addEventListener('ready', () => setStatus('Live', 'live'));
  source.addEventListener('change', (event) => {
    const { topics: changed } = JSON.parse((event as MessageEvent<string>).data) as { topics: string[] };
    if (changed.some((t) => topics.has(t))) schedule();
  });
  window.addEventListener('pagehide', () => source.close());
}

// ---------------------------------------------------------------------------------------------
// Start progress (annotator page)

interface Phase {
  phase: string;
  state: string;
  startedAt: string | null;
  message: string | null;
}
interface Progress {
  percent: number;
  message: string;
  ready: boolean;
  failed: boolean;
  phases: Phase[];
}

let progressSource: EventSource | null = null;

function drawProgress(panel: HTMLElement, p: Progress) {
  const bar = panel.querySelector<HTMLProgressElement>('[data-progress-bar]');
  if (bar) {
    bar.value = p.percent;
    bar.textContent = `${p.percent}%`;
  }
  const pct = panel.querySelector('[data-progress-percent]');
  if (pct) pct.textContent = `${p.percent}%`;
  const msg = panel.querySelector<HTMLElement>('[data-progress-message]');
  if (msg) {
    msg.textContent = p.message;
    msg.className = p.failed ? 'bad' : p.ready ? 'ok' : '';
  }
  for (const ph of p.phases) {
    const li = panel.querySelector<HTMLElement>(`[data-phase="${CSS.escape(ph.phase)}"]`);
    if (!li) continue;
    li.className = `phase ${ph.state}`;
    li.querySelector('[data-phase-state]')!.textContent = ph.state;
    li.querySelector('[data-phase-message]')!.textContent = ph.message ?? '';
    const time = li.querySelector<HTMLElement>('[data-phase-time]')!;
    time.replaceChildren();
    if (ph.startedAt) {
      const t = document.createElement('time');
      t.dateTime = ph.startedAt;
      time.append(t);
      enhance(time);
    }
  }
}

/** (Re)opens the progress stream of the annotator page, if this is one. */
export function followProgress() {
  const panel = document.querySelector<HTMLElement>('[data-progress-stream]');
  if (!panel || typeof EventSource === 'undefined') return;
  progressSource?.close();
  const source = new EventSource(panel.dataset.progressStream!);
  progressSource = source;
  let first = true;
  source.addEventListener('progress', (event) => {
    const p = JSON.parse((event as MessageEvent<string>).data) as Progress;
    drawProgress(document.querySelector<HTMLElement>('[data-progress-stream]') ?? panel, p);
    // The rest of the page (status, buttons) follows each step of a start.
    if (!first) schedule();
    first = false;
    if (p.ready || p.failed) {
      source.close();
      if (progressSource === source) progressSource = null;
    }
  });
  window.addEventListener('pagehide', () => source.close(), { once: true });
}
