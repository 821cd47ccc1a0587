/**
 * Everything LabelFleet sends to Label Studio is built here, within what Label Studio accepts, and
 * cut only between whole characters (extended grapheme clusters, UAX #29, via Intl.Segmenter), so
 * an emoji, a flag, a ZWJ family, a letter with its combining marks or an Arabic/Hebrew letter with
 * its vowel marks is either kept whole or left out. Pure (no I/O).
 *
 * What Label Studio 1.23.2 checks (read in its source, label_studio/projects/models.py,
 * core/settings/base.py, and Django REST framework 3.17's CharField, which every text field of its
 * serializers is):
 * - Project `title`: 3–50 characters, counted by Python's `len()` — Unicode code points, not UTF-16
 *   units (an emoji outside the BMP is 1, not 2) — after trimming surrounding whitespace
 *   (PROJECT_TITLE_MIN_LEN / PROJECT_TITLE_MAX_LEN, MinLength/MaxLengthValidator).
 * - Every text field (title, description, label_config): no U+0000 ("Null characters are not
 *   allowed") and no surrogate code point ("Surrogate characters are not allowed: U+D83D") — the
 *   latter is what a JavaScript `slice` through a surrogate pair produces once JSON-encoded.
 *   `description` and `label_config` have no length limit (TextField).
 * - Task data is stored as JSON in the instance's PostgreSQL, which refuses U+0000 in strings.
 * - A request body is read whole (DATA_UPLOAD_MAX_MEMORY_SIZE, default 250 MB): imports are sent in
 *   chunks of at most IMPORT_LIMITS.maxBytes.
 */
import { projectKey } from '../domain/task-data.ts';
import type { LsImportTask } from './client.ts';

/** Label Studio's project title length, in code points (see the module comment). */
export const TITLE_LIMITS = { min: 3, max: 50 } as const;

/** One import request: well below Label Studio's 250 MB body limit, and at most this many tasks. */
export const IMPORT_LIMITS = { maxBytes: 50 * 1024 * 1024, maxTasks: 1000 } as const;

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** Length as Label Studio (Python `len`) counts it: code points. */
export function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * Text Label Studio accepts in any field: lone surrogates become U+FFFD (as String#toWellFormed does) and
 * U+0000 is removed. Strings read from PostgreSQL never hold either; this is the last guard.
 */
export function lsText(s: string): string {
  return s.replace(LONE_SURROGATE, '\uFFFD').replaceAll('\u0000', '');
}


/**
 * The longest prefix of `s` made of whole grapheme clusters whose length in code points, plus
 * `ellipsis` when something was cut, is at most `max`. `s` itself when it fits. Trailing whitespace
 * before the ellipsis is dropped. A single cluster longer than the room left (e.g. a letter with
 * hundreds of combining marks) is left out whole.
 */
export function cutGraphemes(s: string, max: number, ellipsis = '…'): string {
  if (codePoints(s) <= max) return s;
  const room = max - codePoints(ellipsis);
  let kept = '';
  let used = 0;
  for (const { segment } of graphemes.segment(s)) {
    const n = codePoints(segment);
    if (used + n > room) break;
    kept += segment;
    used += n;
  }
  return `${kept.trimEnd()}${ellipsis}`;
}

/** A single line: control characters (tabs, newlines, U+0000, …) and runs of whitespace become one space. */
const oneLine = (s: string) => s.replace(/[\p{Cc}\s]+/gu, ' ').trim();

/**
 * The batch project's title, `#<assignment id> · <workflow name>`, on one line, within 3–50 code
 * points, cut with "…" between whole characters. The `#<id> ·` prefix is never cut (it is how a
 * crashed provisioning finds the project again).
 */
export function projectTitle(assignmentId: number, workflowName: string): string {
  const title = cutGraphemes(`#${assignmentId} · ${oneLine(lsText(workflowName))}`.trimEnd(), TITLE_LIMITS.max);
  return title.padEnd(TITLE_LIMITS.min, '.');
}

/** The batch project's description: the workflow, the task count, and projectKey on its own line. */
export function projectDescription(assignmentId: number, workflowName: string, taskCount: number): string {
  return lsText(`LabelFleet batch ${assignmentId} of workflow "${workflowName}" (${taskCount} tasks).\n${projectKey(assignmentId)}`);
}

/**
 * The label config as sent. XML cannot be cut or rewritten without changing what annotators
 * label, so a config Label Studio would refuse (U+0000, a lone surrogate) is an error here.
 * @throws Error naming the problem.
 */
export function labelConfig(xml: string): string {
  if (xml.includes('\u0000')) throw new Error('the labeling config contains U+0000, which Label Studio refuses');
  if (lsText(xml) !== xml) throw new Error('the labeling config contains a lone surrogate, which Label Studio refuses');
  return xml;
}

/** The body of POST /api/projects/ for a batch. @throws Error when the config cannot be sent (labelConfig). */
export function projectPayload(p: { assignmentId: number; workflowName: string; taskCount: number; configXml: string }) {
  return {
    title: projectTitle(p.assignmentId, p.workflowName),
    description: projectDescription(p.assignmentId, p.workflowName, p.taskCount),
    label_config: labelConfig(p.configXml),
  };
}

/** Every string inside a JSON value passed through lsText (object keys included). */
export function lsJson<T>(value: T): T {
  if (typeof value === 'string') return lsText(value) as T;
  if (Array.isArray(value)) return value.map(lsJson) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [lsText(k), lsJson(v)])) as T;
  }
  return value;
}

/**
 * One task to import: `{data: {<dataKey>: <image URL>}, meta: {labelfleet: {task}}}`, plus the
 * upstream result as a prediction when there is one (see src/domain/task-data.ts).
 */
export function importTask(t: { dataKey: string; imageUrl: string; fleetTaskId: number; prediction?: Record<string, unknown>[] }): LsImportTask {
  const entry: LsImportTask = { data: { [lsText(t.dataKey)]: lsText(t.imageUrl) }, meta: { labelfleet: { task: t.fleetTaskId } } };
  if (t.prediction?.length) entry.predictions = [{ model_version: 'labelfleet-upstream', result: lsJson(t.prediction) }];
  return entry;
}

/**
 * Splits an import into requests of at most `limits.maxTasks` tasks and `limits.maxBytes` bytes
 * of JSON, keeping the order (Label Studio answers the ids in the order sent).
 * @throws Error when one task alone is over maxBytes (it names the task's position).
 */
export function importChunks(tasks: LsImportTask[], limits: { maxBytes: number; maxTasks: number } = IMPORT_LIMITS): LsImportTask[][] {
  const chunks: LsImportTask[][] = [];
  let current: LsImportTask[] = [];
  let bytes = 2; // the list's brackets
  tasks.forEach((task, i) => {
    const size = Buffer.byteLength(JSON.stringify(task), 'utf8') + 1; // and its comma
    if (size + 2 > limits.maxBytes) {
      throw new Error(`task ${i + 1} of the import is ${size} bytes of JSON, over the ${limits.maxBytes}-byte limit of one Label Studio import`);
    }
    if (current.length && (current.length >= limits.maxTasks || bytes + size > limits.maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 2;
    }
    current.push(task);
    bytes += size;
  });
  if (current.length) chunks.push(current);
  return chunks;
}
