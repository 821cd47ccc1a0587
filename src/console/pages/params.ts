/**
 * Lenient query parameters for pages: a URL a person edited by hand shows the nearest sensible
 * page instead of an error (the API, by contrast, answers 400).
 */
import { MAX_INT } from '../../api/common.ts';

/**
 * The page's query parameters (first value of each) without NUL characters, which PostgreSQL text
 * cannot hold: a hand-edited `?q=%00` shows the page as if they were not there, not an error.
 */
export function pageQuery(query: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(query)) out[k] = v.includes('\0') ? v.replaceAll('\0', '') : v;
  return out;
}

/** A positive 32-bit integer, or undefined. */
export function intParam(v: string | undefined): number | undefined {
  if (!v || !/^[1-9][0-9]{0,9}$/.test(v)) return undefined;
  const n = Number(v);
  return n <= MAX_INT ? n : undefined;
}

/** One of `allowed`, or undefined. */
export function enumParam<T extends string>(v: string | undefined, allowed: readonly T[]): T | undefined {
  return (allowed as readonly string[]).includes(v ?? '') ? (v as T) : undefined;
}

/** `offset` (≥ 0, a multiple of `limit` is not required) and a fixed page size. */
export function pageParams(query: Record<string, string>, limit: number): { limit: number; offset: number } {
  const raw = query.offset;
  const offset = raw && /^\d{1,10}$/.test(raw) ? Math.min(Number(raw), MAX_INT) : 0;
  return { limit, offset };
}
