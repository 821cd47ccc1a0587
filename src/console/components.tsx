/**
 * Building blocks of the console's pages (Hono JSX, rendered on the server; the small ones drawn in
 * every table row, and the rows themselves, as string templates — html.ts). Everything a script
 * does is declared with data-* attributes that src/console/client/ reads: no inline script, no
 * inline style (the Content-Security-Policy allows neither).
 */
import type { Child, PropsWithChildren } from 'hono/jsx';
import { attrs, childHtml, escapeHtml, raw } from './html.ts';

/** A URL with query parameters; empty and undefined values are left out. */
export function href(path: string, params: Record<string, string | number | boolean | null | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

const pad = (n: number) => String(n).padStart(2, '0');
/** The server's rendering of an instant (UTC); the browser rewrites it in the viewer's time zone. */
export const utcText = (d: Date) =>
  `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;

const toDate = (d: Date | string) => (d instanceof Date ? d : new Date(d));

// The components below are drawn in every row of a table: built as strings (html.ts), every value
// from data through escapeHtml.

/** An instant, shown in the viewer's time zone (`relative`: "3 min ago" with the time as a tooltip). */
export function Time({ at, relative }: { at: Date | string | null | undefined; relative?: boolean }) {
  if (at === null || at === undefined) return raw('<span class="muted">–</span>');
  const d = toDate(at);
  return raw(`<time datetime="${d.toISOString()}" data-format="${relative ? 'relative' : 'datetime'}">${utcText(d)}</time>`);
}

export function StatusBadge({ status }: { status: string }) {
  return raw(`<span class="badge st-${status.replace(/[^a-z_]/g, '')}">${escapeHtml(status.replace('_', ' '))}</span>`);
}

/** Done out of total, as a native <progress> (accessible, no inline style) and as text. */
export function Progress({ done, total, label }: { done: number; total: number; label: string }) {
  return (
    <span class="progress">
      <progress value={done} max={Math.max(total, 1)} aria-label={label}>
        {done}/{total}
      </progress>
      <span class="progress-text">
        {done}/{total}
      </span>
    </span>
  );
}

/** A colour swatch as SVG (a presentation attribute, which the CSP allows, unlike a style attribute). */
export function Swatch({ color }: { color: string | null }) {
  if (!color || !/^#[0-9a-fA-F]{6}$/.test(color)) return null;
  return raw(
    `<svg class="swatch" width="10" height="10" viewBox="0 0 10 10" aria-hidden="true" focusable="false"><rect width="10" height="10" rx="2" fill="${color}"></rect></svg>`,
  );
}

export function RoleLabel({ role }: { role: { name: string; color: string | null } | null }) {
  if (!role) return raw('<span class="muted">no role</span>');
  return raw(`<span class="role">${Swatch({ color: role.color }) ?? ''}${escapeHtml(role.name)}</span>`);
}

export interface Column {
  key: string;
  label: string;
  sortable?: boolean;
  class?: string;
}

/** A column header that sorts the table by its key (and flips direction when already sorted by it). */
export function SortHeader({ col, sort, dir, link }: { col: Column; sort: string; dir: 'asc' | 'desc'; link: (sort: string, dir: 'asc' | 'desc') => string }) {
  if (!col.sortable) return <th scope="col" class={col.class}>{col.label}</th>;
  const active = sort === col.key;
  const next = active && dir === 'asc' ? 'desc' : 'asc';
  return (
    <th scope="col" class={col.class} aria-sort={active ? (dir === 'asc' ? 'ascending' : 'descending') : undefined}>
      <a href={link(col.key, next)} data-live-nav>
        {col.label}
        <span class="sort-mark" aria-hidden="true">
          {active ? (dir === 'asc' ? ' ▲' : ' ▼') : ''}
        </span>
      </a>
    </th>
  );
}

/** "Showing 51–100 of 10,000" with previous / next / first / last links. */
export function Pager({ total, limit, offset, link, noun }: { total: number; limit: number; offset: number; link: (offset: number) => string; noun?: string }) {
  const from = total === 0 ? 0 : offset + 1;
  const to = Math.min(offset + limit, total);
  const last = Math.max(0, Math.floor((total - 1) / limit) * limit);
  const nav = (label: string, target: number, enabled: boolean, rel?: string) =>
    enabled ? (
      <a class="button small" href={link(target)} rel={rel} data-live-nav>
        {label}
      </a>
    ) : (
      <span class="button small disabled" aria-disabled="true">
        {label}
      </span>
    );
  return (
    <nav class="pager" aria-label="Pages">
      <span class="pager-text">
        {total === 0 ? 'Nothing to show' : `Showing ${from.toLocaleString('en')}–${to.toLocaleString('en')} of ${total.toLocaleString('en')}${noun ? ` ${noun}` : ''}`}
      </span>
      {nav('« First', 0, offset > 0)}
      {nav('‹ Previous', Math.max(0, offset - limit), offset > 0, 'prev')}
      {nav('Next ›', offset + limit, offset + limit < total, 'next')}
      {nav('Last »', last, offset + limit < total)}
    </nav>
  );
}

/**
 * A wide table in a region that scrolls sideways on narrow screens (focusable, so keyboards can
 * scroll it). The region is named "<label> table": a section headed by the same words around it
 * would otherwise be a second landmark of the same name.
 */
export function TableWrap({ label, children }: PropsWithChildren<{ label: string }>) {
  return (
    <div class="table-wrap" role="region" aria-label={`${label} table`} tabindex={0}>
      {children}
    </div>
  );
}

export function Empty({ children }: PropsWithChildren) {
  return <p class="empty">{children}</p>;
}

/** What the pager under a table needs: the total, the page, and the link to another offset. */
export interface Pagination {
  total: number;
  limit: number;
  offset: number;
  link: (offset: number) => string;
  noun?: string;
}

/** One column of a DataTable: its header, how to draw a row's cell, and whether it sorts. */
export interface TableColumn<R> extends Column {
  cell: (row: R) => Child;
}

/**
 * The console's table: a scrollable region with a caption, headers (sort links for sortable
 * columns), one row per item, a message when there is none, and the pager when the list is paged.
 * Every table of the console is drawn by this one component, so sorting, paging, empty states
 * and accessibility (scope, aria-sort, captions) behave the same everywhere.
 */
export function DataTable<R>(props: {
  /** The region's accessible name (and the caption unless `caption` says more). */
  label: string;
  caption?: string;
  class?: string;
  id?: string;
  /** Columns; `false`/`null` leave one out (e.g. the annotator column on an annotator's page). */
  columns: (TableColumn<R> | false | null | undefined)[];
  rows: R[];
  /** Shown instead of the table when there are no rows. */
  empty: Child;
  sort?: { by: string; dir: 'asc' | 'desc'; link: (sort: string, dir: 'asc' | 'desc') => string };
  pager?: Pagination;
  /** Attributes of a row's <tr> (data-* for scripts). */
  rowAttrs?: (row: R) => Record<string, string>;
  /** Attributes of the <table> (data-selectable). */
  tableAttrs?: Record<string, string>;
  /** A leading column (the selection checkboxes): its header cell and each row's cell. */
  lead?: { header: Child; cell: (row: R) => Child; class?: string };
}) {
  const columns = props.columns.filter((c): c is TableColumn<R> => Boolean(c));
  const sort = props.sort;
  return (
    <>
      {props.rows.length ? (
        <TableWrap label={props.label}>
          <table class={props.class} id={props.id} {...(props.tableAttrs ?? {})}>
            <caption class="visually-hidden">
              {props.caption ?? props.label}
              {sort ? `, sorted by ${columns.find((c) => c.key === sort.by)?.label ?? sort.by} (${sort.dir === 'asc' ? 'ascending' : 'descending'})` : ''}
            </caption>
            <thead>
              <tr>
                {props.lead ? (
                  <th scope="col" class={props.lead.class}>
                    {props.lead.header}
                  </th>
                ) : null}
                {columns.map((col) =>
                  sort ? (
                    <SortHeader col={col} sort={sort.by} dir={sort.dir} link={sort.link} />
                  ) : (
                    <th scope="col" class={col.class}>
                      {col.label}
                    </th>
                  ),
                )}
              </tr>
            </thead>
            <tbody>{props.rows.map((row) => TableRow(row, columns, props.lead, props.rowAttrs))}</tbody>
          </table>
        </TableWrap>
      ) : (
        <Empty>{props.empty}</Empty>
      )}
      {props.pager ? <Pager {...props.pager} /> : null}
    </>
  );
}

/**
 * One row of a DataTable, built as a string (html.ts): a page of rows is most of a table page's
 * elements. Cells may be strings (escaped), escaped HTML, or JSX (rendered in place).
 */
function TableRow<R>(row: R, columns: TableColumn<R>[], lead: { cell: (row: R) => Child; class?: string } | undefined, rowAttrs?: (row: R) => Record<string, string>) {
  const cells = lead ? [cell(lead.class, lead.cell(row))] : [];
  for (const col of columns) cells.push(cell(col.class, col.cell(row)));
  const open = `<tr${attrs(rowAttrs?.(row) ?? {})}>`;
  if (cells.every((c) => typeof c === 'string')) return raw(`${open}${cells.join('')}</tr>`);
  return Promise.all(cells).then((all) => raw(`${open}${all.join('')}</tr>`));
}

const cell = (cls: string | undefined, content: Child): string | Promise<string> => {
  const inner = childHtml(content);
  const open = `<td${attrs({ class: cls })}>`;
  return typeof inner === 'string' ? `${open}${inner}</td>` : inner.then((s) => `${open}${s}</td>`);
};

/** A labelled form field with the place where the API's validation message for it appears. */
export function Field(props: {
  label: string;
  name: string;
  value?: string | number | null;
  type?: string;
  kind?: 'string' | 'nullable' | 'int' | 'nullable-int' | 'number' | 'json';
  required?: boolean;
  help?: Child;
  placeholder?: string;
  min?: number;
  max?: number;
  step?: string;
  readonly?: boolean;
  textarea?: { rows: number; mono?: boolean };
  list?: string;
  autocomplete?: string;
}) {
  const id = `f-${props.name}`;
  const describedBy = [props.help ? `${id}-help` : null, `${id}-error`].filter(Boolean).join(' ');
  const common = {
    id,
    name: props.name,
    'data-kind': props.kind ?? 'string',
    required: props.required,
    'aria-describedby': describedBy,
    readonly: props.readonly,
    placeholder: props.placeholder,
    autocomplete: props.autocomplete ?? 'off',
  };
  return (
    <div class="field">
      <label for={id}>
        {props.label}
        {props.required ? <span class="req" aria-hidden="true"> *</span> : null}
      </label>
      {props.textarea ? (
        <textarea {...common} rows={props.textarea.rows} class={props.textarea.mono ? 'mono' : undefined} spellcheck={false}>
          {props.value ?? ''}
        </textarea>
      ) : (
        <input
          {...common}
          type={props.type ?? 'text'}
          value={props.value === null || props.value === undefined ? '' : String(props.value)}
          min={props.min}
          max={props.max}
          step={props.step}
          list={props.list}
        />
      )}
      {props.help ? (
        <p class="help" id={`${id}-help`}>
          {props.help}
        </p>
      ) : null}
      <p class="field-error" id={`${id}-error`} data-error-for={props.name} hidden></p>
    </div>
  );
}

export interface Option {
  value: string | number;
  label: string;
}

export function SelectField(props: {
  label: string;
  name: string;
  options: Option[];
  value?: string | number | null;
  kind?: 'string' | 'nullable' | 'int' | 'nullable-int' | 'bool';
  empty?: string;
  help?: Child;
  required?: boolean;
  disabled?: boolean;
}) {
  const id = `f-${props.name}`;
  const selected = props.value === null || props.value === undefined ? '' : String(props.value);
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <select
        id={id}
        name={props.name}
        data-kind={props.kind ?? 'string'}
        aria-describedby={[props.help ? `${id}-help` : null, `${id}-error`].filter(Boolean).join(' ')}
        required={props.required}
        disabled={props.disabled}
      >
        {props.empty !== undefined ? <option value="">{props.empty}</option> : null}
        {props.options.map((o) => (
          <option value={String(o.value)} selected={String(o.value) === selected}>
            {o.label}
          </option>
        ))}
      </select>
      {props.help ? (
        <p class="help" id={`${id}-help`}>
          {props.help}
        </p>
      ) : null}
      <p class="field-error" id={`${id}-error`} data-error-for={props.name} hidden></p>
    </div>
  );
}

export function CheckboxField(props: { label: string; name: string; checked: boolean; help?: Child }) {
  const id = `f-${props.name}`;
  return (
    <div class="field check">
      <input type="checkbox" id={id} name={props.name} data-kind="bool" checked={props.checked} aria-describedby={`${id}-error`} />
      <label for={id}>{props.label}</label>
      {props.help ? <p class="help">{props.help}</p> : null}
      <p class="field-error" id={`${id}-error`} data-error-for={props.name} hidden></p>
    </div>
  );
}

/**
 * A form that the console's script sends to the API as JSON (`data-api-form`): fields are typed by
 * their data-kind; on success it goes to `then` (`{id}` is replaced by the new resource's id) or
 * reloads; on a 4xx each message of the response's `details` appears at the field it names.
 */
export function ApiForm(props: PropsWithChildren<{ method: 'POST' | 'PUT'; action: string; then?: string; label: string; submit: string; omitEmpty?: boolean; class?: string }>) {
  return (
    <form
      class={`api-form ${props.class ?? ''}`}
      data-api-form
      data-method={props.method}
      action={props.action}
      data-then={props.then}
      data-omit-empty={props.omitEmpty ? 'true' : undefined}
      aria-label={props.label}
      novalidate
    >
      <div class="form-error" role="alert" hidden></div>
      {props.children}
      <div class="form-actions">
        <button type="submit" class="primary">
          {props.submit}
        </button>
      </div>
    </form>
  );
}

/**
 * A button that sends one API request (`data-action`): method and URL, an optional JSON body and a
 * confirmation question; then reloads the live parts of the page, goes to `then`, or (password)
 * shows the answer once. `of` names what the button acts on where the label alone is ambiguous (a
 * row's button): the accessible name is then "<label> <of>", so it always begins with the visible
 * text (WCAG 2.5.3, axe's label-content-name-mismatch).
 */
export function ActionButton(props: {
  method: 'POST' | 'PUT' | 'DELETE';
  url: string;
  label: string;
  body?: unknown;
  confirm?: string;
  then?: string;
  show?: 'password';
  variant?: 'primary' | 'danger' | 'small';
  disabled?: boolean;
  of?: string;
}) {
  const attributes = attrs({
    type: 'button',
    class: `button ${props.variant ?? ''}`,
    'data-action': true,
    'data-method': props.method,
    'data-url': props.url,
    'data-body': props.body === undefined ? undefined : JSON.stringify(props.body),
    'data-confirm': props.confirm,
    'data-then': props.then,
    'data-show': props.show,
    disabled: props.disabled,
    'aria-label': props.of === undefined ? undefined : `${props.label} ${props.of}`,
  });
  return raw(`<button${attributes}>${escapeHtml(props.label)}</button>`);
}

/** A chart drawn by the client (uPlot) from `data`, with a text summary for screen readers. */
export function Chart(props: { kind: 'hourly' | 'buckets' | 'accuracy'; data: unknown; summary: string; caption: string; id: string }) {
  return (
    <figure class="chart-figure">
      <figcaption id={`${props.id}-caption`}>{props.caption}</figcaption>
      <div class="chart" id={props.id} data-chart={props.kind} data-series={JSON.stringify(props.data)} role="img" aria-label={props.summary}></div>
    </figure>
  );
}

/** A box of headline figures. */
export function Stat({ label, value, link, tone }: { label: string; value: Child; link?: string; tone?: 'warn' | 'bad' | 'ok' }) {
  const body = (
    <>
      <span class="stat-value">{value}</span>
      <span class="stat-label">{label}</span>
    </>
  );
  return <li class={`stat ${tone ?? ''}`}>{link ? <a href={link}>{body}</a> : <div>{body}</div>}</li>;
}

export const plural = (n: number, one: string, many = `${one}s`) => `${n.toLocaleString('en')} ${n === 1 ? one : many}`;
export const percent = (x: number | null | undefined) => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(1)}%`);
