/**
 * Label Studio labeling configs: the XML rules LabelFleet enforces before it stores a config, and
 * the check that a gold task's expected result fits its config. Pure functions, no I/O.
 *
 * Safety: a config is never handed to an entity-expanding parser. Any markup declaration
 * (`<!DOCTYPE`, `<!ENTITY`, `<!ELEMENT`, ...) is refused outright, so neither internal entity
 * expansion ("billion laughs") nor external entities (file/URL reads) can happen; the only entity
 * references accepted are XML's five predefined ones and character references, decoded here.
 *
 * Rules (the same ones Label Studio applies when a project is created, so a config that passes here
 * does not fail later inside an annotator's instance):
 *  - at most 50 000 characters, well-formed XML 1.0 with exactly one root element;
 *  - the root element is `<View>`;
 *  - at least one Label Studio object tag (Image, Text, Audio, Video, ...; case-insensitive, as
 *    Label Studio's editor matches tag names);
 *  - `name` attributes are unique; every name listed in a `toName` attribute names a tag.
 */
import { XMLValidator } from 'fast-xml-parser';

export const MAX_CONFIG_XML_LENGTH = 50_000;

/**
 * Tags Label Studio's editor registers as object tags (the data being labeled), from
 * web/libs/editor/src/tags/object in HumanSignal/label-studio.
 */
export const OBJECT_TAGS = [
  'Audio',
  'AudioPlus',
  'Chat',
  'HyperText',
  'Image',
  'List',
  'Object3D',
  'Paragraphs',
  'Pdf',
  'Ranker',
  'Table',
  'Text',
  'TimeSeries',
  'Video',
] as const;
const OBJECT_TAG_SET = new Set(OBJECT_TAGS.map((t) => t.toLowerCase()));

/** Tags that carry `toName` but produce no results (Label Studio's _NOT_CONTROL_TAGS). */
const NOT_CONTROL_TAGS = new Set(['filter']);

export interface ConfigElement {
  tag: string;
  /** Attribute values with entity and character references decoded. */
  attrs: Map<string, string>;
  depth: number;
}

export interface ParsedLabelingConfig {
  root: string;
  elements: ConfigElement[];
  /** Object tags (Image, Text, ...) in document order. */
  objects: { tag: string; name: string | undefined }[];
  /** Control tags (those with name and toName) by name: what a result's from_name refers to. */
  controls: Map<string, { tag: string; toNames: string[] }>;
  names: Set<string>;
}

export interface ConfigError {
  /** Says what is wrong, without the "configXml: " prefix. */
  message: string;
  line?: number;
  column?: number;
}

export type ConfigCheck = { ok: true; config: ParsedLabelingConfig } | { ok: false; error: ConfigError };

const PREDEFINED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

export const DECLARATION_MESSAGE =
  'DOCTYPE and ENTITY declarations are not allowed: they enable entity-expansion and external-entity ' +
  'attacks, and Label Studio configs never need them';

// Characters XML 1.0 forbids anywhere in a document (also the ones PostgreSQL cannot store), and
// UTF-16 surrogates that do not form a pair (they would be stored as U+FFFD).
const ILLEGAL_CHAR =
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

class XmlError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

/** Checks the entity references in text or an attribute value and returns it decoded. */
function decodeReferences(segment: string, offset: number): string {
  if (!segment.includes('&')) return segment;
  return segment.replace(/&([^;&<\s]*)(;?)/g, (whole, name: string, semi: string, at: number) => {
    if (!semi) throw new XmlError("'&' must be escaped as &amp; (or start an entity reference like &lt;)", offset + at);
    if (name in PREDEFINED_ENTITIES) return PREDEFINED_ENTITIES[name]!;
    const m = /^#(?:([0-9]{1,7})|x([0-9a-fA-F]{1,6}))$/.exec(name);
    if (m) {
      const cp = m[1] !== undefined ? Number(m[1]) : parseInt(m[2]!, 16);
      if (!isXmlChar(cp)) throw new XmlError(`character reference ${whole} is not a legal XML character`, offset + at);
      return String.fromCodePoint(cp);
    }
    throw new XmlError(
      `undefined entity ${whole} (only &lt; &gt; &amp; &quot; &apos; and character references like &#233; are allowed)`,
      offset + at,
    );
  });
}

const ATTRIBUTE = /([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;

/**
 * One pass over the document: refuses declarations; checks nesting, references, attribute values,
 * comments, the single root and stray text; collects every start tag. Name and attribute syntax are
 * left to fast-xml-parser's XMLValidator (run afterwards). Iterative, so deep nesting is fine.
 */
function scan(xml: string): ConfigElement[] {
  const elements: ConfigElement[] = [];
  const open: { tag: string; offset: number }[] = [];
  const n = xml.length;
  let i = 0;
  let roots = 0;
  let rootClosed = false;

  const text = (from: number, to: number) => {
    const segment = xml.slice(from, to);
    if (open.length === 0 && /\S/.test(segment)) {
      const at = from + segment.search(/\S/);
      throw new XmlError(rootClosed ? 'text after the root element' : 'text before the root element', at);
    }
    const cdataEnd = segment.indexOf(']]>');
    if (cdataEnd >= 0) throw new XmlError("']]>' is not allowed in text", from + cdataEnd);
    decodeReferences(segment, from);
  };

  while (i < n) {
    const lt = xml.indexOf('<', i);
    text(i, lt < 0 ? n : lt);
    if (lt < 0) break;
    i = lt;

    if (xml.startsWith('<!--', i)) {
      const end = xml.indexOf('-->', i + 4);
      if (end < 0) throw new XmlError('unclosed comment', i);
      const body = xml.slice(i + 4, end);
      if (body.includes('--') || body.endsWith('-')) throw new XmlError("'--' is not allowed inside a comment", i);
      i = end + 3;
      continue;
    }
    if (xml.startsWith('<![CDATA[', i)) {
      if (open.length === 0) throw new XmlError('CDATA section outside the root element', i);
      const end = xml.indexOf(']]>', i + 9);
      if (end < 0) throw new XmlError('unclosed CDATA section', i);
      i = end + 3;
      continue;
    }
    if (xml.startsWith('<!', i)) throw new XmlError(DECLARATION_MESSAGE, i);
    if (xml.startsWith('<?', i)) {
      const end = xml.indexOf('?>', i + 2);
      if (end < 0) throw new XmlError('unclosed processing instruction', i);
      const target = /^<\?([^\s?]*)/.exec(xml.slice(i, end + 2))?.[1] ?? '';
      if (target === '') throw new XmlError('processing instruction without a target', i);
      if (target.toLowerCase() === 'xml' && i !== 0) {
        throw new XmlError('the XML declaration (<?xml ...?>) is only allowed at the very start', i);
      }
      i = end + 2;
      continue;
    }

    // A start or end tag: find its '>' outside quoted attribute values.
    const closing = xml[i + 1] === '/';
    const start = i + (closing ? 2 : 1);
    let quote: string | null = null;
    let k = start;
    for (; k < n; k++) {
      const c = xml[k];
      if (quote) {
        if (c === quote) quote = null;
        else if (c === '<') throw new XmlError("'<' is not allowed in an attribute value (write &lt;)", k);
      } else if (c === '"' || c === "'") quote = c;
      else if (c === '>') break;
      else if (c === '<') throw new XmlError("unexpected '<' inside a tag", k);
    }
    if (k >= n) throw new XmlError('unclosed tag', i);
    const inner = xml.slice(start, k);
    const tag = /^[^\s/>]*/.exec(inner)![0];
    if (tag === '') throw new XmlError('tag without a name', i);

    if (closing) {
      const top = open.pop();
      if (!top) throw new XmlError(`closing tag </${tag}> has no matching start tag`, i);
      if (top.tag !== tag) {
        const at = lineColumn(xml, top.offset);
        throw new XmlError(`closing tag </${tag}> does not match <${top.tag}> (opened at line ${at.line}, column ${at.column})`, i);
      }
      if (open.length === 0) rootClosed = true;
    } else {
      if (open.length === 0 && ++roots > 1) throw new XmlError(`more than one root element (second: <${tag}>)`, i);
      const attrs = new Map<string, string>();
      const attrOffset = start + tag.length;
      for (const m of inner.slice(tag.length).matchAll(ATTRIBUTE)) {
        const raw = m[2] ?? m[3] ?? '';
        const valueOffset = attrOffset + m.index! + m[0].length - raw.length - 1;
        attrs.set(m[1]!, decodeReferences(raw, valueOffset));
      }
      elements.push({ tag, attrs, depth: open.length });
      if (inner.endsWith('/')) {
        if (open.length === 0) rootClosed = true;
      } else open.push({ tag, offset: i });
    }
    i = k + 1;
  }

  if (roots === 0) throw new XmlError('no root element', 0);
  const unclosed = open.pop();
  if (unclosed) throw new XmlError(`<${unclosed.tag}> is never closed`, unclosed.offset);
  return elements;
}

const isObjectTag = (tag: string) => OBJECT_TAG_SET.has(tag.toLowerCase());

/** Validates a labeling config and returns its tags, or the first problem found. */
export function checkLabelingConfig(xml: string): ConfigCheck {
  const fail = (message: string, offset?: number): ConfigCheck => ({
    ok: false,
    error: offset === undefined ? { message } : { message, ...lineColumn(xml, offset) },
  });

  if (typeof xml !== 'string' || xml.trim() === '') return fail('must not be empty');
  if (xml.length > MAX_CONFIG_XML_LENGTH) {
    return fail(`must be at most ${MAX_CONFIG_XML_LENGTH} characters (got ${xml.length})`);
  }
  const illegal = ILLEGAL_CHAR.exec(xml);
  if (illegal) {
    const code = illegal[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    return fail(`malformed XML: character U+${code} is not allowed in XML`, illegal.index);
  }

  // Our scan first, so a declaration is refused before anything else reads the document; then
  // fast-xml-parser's validator for what the scan leaves to it (names, attribute syntax).
  let elements: ConfigElement[];
  try {
    elements = scan(xml);
  } catch (err) {
    if (!(err instanceof XmlError)) throw err;
    return fail(err.message === DECLARATION_MESSAGE ? err.message : `malformed XML: ${err.message}`, err.offset);
  }
  const verdict = XMLValidator.validate(xml, { allowBooleanAttributes: false });
  if (verdict !== true) {
    return { ok: false, error: { message: `malformed XML: ${verdict.err.msg}`, line: verdict.err.line, column: verdict.err.col } };
  }

  const root = elements[0]!;
  if (root.tag !== 'View') return fail(`root element must be <View> (found <${root.tag}>)`);

  const objects = elements.filter((e) => isObjectTag(e.tag)).map((e) => ({ tag: e.tag, name: e.attrs.get('name') }));
  if (objects.length === 0) {
    return fail(`must contain at least one Label Studio object tag (${OBJECT_TAGS.join(', ')})`);
  }

  const names = new Set<string>();
  for (const e of elements) {
    const name = e.attrs.get('name');
    if (name === undefined) continue;
    if (names.has(name)) return fail(`name "${name}" is used by more than one tag (names must be unique)`);
    names.add(name);
  }

  const controls = new Map<string, { tag: string; toNames: string[] }>();
  for (const e of elements) {
    const toName = e.attrs.get('toName');
    if (toName === undefined) continue;
    const toNames = toName.split(',').map((s) => s.trim());
    const label = e.attrs.has('name') ? `<${e.tag} name="${e.attrs.get('name')}">` : `<${e.tag}>`;
    for (const target of toNames) {
      if (!names.has(target)) {
        return fail(`${label} has toName="${toName}", but no tag is named "${target}"`);
      }
    }
    const name = e.attrs.get('name');
    if (name !== undefined && !NOT_CONTROL_TAGS.has(e.tag.toLowerCase())) controls.set(name, { tag: e.tag, toNames });
  }

  return { ok: true, config: { root: root.tag, elements, objects, controls, names } };
}

/** The shape of a Label Studio result that the gold-task check looks at. */
export interface ExpectedLabel {
  type: string;
  from_name?: string;
  to_name?: string;
}

export interface LabelIssue {
  path: (string | number)[];
  message: string;
}

const quoteList = (items: Iterable<string>) => {
  const list = [...items].map((s) => `"${s}"`);
  return list.length ? list.join(', ') : 'none';
};

/**
 * Checks that each expected result refers to the config: from_name names one of its control tags
 * and to_name is a tag that control labels (its toName). Relation results carry no names.
 */
export function checkExpectedLabels(config: ParsedLabelingConfig, labels: readonly ExpectedLabel[]): LabelIssue[] {
  const issues: LabelIssue[] = [];
  labels.forEach((label, index) => {
    if (label.type === 'relation') return;
    if (label.from_name === undefined) return;
    const control = config.controls.get(label.from_name);
    if (!control) {
      issues.push({
        path: [index, 'from_name'],
        message: `from_name "${label.from_name}" is not a control tag of the labeling config (controls: ${quoteList(config.controls.keys())})`,
      });
      return;
    }
    if (label.to_name === undefined) return;
    for (const target of label.to_name.split(',').map((s) => s.trim())) {
      if (!control.toNames.includes(target)) {
        issues.push({
          path: [index, 'to_name'],
          message: `to_name "${target}" is not labeled by control "${label.from_name}" (its toName: ${quoteList(control.toNames)})`,
        });
        return;
      }
    }
  });
  return issues;
}
