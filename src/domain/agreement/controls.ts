/**
 * The controls of a labeling config as agreement and consensus see them: each Label Studio control
 * (a result's `from_name`) and how its answers are compared, merged and measured. Pure (no I/O).
 *
 * Label Studio names a result's `type` after its control tag in lower case (`<Choices>` →
 * "choices", `<RectangleLabels>` → "rectanglelabels"), so the type is known from the config alone.
 */
import { resultsByControl, type Obj } from '../gold-scoring.ts';
import type { ParsedLabelingConfig } from '../labeling-config.ts';

/**
 * How a control's answers are treated:
 *  - single-choice: one category (or none); nominal alpha, Cohen's kappa, Dawid–Skene / majority.
 *  - multi-choice: a set of categories (Choices choice="multiple", Taxonomy paths); each label is
 *    a binary nominal variable (chosen or not).
 *  - rating, number: a number; interval alpha, median.
 *  - boxes (rectangles, ellipses), spans (text labels): regions matched by IoU with equal labels;
 *    clusters kept by majority.
 *  - text (TextArea) and other: whole answers compared by similarity; the medoid answer.
 */
export type ControlKind = 'single-choice' | 'multi-choice' | 'rating' | 'number' | 'boxes' | 'spans' | 'text' | 'other';

export interface ControlSpec {
  fromName: string;
  /** The object tag it labels (`to_name` of the merged result). */
  toName?: string;
  /** Label Studio result type, lower case. */
  type: string;
  kind: ControlKind;
  /** Rating controls: the top of the scale (maxRating, default 5). */
  maxRating?: number;
}

const BOX_TYPES = new Set(['rectanglelabels', 'rectangle', 'ellipselabels', 'ellipse']);
const SPAN_TYPES = new Set(['labels', 'hypertextlabels']);

/** The kind of a result type; `multiple` says a choices control allows several choices. */
export function kindOf(type: string, multiple = false): ControlKind {
  if (type === 'choices') return multiple ? 'multi-choice' : 'single-choice';
  if (type === 'taxonomy') return 'multi-choice';
  if (type === 'rating' || type === 'number') return type;
  if (BOX_TYPES.has(type)) return 'boxes';
  if (SPAN_TYPES.has(type)) return 'spans';
  if (type === 'textarea') return 'text';
  return 'other';
}

/** Every control tag of a parsed config (tags with name and toName that produce results). */
export function controlsFromConfig(config: ParsedLabelingConfig): ControlSpec[] {
  const specs: ControlSpec[] = [];
  for (const [fromName, control] of config.controls) {
    const element = config.elements.find((e) => e.attrs.get('name') === fromName);
    const type = control.tag.toLowerCase();
    const multiple = element?.attrs.get('choice') === 'multiple';
    const spec: ControlSpec = { fromName, toName: control.toNames[0], type, kind: kindOf(type, multiple) };
    if (type === 'rating') {
      const max = Number(element?.attrs.get('maxRating') ?? 5);
      spec.maxRating = Number.isInteger(max) && max >= 2 ? max : 5;
    }
    specs.push(spec);
  }
  return specs;
}

/**
 * Controls inferred from result arrays when no config is at hand: each from_name with the type it
 * was answered with; choices are multi-choice when any answer holds more than one choice.
 */
export function controlsFromResults(results: Iterable<unknown>): ControlSpec[] {
  const seen = new Map<string, { type: string; toName?: string; multiple: boolean }>();
  for (const result of results) {
    if (!Array.isArray(result)) continue;
    for (const r of result as Obj[]) {
      if (typeof r?.from_name !== 'string' || typeof r.type !== 'string') continue;
      const entry = seen.get(r.from_name) ?? {
        type: r.type.toLowerCase(),
        toName: typeof r.to_name === 'string' ? r.to_name : undefined,
        multiple: false,
      };
      const value = r.value as Obj | undefined;
      if (Array.isArray(value?.choices) && value.choices.length > 1) entry.multiple = true;
      seen.set(r.from_name, entry);
    }
  }
  return [...seen].map(([fromName, e]) => ({ fromName, toName: e.toName, type: e.type, kind: kindOf(e.type, e.multiple) }));
}

/**
 * One annotation's result values for a control, from its result grouped by resultsByControl
 * ([] when it has none, or answered the control with another type, e.g. under a changed config).
 */
export function controlValues(byControl: ReturnType<typeof resultsByControl>, spec: ControlSpec): Obj[] {
  const entry = byControl.get(spec.fromName);
  return entry && entry.type === spec.type ? entry.values : [];
}
