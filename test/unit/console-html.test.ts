/**
 * The console's string-built HTML (src/console/html.ts) writes what Hono JSX writes for the same
 * element — hostile text and attribute values included — and the components built with it read
 * as text whatever a name holds; pages are compressed with an encoding the browser accepts.
 */
import { describe, expect, it } from 'vitest';
import { jsx } from 'hono/jsx';
import { attrs, childHtml, escapeHtml, html } from '../../src/console/html.ts';
import { ActionButton, RoleLabel, StatusBadge, Time } from '../../src/console/components.tsx';
import { pickEncoding } from '../../src/console/send-page.ts';

const HOSTILE = ['<img src=x onerror="alert(1)">', `"'><script>x</script>`, 'Tom & Jerry &amp; &lt;b&gt;', "O'Brien", 'plain'];

const viaJsx = (tag: string, props: Record<string, unknown>, ...children: unknown[]) => String(jsx(tag, props, ...(children as never[])));

describe('html and attrs', () => {
  it('write the same bytes as Hono JSX for hostile text and attribute values', () => {
    for (const s of HOSTILE) {
      expect(String(html`<td>${s}</td>`)).toBe(viaJsx('td', {}, s));
      expect(escapeHtml(s)).toBe(viaJsx('b', {}, s).slice(3, -4));
      const props = { type: 'button', class: s, 'data-action': true, 'data-url': s, disabled: false, hidden: true, 'aria-label': undefined, tabindex: 0 };
      expect(String(html`<button${attrs(props)}>${s}</button>`)).toBe(viaJsx('button', props, s));
    }
  });

  it('childHtml writes any JSX child as JSX writes it', async () => {
    const children = ['a<b & "c"', 7, null, undefined, false, true, jsx('em', { title: "it's" }, 'x&y'), html`<i>${'<'}</i>`, ['<', [jsx('b', {}, '>')]]];
    for (const child of children) expect([child, childHtml(child)]).toEqual([child, viaJsx('p', {}, child).slice(3, -4)]);
    expect(await childHtml(Promise.resolve('<x>'))).toBe('&lt;x&gt;');
  });

  it('insert html templates and JSX as they are, and arrays one after another', () => {
    const inner = html`<b>${'<i>'}</b>`;
    expect(String(html`<p>${inner}${[inner, jsx('em', {}, 'x&y')]}${null}${undefined}${false}${3}</p>`)).toBe('<p><b>&lt;i&gt;</b><b>&lt;i&gt;</b><em>x&amp;y</em>3</p>');
  });
});

describe('components drawn in table rows', () => {
  it('show any name as text', () => {
    for (const s of HOSTILE) {
      const button = String(ActionButton({ method: 'POST', url: `/api/x/${s}`, label: s, confirm: s, of: s, body: { s }, variant: 'small' }));
      expect(button).not.toMatch(/<(img|script)/);
      expect(button).toBe(
        viaJsx(
          'button',
          { type: 'button', class: 'button small', 'data-action': true, 'data-method': 'POST', 'data-url': `/api/x/${s}`, 'data-body': JSON.stringify({ s }), 'data-confirm': s, 'aria-label': `${s} ${s}` },
          s,
        ),
      );
      expect(String(RoleLabel({ role: { name: s, color: '#3B82F6' } }))).toContain(`</svg>${escapeHtml(s)}</span>`);
      expect(String(RoleLabel({ role: { name: s, color: s } }))).toBe(`<span class="role">${escapeHtml(s)}</span>`);
      expect(String(StatusBadge({ status: s }))).not.toMatch(/<(img|script)/);
    }
    expect(String(Time({ at: new Date('2026-01-02T03:04:05.678Z'), relative: true }))).toBe(
      '<time datetime="2026-01-02T03:04:05.678Z" data-format="relative">2026-01-02 03:04 UTC</time>',
    );
    expect(String(Time({ at: null }))).toBe('<span class="muted">–</span>');
  });
});

describe('pickEncoding', () => {
  it('prefers brotli, then gzip, then deflate, by the q-values the browser gives', () => {
    expect(pickEncoding('gzip, deflate, br, zstd')).toBe('br');
    expect(pickEncoding('gzip')).toBe('gzip');
    expect(pickEncoding('deflate')).toBe('deflate');
    expect(pickEncoding('br;q=0.5, gzip;q=0.8')).toBe('gzip');
    expect(pickEncoding('br;q=0, gzip')).toBe('gzip');
    expect(pickEncoding('*')).toBe('br');
    expect(pickEncoding('identity')).toBeUndefined();
    expect(pickEncoding('*;q=0')).toBeUndefined();
    expect(pickEncoding(undefined)).toBeUndefined();
    expect(pickEncoding('')).toBeUndefined();
  });

  it('chooses among the encodings offered: gzip-only assets refuse gzip;q=0 and take gzip by * or a q > 0', () => {
    expect(pickEncoding('gzip;q=0, br', ['gzip'])).toBeUndefined();
    expect(pickEncoding('br', ['gzip'])).toBeUndefined();
    expect(pickEncoding('*', ['gzip'])).toBe('gzip');
    expect(pickEncoding('*, gzip;q=0', ['gzip'])).toBeUndefined();
    expect(pickEncoding('br, gzip;q=0.1', ['gzip'])).toBe('gzip');
    expect(pickEncoding('GZIP', ['gzip'])).toBe('gzip');
  });
});
