/** Behaviour of particular pages: sign-in, bulk create, settings, search as you type. */
import { parseAnnotatorLines } from '../../domain/annotator-import.ts';
import { checkSettingValue } from '../../domain/setting-specs.ts';
import { api, errorText } from './api.ts';
import { clearErrors, problemsOf, showErrors, type FieldProblem } from './forms.ts';
import { refreshLive } from './live.ts';
import { toast } from './ui.ts';

/** NextAuth's credentials flow from the sign-in form; a stale csrf token is renewed once. */
async function signIn(form: HTMLFormElement) {
  clearErrors(form);
  const data = Object.fromEntries(new FormData(form)) as Record<string, string>;
  const send = () => api<{ url?: string; error?: string }>('POST', '/api/auth/callback/credentials', data);
  let r = await send();
  if (r.status === 401 && /csrf/i.test(r.body?.error ?? '')) {
    const fresh = await api<{ csrfToken: string }>('GET', '/api/auth/csrf');
    data.csrfToken = fresh.body.csrfToken;
    r = await send();
  }
  if (r.ok) return location.assign(r.body.url ?? '/');
  showErrors(form, r.status === 429 ? `${r.body?.error ?? 'Too many attempts'}.` : (r.body?.error ?? 'Sign-in failed'), []);
}

/** Parses pasted lines or CSV in the browser, then one all-or-nothing POST /api/annotators/bulk. */
async function bulkCreate(form: HTMLFormElement) {
  clearErrors(form);
  const roles = JSON.parse(form.dataset.roles ?? '[]') as { id: number; name: string }[];
  const text = form.querySelector<HTMLTextAreaElement>('[name="lines"]')!.value;
  const defaultRole = form.querySelector<HTMLSelectElement>('[name="defaultRoleId"]')!.value;
  const parsed = parseAnnotatorLines(text, roles, defaultRole ? Number(defaultRole) : null);
  const atLine = (p: { line: number; message: string }): FieldProblem => ({ field: 'lines', message: p.line ? `Line ${p.line}: ${p.message}` : p.message });
  if (parsed.problems.length) return showErrors(form, 'Nothing was created: please correct these lines.', parsed.problems.map(atLine));
  const r = await api('POST', '/api/annotators/bulk', { annotators: parsed.annotators.map(({ line: _line, ...a }) => a) });
  if (!r.ok) {
    // ["annotators", i, field] → the line that annotator came from.
    const details = (Array.isArray(r.body?.details) ? r.body.details : []) as { path?: unknown[]; message?: string }[];
    const problems: FieldProblem[] = details.map((d) => {
      const path = Array.isArray(d.path) ? d.path : [];
      const line = typeof path[1] === 'number' ? parsed.annotators[path[1]]?.line : undefined;
      const field = path.slice(2).join('.');
      return { field: 'lines', message: `${line ? `Line ${line}: ` : ''}${field ? `${field}: ` : ''}${d.message ?? 'is not valid'}` };
    });
    const email = (r.body?.details as { email?: string } | undefined)?.email;
    const line = email ? parsed.annotators.find((a) => a.email.toLowerCase() === email.toLowerCase())?.line : undefined;
    if (line) problems.push({ field: 'lines', message: `Line ${line}: ${r.body.error}` });
    return showErrors(form, `Nothing was created. ${errorText(r)}`, problems);
  }
  toast(`Created ${r.body.created} annotator(s).`);
  form.reset();
  await refreshLive();
}

function settingValue(type: string, raw: string): { value?: unknown; problem?: string } {
  const text = raw.trim();
  if (text === '') return { value: null };
  switch (type) {
    case 'boolean':
      return { value: text === 'true' };
    case 'number':
    case 'integer':
      return /^-?\d+(\.\d+)?$/.test(text) ? { value: Number(text) } : { problem: 'must be a number' };
    case 'stringList': // comma-separated
      return { value: text.split(',').map((s) => s.trim()).filter(Boolean) };
    default:
      return { value: text };
  }
}

/** One setting: checked against its spec here, stored by PUT /api/settings/:key. */
async function saveSetting(form: HTMLFormElement) {
  clearErrors(form);
  const key = form.dataset.key!;
  const control = form.querySelector<HTMLInputElement | HTMLSelectElement>('[name="value"]')!;
  const { value, problem } = settingValue(form.dataset.type ?? 'string', control.value);
  const issue = problem ?? checkSettingValue(key, value);
  if (issue) return showErrors(form, null, [{ field: 'value', message: issue }]);
  const r = await api('PUT', `/api/settings/${encodeURIComponent(key)}`, { value });
  if (!r.ok) return showErrors(form, null, [{ field: 'value', message: errorText(r) }, ...problemsOf(r.body?.details).map((p) => ({ ...p, field: 'value' }))]);
  toast(`${key} saved.`);
  await refreshLive();
}

/** Search as you type: the table region follows the form, and the URL follows too. */
function liveSearch(form: HTMLFormElement) {
  let timer: number | undefined;
  const go = () => {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (typeof v === 'string' && v !== '') params.set(k, v);
    const url = `${form.getAttribute('action')}${params.size ? `?${params}` : ''}`;
    history.replaceState(null, '', url);
    void refreshLive(url);
  };
  form.addEventListener('input', (event) => {
    if (!(event.target instanceof HTMLInputElement) || event.target.type !== 'search') return;
    window.clearTimeout(timer);
    timer = window.setTimeout(go, 300);
  });
  form.addEventListener('change', (event) => {
    if (event.target instanceof HTMLSelectElement) go();
  });
}

export function initPages() {
  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    const run = form.hasAttribute('data-login-form')
      ? signIn
      : form.hasAttribute('data-bulk-create')
        ? bulkCreate
        : form.hasAttribute('data-setting-form')
          ? saveSetting
          : null;
    if (!run) return;
    event.preventDefault();
    run(form).catch((err: unknown) => showErrors(form, (err as Error).message, []));
  });
  for (const form of document.querySelectorAll<HTMLFormElement>('form[data-live-search]')) liveSearch(form);
}
