/**
 * HTML built as strings, for the parts of a page drawn on every page or many times (the frame, a
 * table's rows and the small components in their cells): Hono's `html` tagged template, whose
 * interpolated values are escaped exactly as Hono JSX escapes text (`& < > " '`); `escapeHtml`
 * and `childHtml` for rows built by hand; and `attrs`, which writes attributes as Hono JSX writes
 * them. What they return is already-escaped HTML (Hono's HtmlEscapedString, `raw`) that JSX and
 * `html` insert as is, so they mix freely and the output is the same bytes JSX would write —
 * without building and walking a JSX node per element (the rows of a 50-row table were the
 * largest part of the annotators page's CPU time).
 */
import { html, raw } from 'hono/html';
import { escapeToBuffer } from 'hono/utils/html';
import type { HtmlEscapedString } from 'hono/utils/html';

export { html, raw };
export type { HtmlEscapedString };

/**
 * Attributes HTML marks present by their name alone (Hono JSX's list, hono/src/jsx/base.ts):
 * `true` writes `name=""`, `false` leaves them out. Any other attribute writes its value as text
 * (`true` → "true").
 */
const BOOLEAN_ATTRIBUTES = new Set([
  'allowfullscreen', 'async', 'autofocus', 'autoplay', 'checked', 'controls', 'default', 'defer', 'disabled', 'download',
  'formnovalidate', 'hidden', 'inert', 'ismap', 'itemscope', 'loop', 'multiple', 'muted', 'nomodule', 'novalidate', 'open',
  'playsinline', 'readonly', 'required', 'reversed', 'selected', 'shadowrootclonable', 'shadowrootdelegatesfocus',
  'shadowrootserializable',
]);

const ESCAPED = /[&<>'"]/;

/**
 * Text as HTML: `& < > " '` escaped (Hono's escaping, the same for text and attribute values).
 * For strings built by hand (`raw(`<b>${escapeHtml(name)}</b>`)`) where a table draws many: each
 * value from data goes through it, exactly as `html` would put it.
 */
export function escapeHtml(text: string): string {
  if (!ESCAPED.test(text)) return text;
  const buffer = [''];
  escapeToBuffer(text, buffer);
  return buffer[0]!;
}

/**
 * Anything JSX accepts as a child, as HTML, the way JSX writes it: strings escaped, numbers as
 * digits, nothing for null, undefined and booleans, arrays one after another, escaped HTML
 * (templates, `raw`, JSX nodes) as it renders — a Promise only when something renders
 * asynchronously.
 */
export function childHtml(child: unknown): string | Promise<string> {
  if (typeof child === 'string') return escapeHtml(child);
  if (typeof child === 'number') return String(child);
  if (child === null || child === undefined || typeof child === 'boolean') return '';
  if (Array.isArray(child)) {
    const parts = child.map(childHtml);
    return parts.some((p) => typeof p !== 'string') ? Promise.all(parts).then((all) => all.join('')) : parts.join('');
  }
  if (child instanceof Promise) return child.then(childHtml);
  if ((child as { isEscaped?: boolean }).isEscaped) {
    const out = (child as { toString(): string | Promise<string> }).toString();
    return typeof out === 'string' ? out : out.then(String);
  }
  return escapeHtml(String(child));
}

/**
 * Attributes in the given order, each ` name="value"` with the value escaped, as Hono JSX writes
 * them: `undefined` and `null` leave an attribute out; booleans follow BOOLEAN_ATTRIBUTES. Names
 * are the caller's constants (never user input).
 */
export function attrs(values: Record<string, string | number | boolean | null | undefined>): HtmlEscapedString {
  let out = '';
  for (const name in values) {
    const v = values[name];
    if (v === undefined || v === null) continue;
    if (typeof v === 'boolean' && BOOLEAN_ATTRIBUTES.has(name)) {
      if (v) out += ` ${name}=""`;
      continue;
    }
    out += ` ${name}="${typeof v === 'number' ? v : escapeHtml(String(v))}"`;
  }
  return raw(out);
}
