/**
 * Forms that talk to the API (`form[data-api-form]`): each named field becomes a typed JSON value
 * by its data-kind, the API validates, and each message of an error response's `details` appears
 * next to the field it names (path[0]), with the line and column when the API gives them
 * (labeling-config XML). The API is the one place the rules live; this only places its words.
 */
import { api, errorText, type ApiErrorBody, type ApiResult } from './api.ts';
import { refreshLive } from './live.ts';
import { toast } from './ui.ts';

type Control = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;

export interface FieldProblem {
  field: string | null;
  message: string;
}

const NUMERIC = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;

/** The JSON value of one control, or a problem the API could not describe better. */
function valueOf(el: Control): { value?: unknown; problem?: string } {
  const kind = el.dataset.kind ?? 'string';
  if (kind === 'bool') return { value: el instanceof HTMLInputElement ? el.checked : el.value === 'true' };
  const raw = el.value;
  switch (kind) {
    case 'nullable':
      return { value: raw.trim() === '' ? null : raw };
    case 'int':
    case 'number':
      // Empty: left out (the API applies its default or says the field is required).
      return raw.trim() === '' ? {} : { value: NUMERIC.test(raw.trim()) ? Number(raw) : raw };
    case 'nullable-int':
      return raw.trim() === '' ? { value: null } : { value: NUMERIC.test(raw.trim()) ? Number(raw) : raw };
    case 'json':
      if (raw.trim() === '') return {};
      try {
        return { value: JSON.parse(raw) };
      } catch (err) {
        return { problem: `is not valid JSON: ${(err as Error).message}` };
      }
    default:
      return { value: raw };
  }
}

/** The form's body, or the problems found before sending. */
export function collect(form: HTMLFormElement): { body: Record<string, unknown>; problems: FieldProblem[] } {
  const body: Record<string, unknown> = {};
  const problems: FieldProblem[] = [];
  const omitEmpty = form.dataset.omitEmpty === 'true';
  for (const el of form.querySelectorAll<Control>('input[name], select[name], textarea[name]')) {
    if (el.disabled || (el instanceof HTMLInputElement && el.type === 'hidden')) continue;
    if (!(el instanceof HTMLSelectElement) && el.readOnly) continue;
    const { value, problem } = valueOf(el);
    if (problem) problems.push({ field: el.name, message: problem });
    else if (value !== undefined && !(omitEmpty && value === '')) body[el.name] = value;
  }
  return { body, problems };
}

const REQUIRED = 'Required';

/**
 * Zod's own wording for a value left out or empty ("Too small: expected string to have >=1
 * characters", "Invalid input: expected number, received undefined") said as a form says it. Our
 * own messages (a custom "must not be empty", a range) are kept as the API wrote them.
 */
function plainMessage(issue: { code?: unknown; message?: unknown; minimum?: unknown }): string {
  const message = String(issue.message ?? 'is not valid');
  if (issue.code === 'too_small' && issue.minimum === 1 && /^Too small: expected (string|array) to have >=1 /.test(message)) return REQUIRED;
  if (issue.code === 'invalid_type' && /received undefined$/.test(message)) return REQUIRED;
  return message;
}

/**
 * Turns an error response's `details` into messages per field (zod issues and our own). A field
 * that is required says only that (an empty value also fails the field's other checks), and a
 * message is said once.
 */
export function problemsOf(details: unknown): FieldProblem[] {
  if (!Array.isArray(details)) return [];
  const problems = details.map((d) => {
    const issue = (d ?? {}) as { path?: unknown[]; message?: unknown; line?: unknown; column?: unknown; code?: unknown; minimum?: unknown };
    const path = Array.isArray(issue.path) ? issue.path : [];
    const where = typeof issue.line === 'number' ? `Line ${issue.line}, column ${issue.column}: ` : '';
    const rest = path.slice(1).map(String).join('.');
    const message = `${where}${rest ? `${rest}: ` : ''}${plainMessage(issue)}`;
    return { field: typeof path[0] === 'string' ? path[0] : null, message };
  });
  const required = new Set(problems.filter((p) => p.message === REQUIRED).map((p) => p.field));
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.field}\u0000${p.message}`;
    if (seen.has(key) || (required.has(p.field) && p.message !== REQUIRED)) return false;
    seen.add(key);
    return true;
  });
}

export function clearErrors(form: HTMLFormElement) {
  for (const el of form.querySelectorAll<HTMLElement>('[data-error-for]')) {
    el.hidden = true;
    el.textContent = '';
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const top = form.querySelector<HTMLElement>('.form-error');
  if (top) {
    top.hidden = true;
    top.textContent = '';
  }
}

/** Puts each problem at its field (the rest, and `summary`, at the top of the form); focuses the first. */
export function showErrors(form: HTMLFormElement, summary: string | null, problems: FieldProblem[]) {
  const unplaced: string[] = [];
  let first: HTMLElement | null = null;
  const byField = new Map<string, string[]>();
  for (const p of problems) {
    const slot = p.field ? form.querySelector<HTMLElement>(`[data-error-for="${CSS.escape(p.field)}"]`) : null;
    if (!slot || !p.field) {
      unplaced.push(p.field ? `${p.field}: ${p.message}` : p.message);
      continue;
    }
    byField.set(p.field, [...(byField.get(p.field) ?? []), p.message]);
  }
  for (const [field, messages] of byField) {
    const slot = form.querySelector<HTMLElement>(`[data-error-for="${CSS.escape(field)}"]`)!;
    slot.textContent = messages.join(' · ');
    slot.hidden = false;
    const control = form.querySelector<HTMLElement>(`[name="${CSS.escape(field)}"]`);
    control?.setAttribute('aria-invalid', 'true');
    first ??= control;
  }
  const top = form.querySelector<HTMLElement>('.form-error');
  const lines = [summary, ...unplaced].filter((s): s is string => !!s);
  if (top && lines.length) {
    top.textContent = lines.join(' — ');
    top.hidden = false;
  }
  const firstProblem = problems.find((p) => p.field && byField.has(p.field));
  if (first) {
    first.focus();
    placeCaret(first, firstProblem?.message);
  } else top?.focus();
}

/** In a textarea, puts the caret at "Line L, column C" of the message, where the problem is. */
function placeCaret(el: HTMLElement, message: string | undefined) {
  const m = message ? /^Line (\d+), column (\d+)/.exec(message) : null;
  if (!m || !(el instanceof HTMLTextAreaElement)) return;
  const lines = el.value.split('\n');
  const line = Math.min(Number(m[1]), lines.length);
  const offset = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0) + Math.max(0, Number(m[2]) - 1);
  el.setSelectionRange(offset, offset);
}

async function submit(form: HTMLFormElement) {
  clearErrors(form);
  const { body, problems } = collect(form);
  if (problems.length) return showErrors(form, 'Please correct the marked fields.', problems);
  const button = form.querySelector<HTMLButtonElement>('button[type="submit"]');
  if (button) button.disabled = true;
  form.setAttribute('aria-busy', 'true');
  let result: ApiResult<ApiErrorBody & { id?: number }>;
  try {
    result = await api(form.dataset.method ?? 'POST', form.getAttribute('action')!, body);
  } catch (err) {
    showErrors(form, (err as Error).message, []);
    return;
  } finally {
    if (button) button.disabled = false;
    form.removeAttribute('aria-busy');
  }
  if (!result.ok) return showErrors(form, errorText(result), problemsOf(result.body?.details));
  const then = form.dataset.then;
  if (then) {
    location.assign(then.replace('{id}', String(result.body?.id ?? '')));
    return;
  }
  toast(form.dataset.method === 'PUT' ? 'Saved.' : 'Done.');
  if (form.dataset.method !== 'PUT') form.reset();
  await refreshLive();
}

export function initForms() {
  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-api-form')) return;
    event.preventDefault();
    void submit(form);
  });
}
