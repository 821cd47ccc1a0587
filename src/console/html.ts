/**
 * HTML built as strings, for the parts of a page drawn many times (a table's rows and the small
 * components in their cells): Hono's `html` tagged template, whose interpolated values are escaped
 * exactly as Hono JSX escapes text (`& < > " '`), and `attrs`, which writes attributes as Hono JSX
 * writes them. What they return is already-escaped HTML (Hono's HtmlEscapedString) that JSX and
 * `html` insert as is, so the two mix freely and the output is the same bytes JSX would write —
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

/** Text as HTML: `& < > " '` escaped (Hono's escaping, the same for text and attribute values). */
export function escapeHtml(text: string): string {
  const buffer = [''];
  escapeToBuffer(text, buffer);
  return buffer[0]!;
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
