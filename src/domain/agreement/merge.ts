/**
 * Merging one item's answers for one control into a consensus answer, for the kinds that merge
 * item by item (numbers, regions, free text). Choices merge across the whole workflow (Dawid–Skene
 * learns from every item), in consensus.ts. Pure (no I/O).
 *
 * An "answer" is the list of Label Studio result values one annotation gave the control
 * (`[]`: no answer, e.g. a skipped task). Every merge returns the merged values (`[]`: the
 * consensus is "no answer") and a confidence in 0..1, the mean similarity of the item's answers to
 * the merged one under the control's comparison (src/domain/gold-scoring.ts: scoreControl). With
 * plain votes that is the winner's vote share, which is why it is used throughout.
 */
import { boxes, boxIoU, clamp01, matchRegions, num, scoreControl, spanIoU, spans, strings, type Box, type Obj, type Region } from '../gold-scoring.ts';
import type { ControlSpec } from './controls.ts';

export interface Merged {
  values: Obj[];
  confidence: number;
}

type Span = { start: number; end: number };
/** Parsed regions per answer array: alpha compares each answer with thousands of others. */
const regionCache = new WeakMap<Obj[], Region<Box>[] | Region<Span>[]>();
function regionsOf(spec: ControlSpec, values: Obj[]) {
  let r = regionCache.get(values);
  if (!r) regionCache.set(values, (r = spec.kind === 'boxes' ? boxes(values, spec.type) : spans(values, spec.type)));
  return r;
}

/**
 * Similarity of an answer to the merged one (1 when both are empty), by the gold scorer's rule for
 * the control type (scoreControl); regions go straight to its matchRegions with the parsed
 * regions cached per answer, which is the same computation without re-parsing.
 */
export function similarity(spec: ControlSpec, merged: Obj[], answer: Obj[]): number {
  if (!merged.length && !answer.length) return 1;
  if (!merged.length || !answer.length) return 0;
  if (spec.kind === 'single-choice') {
    // Jaccard of two one-element sets, without building them.
    const a = strings(merged[0]!.choices);
    const b = strings(answer[0]!.choices);
    if (a.length <= 1 && b.length <= 1) return a[0] === b[0] ? 1 : 0;
  }
  if (spec.kind === 'boxes') {
    return clamp01(matchRegions(regionsOf(spec, merged) as Region<Box>[], regionsOf(spec, answer) as Region<Box>[], boxIoU));
  }
  if (spec.kind === 'spans') {
    return clamp01(matchRegions(regionsOf(spec, merged) as Region<Span>[], regionsOf(spec, answer) as Region<Span>[], spanIoU));
  }
  const ratingScale = spec.maxRating ? { [spec.fromName]: spec.maxRating } : undefined;
  return clamp01(scoreControl(spec.type, spec.fromName, merged, answer, { ratingScale }));
}

const meanSimilarity = (spec: ControlSpec, merged: Obj[], answers: readonly Obj[][]) =>
  answers.length ? answers.reduce((s, a) => s + similarity(spec, merged, a), 0) / answers.length : 0;

/** More than half of `m` answers (a strict majority). */
export const isMajority = (count: number, m: number) => count * 2 > m;

/**
 * The median; for an even count the mean of the two middle values, or with `lower` the lower one
 * (a value someone gave: a rating must stay on its integer scale).
 */
export function median(xs: readonly number[], lower = false): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  if (s.length % 2) return s[mid]!;
  return lower ? s[mid - 1]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Rating and number controls: the median of the given values (ratings: the lower median), kept
 * when a majority of the answers hold a value.
 */
export function mergeNumbers(spec: ControlSpec, answers: readonly Obj[][]): Merged {
  const key = spec.type === 'rating' ? 'rating' : 'number';
  const xs = answers.flatMap((a) => {
    const x = num(a[0]?.[key]);
    return x === undefined ? [] : [x];
  });
  const values = isMajority(xs.length, answers.length) ? [{ [key]: median(xs, key === 'rating') }] : [];
  return { values, confidence: meanSimilarity(spec, values, answers) };
}

/**
 * Text areas and any other control: the medoid, the answer with the highest total similarity to
 * the others (the first such in answer order). An empty answer can win: then most said nothing.
 */
export function mergeMedoid(spec: ControlSpec, answers: readonly Obj[][]): Merged {
  let best = 0;
  let bestScore = -1;
  answers.forEach((a, i) => {
    let s = 0;
    answers.forEach((b, j) => {
      if (i !== j) s += similarity(spec, a, b);
    });
    if (s > bestScore) [best, bestScore] = [i, s];
  });
  const values = answers[best] ?? [];
  return { values, confidence: meanSimilarity(spec, values, answers) };
}

/** IoU a cluster needs to join two regions (the PASCAL VOC / COCO AP@0.5 match criterion). */
export const REGION_MATCH_IOU = 0.5;

interface Member {
  answer: number;
  region: Region<Box> | Region<{ start: number; end: number }>;
  value: Obj;
}

/**
 * Boxes and spans: regions of different annotators are clustered (greedily by highest IoU, only
 * with equal labels and IoU ≥ `threshold`, at most one region per annotator in a cluster); a
 * cluster is kept when a majority of the item's answers have a region in it, and becomes one
 * region with the members' mean coordinates (box x, y, width, height, rotation; span start and
 * end, rounded to whole characters) and their label. `text`, when given, is the object's text, so
 * a merged span's `text` is its exact substring; without it, a member's text is kept when its
 * offsets equal the merged ones, else the field is left out.
 */
export function mergeRegions(
  spec: ControlSpec,
  answers: readonly Obj[][],
  opts: { threshold?: number; text?: string } = {},
): Merged {
  const threshold = opts.threshold ?? REGION_MATCH_IOU;
  const isBox = spec.kind === 'boxes';
  const members: Member[] = [];
  answers.forEach((values, answer) => {
    for (const value of values) {
      const [region] = isBox ? boxes([value], spec.type) : spans([value], spec.type);
      if (region) members.push({ answer, region, value });
    }
  });
  const overlap = (a: Member, b: Member) =>
    isBox
      ? boxIoU(a.region.geometry as Box, b.region.geometry as Box)
      : spanIoU(a.region.geometry as { start: number; end: number }, b.region.geometry as { start: number; end: number });

  const edges: { i: number; j: number; o: number }[] = [];
  for (let i = 0; i < members.length; i++) {
    for (let j = i + 1; j < members.length; j++) {
      const a = members[i]!;
      const b = members[j]!;
      if (a.answer === b.answer || a.region.label !== b.region.label) continue;
      const o = overlap(a, b);
      if (o >= threshold && o > 0) edges.push({ i, j, o });
    }
  }
  edges.sort((p, q) => q.o - p.o || p.i - q.i || p.j - q.j);
  const parent = members.map((_, i) => i);
  const answersOf = members.map((m) => new Set([m.answer]));
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  for (const { i, j } of edges) {
    const a = find(i);
    const b = find(j);
    if (a === b || [...answersOf[b]!].some((x) => answersOf[a]!.has(x))) continue;
    parent[b] = a;
    for (const x of answersOf[b]!) answersOf[a]!.add(x);
  }
  const clusters = new Map<number, Member[]>();
  members.forEach((m, i) => {
    const root = find(i);
    clusters.set(root, [...(clusters.get(root) ?? []), m]);
  });

  const values: Obj[] = [];
  for (const cluster of clusters.values()) {
    if (!isMajority(cluster.length, answers.length)) continue;
    values.push(isBox ? mergeBox(cluster) : mergeSpan(cluster, opts.text));
  }
  return { values, confidence: meanSimilarity(spec, values, answers) };
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

function mergeBox(cluster: Member[]): Obj {
  const geo = cluster.map((m) => m.region.geometry as Box);
  const merged: Obj = {
    ...cluster[0]!.value,
    x: mean(geo.map((g) => g.x)),
    y: mean(geo.map((g) => g.y)),
    width: mean(geo.map((g) => g.width)),
    height: mean(geo.map((g) => g.height)),
  };
  const rotations = cluster.map((m) => num(m.value.rotation) ?? 0);
  if (rotations.some((r) => r !== 0)) merged.rotation = mean(rotations);
  return merged;
}

function mergeSpan(cluster: Member[], text?: string): Obj {
  const geo = cluster.map((m) => m.region.geometry as { start: number; end: number });
  const start = Math.round(mean(geo.map((g) => g.start)));
  const end = Math.round(mean(geo.map((g) => g.end)));
  const merged: Obj = { ...cluster[0]!.value, start, end };
  const same = cluster.find((m, i) => geo[i]!.start === start && geo[i]!.end === end && typeof m.value.text === 'string');
  if (text !== undefined) merged.text = text.slice(start, end);
  else if (same) merged.text = same.value.text;
  else delete merged.text;
  return merged;
}
