/**
 * Client JSON that LabelFleet stores in jsonb columns (setting values, gold tasks' expected labels).
 * PostgreSQL refuses some values JavaScript accepts (U+0000 and lone surrogates in strings), and a
 * deeply nested document would exhaust a stack on the way in or out: those are client errors, found
 * here before any write. Iterative, so the check itself cannot overflow.
 */

export interface JsonLimits {
  /** Deepest nesting allowed; a scalar is depth 0, `[1]` depth 1. */
  maxDepth: number;
  /** Longest serialized form allowed, in characters. */
  maxLength: number;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function stringProblem(s: string): string | null {
  if (s.includes('\u0000')) return 'must not contain U+0000 (PostgreSQL cannot store it)';
  if (LONE_SURROGATE.test(s)) return 'must not contain unpaired UTF-16 surrogates';
  return null;
}

/** Describes what makes `value` unstorable as jsonb, or null when it is fine. */
export function jsonValueProblem(value: unknown, limits: JsonLimits): string | null {
  const stack: { v: unknown; depth: number }[] = [{ v: value, depth: 0 }];
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (v === null || typeof v === 'boolean') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return 'numbers must be finite';
      continue;
    }
    if (typeof v === 'string') {
      const p = stringProblem(v);
      if (p) return `strings ${p}`;
      continue;
    }
    if (typeof v !== 'object') return `${typeof v} is not a JSON value`;
    if (depth + 1 > limits.maxDepth) return `must not be nested more than ${limits.maxDepth} levels deep`;
    if (Array.isArray(v)) {
      for (const item of v) stack.push({ v: item, depth: depth + 1 });
    } else {
      for (const [k, item] of Object.entries(v)) {
        const p = stringProblem(k);
        if (p) return `object keys ${p}`;
        stack.push({ v: item, depth: depth + 1 });
      }
    }
  }
  const length = JSON.stringify(value)?.length ?? 0;
  if (length > limits.maxLength) return `must be at most ${limits.maxLength} characters as JSON (got ${length})`;
  return null;
}
