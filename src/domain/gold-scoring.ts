/**
 * Gold-standard scoring: how close an annotator's Label Studio result is to a gold task's
 * expectedLabels. Pure (no I/O). Both sides are Label Studio result arrays
 * (`[{from_name, to_name, type, value, ...}]`).
 *
 * The score is computed per control (the `from_name` of each expected entry) and averaged over
 * the expected controls, so every control weighs the same whatever its number of regions.
 * A control the annotation leaves out scores 0; controls the annotation has but the gold does
 * not name are ignored. Each control type compares its own way:
 *
 * - choices / taxonomy: Jaccard similarity of the chosen values (single choice: 1 or 0).
 * - rectanglelabels / rectangle (and ellipselabels): regions are paired one-to-one, greedily by
 *   highest IoU, only between regions with the same label set; the control scores
 *   sum(IoU of pairs) / max(#expected, #annotated), so a missing or an extra box costs as much
 *   as a box that does not overlap at all. Coordinates are Label Studio's percentages.
 * - labels (text spans, NER): the same pairing, with the overlap of [start, end) character
 *   ranges as the IoU.
 * - textarea: texts are joined by newlines, trimmed, whitespace-collapsed and lower-cased;
 *   the score is 1 - Levenshtein distance / length of the longer text (1 when equal).
 * - rating: 1 - |annotated - expected| / (maxRating - 1), where maxRating comes from
 *   `opts.ratingScale[from_name]` (the control's maxRating) and defaults to 5.
 * - number: 1 when equal, else max(0, 1 - |annotated - expected| / max(|expected|, 1)).
 * - anything else: the values compared as sets of canonical JSON (Jaccard).
 * A result with `was_cancelled` (a skipped task) is scored by the caller as 0.
 */

export interface LsResult {
  from_name?: unknown;
  to_name?: unknown;
  type?: unknown;
  value?: unknown;
  [k: string]: unknown;
}

export interface ControlScore {
  fromName: string;
  type: string;
  score: number;
  expected: number;
  annotated: number;
}

export interface GoldScore {
  /** 0..1, the mean of the controls' scores. */
  score: number;
  controls: ControlScore[];
}

export interface ScoreOptions {
  /** maxRating per rating control (from the labeling config); default 5. */
  ratingScale?: Record<string, number>;
}

export type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
export const clamp01 = (n: number) => (Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 0);
const round = (n: number) => Math.round(n * 1e6) / 1e6;

/** Canonical JSON: object keys sorted, so equal values compare equal. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isObj(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export function jaccard<T>(a: T[], b: T[]): number {
  const sa = new Set(a);
  const sb = new Set(b);
  if (sa.size === 0 && sb.size === 0) return 1;
  let inter = 0;
  for (const x of sa) if (sb.has(x)) inter++;
  return inter / (sa.size + sb.size - inter);
}

/**
 * One value of a result as text: a string as it is, a number or boolean printed, anything else
 * (an object, null) as canonical JSON. Never calls into the value: a result is whatever an
 * annotator's Label Studio let through, and `String({"toString": 0})` throws.
 */
const asText = (x: unknown): string => (typeof x === 'string' ? x : typeof x === 'number' || typeof x === 'boolean' ? String(x) : canonical(x));

/** A value as a list of strings (Label Studio keeps choices, labels and texts in arrays; a nested array, e.g. a taxonomy path, joined by " / "). */
export function strings(v: unknown): string[] {
  if (!Array.isArray(v)) return v === undefined || v === null ? [] : [asText(v)];
  return v.map((x) => (Array.isArray(x) ? x.map(asText).join(' / ') : asText(x)));
}

/** A finite number from a number or a numeric string, else undefined. */
export const num = (v: unknown): number | undefined => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
};

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export function boxIoU(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x));
  const iy = Math.max(0, Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y));
  const inter = ix * iy;
  const union = a.width * a.height + b.width * b.height - inter;
  return union > 0 ? inter / union : 0;
}

export function spanIoU(a: { start: number; end: number }, b: { start: number; end: number }): number {
  const inter = Math.max(0, Math.min(a.end, b.end) - Math.max(a.start, b.start));
  const union = Math.max(a.end, b.end) - Math.min(a.start, b.start);
  return union > 0 ? inter / union : a.start === b.start && a.end === b.end ? 1 : 0;
}

/** A labelled region: its geometry and its label set as canonical JSON. */
export interface Region<G> {
  geometry: G;
  label: string;
}

/**
 * Greedy one-to-one pairing by highest overlap among same-label regions;
 * score = sum(overlap of pairs) / max(#expected, #annotated); both empty → 1.
 */
export function matchRegions<G>(expected: Region<G>[], annotated: Region<G>[], overlap: (a: G, b: G) => number): number {
  const n = Math.max(expected.length, annotated.length);
  if (n === 0) return 1;
  const pairs: { i: number; j: number; o: number }[] = [];
  expected.forEach((e, i) =>
    annotated.forEach((a, j) => {
      if (e.label !== a.label) return;
      const o = overlap(e.geometry, a.geometry);
      if (o > 0) pairs.push({ i, j, o });
    }),
  );
  pairs.sort((p, q) => q.o - p.o || p.i - q.i || p.j - q.j);
  const usedE = new Set<number>();
  const usedA = new Set<number>();
  let sum = 0;
  for (const p of pairs) {
    if (usedE.has(p.i) || usedA.has(p.j)) continue;
    usedE.add(p.i);
    usedA.add(p.j);
    sum += p.o;
  }
  return sum / n;
}

function labelKey(value: Obj, type: string): string {
  const labels = value[type] ?? value.labels ?? value.rectanglelabels;
  return canonical([...strings(labels)].sort());
}

/** The boxes (percent coordinates) of a control's result values. */
export function boxes(entries: Obj[], type: string): Region<Box>[] {
  return entries.flatMap((v) => {
    const x = num(v.x);
    const y = num(v.y);
    const width = num(v.width);
    const height = num(v.height);
    if (x === undefined || y === undefined || width === undefined || height === undefined) return [];
    return [{ geometry: { x, y, width, height }, label: labelKey(v, type) }];
  });
}

/** The [start, end) character spans of a control's result values. */
export function spans(entries: Obj[], type: string): Region<{ start: number; end: number }>[] {
  return entries.flatMap((v) => {
    const start = num(v.start ?? v.startOffset);
    const end = num(v.end ?? v.endOffset);
    if (start === undefined || end === undefined) return [];
    return [{ geometry: { start, end }, label: labelKey(v, type) }];
  });
}

export function normalizeText(s: string): string {
  return s.trim().replace(/\s+/g, ' ').toLowerCase();
}

/** Levenshtein distance, two rows; inputs are capped at 2000 characters by the caller. */
export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  if (!a.length) return b.length;
  if (!b.length) return a.length;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  let cur = new Array<number>(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

const MAX_TEXT = 2000;

export function textSimilarity(a: string, b: string): number {
  const x = normalizeText(a).slice(0, MAX_TEXT);
  const y = normalizeText(b).slice(0, MAX_TEXT);
  const longest = Math.max(x.length, y.length);
  return longest === 0 ? 1 : 1 - levenshtein(x, y) / longest;
}

/**
 * Similarity (≤ 1; clamp for 0..1) of one control's result values, `annotated` against `expected`,
 * by the control type's rule above. Symmetric except for `number` (relative to `expected`).
 * The agreement module (src/domain/agreement/) compares annotators with it.
 */
export function scoreControl(type: string, fromName: string, expected: Obj[], annotated: Obj[], opts: ScoreOptions): number {
  if (annotated.length === 0) return expected.length === 0 ? 1 : 0;
  switch (type) {
    case 'choices':
    case 'taxonomy': {
      const e = expected.flatMap((v) => strings(v[type]));
      const a = annotated.flatMap((v) => strings(v[type]));
      return jaccard(e, a);
    }
    case 'rectanglelabels':
    case 'rectangle':
    case 'ellipselabels':
    case 'ellipse':
      return matchRegions(boxes(expected, type), boxes(annotated, type), boxIoU);
    case 'labels':
    case 'hypertextlabels':
      return matchRegions(spans(expected, type), spans(annotated, type), spanIoU);
    case 'textarea': {
      const e = expected.flatMap((v) => strings(v.text)).join('\n');
      const a = annotated.flatMap((v) => strings(v.text)).join('\n');
      return textSimilarity(e, a);
    }
    case 'rating': {
      const e = num(expected[0]?.rating);
      const a = num(annotated[0]?.rating);
      if (e === undefined || a === undefined) return 0;
      const scale = Math.max(2, opts.ratingScale?.[fromName] ?? 5);
      return 1 - Math.abs(a - e) / (scale - 1);
    }
    case 'number': {
      const e = num(expected[0]?.number);
      const a = num(annotated[0]?.number);
      if (e === undefined || a === undefined) return 0;
      return e === a ? 1 : 1 - Math.abs(a - e) / Math.max(Math.abs(e), 1);
    }
    default:
      return jaccard(expected.map(canonical), annotated.map(canonical));
  }
}

/** A Label Studio result array grouped by control (from_name): its type and result values. */
export function resultsByControl(results: unknown): Map<string, { type: string; values: Obj[] }> {
  const out = new Map<string, { type: string; values: Obj[] }>();
  if (!Array.isArray(results)) return out;
  for (const r of results) {
    if (!isObj(r) || typeof r.from_name !== 'string') continue;
    const type = typeof r.type === 'string' ? r.type.toLowerCase() : 'unknown';
    const entry = out.get(r.from_name) ?? { type, values: [] };
    if (isObj(r.value)) entry.values.push(r.value);
    out.set(r.from_name, entry);
  }
  return out;
}

/** Scores an annotation result against a gold task's expectedLabels. */
export function scoreGold(expectedLabels: unknown, annotationResult: unknown, opts: ScoreOptions = {}): GoldScore {
  const expected = resultsByControl(expectedLabels);
  const annotated = resultsByControl(annotationResult);
  if (expected.size === 0) return { score: 0, controls: [] };
  const controls: ControlScore[] = [];
  for (const [fromName, e] of expected) {
    const a = annotated.get(fromName);
    // A control the annotator answered with another type (a changed config) does not match.
    const values = a && a.type === e.type ? a.values : [];
    controls.push({
      fromName,
      type: e.type,
      score: round(clamp01(scoreControl(e.type, fromName, e.values, values, opts))),
      expected: e.values.length,
      annotated: values.length,
    });
  }
  const score = round(clamp01(controls.reduce((s, c) => s + c.score, 0) / controls.length));
  return { score, controls };
}
