/**
 * Buttons that make one API call (`[data-action]`), the annotators' bulk bar (`[data-bulk]`), and
 * sign-out. Each asks first when it carries `data-confirm`, reports the API's message when refused,
 * and refreshes the page's live regions (or goes to `data-then`) when done.
 */
import { api, errorText, toLogin } from './api.ts';
import { followProgress, refreshLive } from './live.ts';
import { selectedIds } from './selection.ts';
import { confirmDialog, copyText, infoDialog, toast } from './ui.ts';

async function showPassword(username: string, password: string) {
  const note = Object.assign(document.createElement('p'), {
    textContent: 'Give this to the annotator now: it is shown once and never stored in plain text.',
  });
  const user = Object.assign(document.createElement('p'), { textContent: `Username: ${username}` });
  const label = Object.assign(document.createElement('label'), { htmlFor: 'issued-password', textContent: 'Password' });
  const input = Object.assign(document.createElement('input'), { id: 'issued-password', type: 'text', readOnly: true, value: password, className: 'mono' });
  const copy = Object.assign(document.createElement('button'), { type: 'button', className: 'button', textContent: 'Copy password' });
  copy.addEventListener('click', async () => {
    const ok = await copyText(password, input);
    toast(ok ? 'Password copied.' : 'Selected: press Ctrl+C (or ⌘C) to copy.');
  });
  const row = document.createElement('div');
  row.className = 'copy-row';
  row.append(input, copy);
  await infoDialog('Label Studio password', [note, user, label, row]);
}

async function run(button: HTMLButtonElement) {
  const { method = 'POST', url, body, confirm, then, show } = button.dataset;
  if (!url) return;
  // What the button does, by its accessible name ("Cancel batch 12", "Stop Ada"), so the
  // dialog's confirm button and the toast say exactly what was done.
  const action = button.getAttribute('aria-label') || button.textContent?.trim() || 'OK';
  if (confirm && !(await confirmDialog(confirm, action))) return;
  button.disabled = true;
  try {
    const r = await api(method, url, body ? JSON.parse(body) : undefined);
    if (!r.ok) {
      toast(errorText(r), 'error');
      return;
    }
    if (show === 'password') await showPassword(r.body.username, r.body.password);
    if (then) return location.assign(then);
    toast(`${action}: done.`);
    await refreshLive();
    followProgress();
  } catch (err) {
    toast((err as Error).message, 'error');
  } finally {
    button.disabled = false;
  }
}

async function bulk(kind: string) {
  const ids = selectedIds();
  if (!ids.length) return;
  if (kind === 'delete') {
    if (!(await confirmDialog(`Delete ${ids.length} annotator(s)? Their open batches are cancelled and instances removed.`, 'Delete'))) return;
    const r = await api('DELETE', '/api/annotators/bulk', { ids });
    toast(r.ok ? `Deleted ${r.body.deleted} annotator(s).` : errorText(r), r.ok ? 'ok' : 'error');
  } else {
    // One call per annotator: the API starts and stops them one at a time; report what was refused.
    const refused: string[] = [];
    for (const id of ids) {
      const r = await api('POST', `/api/annotators/${id}/${kind}`);
      if (!r.ok) refused.push(`#${id}: ${r.body?.error ?? r.status}`);
    }
    const done = ids.length - refused.length;
    toast(`${kind === 'start' ? 'Started' : 'Stopped'} ${done} of ${ids.length}.${refused.length ? ` Refused: ${refused.slice(0, 3).join('; ')}` : ''}`, refused.length ? 'error' : 'ok');
  }
  await refreshLive();
}

export function initActions() {
  document.addEventListener('click', (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const action = target?.closest<HTMLButtonElement>('button[data-action]');
    if (action) return void run(action);
    const bulkButton = target?.closest<HTMLButtonElement>('button[data-bulk]');
    if (bulkButton) return void bulk(bulkButton.dataset.bulk!);
    if (target?.closest('[data-signout]')) {
      void api('POST', '/api/auth/signout').finally(() => location.assign('/login'));
    }
  });
}

/** The session's end, visible: when it expires the page goes to the sign-in page and says so. */
export function watchSession() {
  const expires = Date.parse(document.body.dataset.sessionExpires ?? '');
  if (!Number.isFinite(expires)) return;
  const check = () => {
    if (Date.now() >= expires) toLogin(true);
    else window.setTimeout(check, Math.min(expires - Date.now() + 500, 60_000));
  };
  check();
}
