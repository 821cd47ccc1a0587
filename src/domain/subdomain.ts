/**
 * Subdomains: each annotator's Label Studio answers at `<subdomain>.<FLEET_DOMAIN>`, so the label
 * derived from the annotator's name must be a valid DNS label (RFC 1123: a–z, 0–9 and inner
 * hyphens, 1–63 characters). Pure functions; the uniqueness check against the database lives in
 * src/workflows/annotators.ts.
 */

export const SUBDOMAIN_MAX_LENGTH = 63;
export const SUBDOMAIN_FALLBACK = 'annotator';
/** The same rule as the CHECK constraint on annotators.subdomain. */
export const SUBDOMAIN_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Letters that Unicode decomposition does not reduce to ASCII. */
const FOLD: Record<string, string> = {
  ß: 'ss',
  ẞ: 'ss',
  æ: 'ae',
  Æ: 'ae',
  œ: 'oe',
  Œ: 'oe',
  ø: 'o',
  Ø: 'o',
  đ: 'd',
  Đ: 'd',
  ð: 'd',
  Ð: 'd',
  þ: 'th',
  Þ: 'th',
  ł: 'l',
  Ł: 'l',
  ı: 'i',
};

const trimHyphens = (s: string) => s.replace(/^-+|-+$/g, '');

/**
 * The base label for a name: ASCII-folded (é → e, ß → ss), lower-case, every run of other
 * characters turned into one hyphen, no leading or trailing hyphen, at most 63 characters, and
 * never empty ("annotator" when nothing usable is left).
 */
export function subdomainBase(name: string): string {
  const folded = name
    .replace(/[ßẞæÆœŒøØđĐðÐþÞłŁı]/g, (ch) => FOLD[ch] ?? ch)
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase();
  const label = trimHyphens(trimHyphens(folded.replace(/[^a-z0-9]+/g, '-')).slice(0, SUBDOMAIN_MAX_LENGTH));
  return label || SUBDOMAIN_FALLBACK;
}

/**
 * The n-th candidate for a base label: the base itself for n = 1, then `base-2`, `base-3`, …,
 * shortening the base so the result still fits in 63 characters.
 */
export function subdomainCandidate(base: string, n: number): string {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`candidate number must be a positive integer, got ${n}`);
  if (n === 1) return base;
  const suffix = `-${n}`;
  const head = trimHyphens(base.slice(0, SUBDOMAIN_MAX_LENGTH - suffix.length)) || SUBDOMAIN_FALLBACK;
  return `${head}${suffix}`;
}

/** Candidates n = from … from+count-1, in order. */
export function subdomainCandidates(base: string, from: number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => subdomainCandidate(base, from + i));
}

/** The first candidate for `name` that is not in `taken`. */
export function pickSubdomain(name: string, taken: ReadonlySet<string>): string {
  const base = subdomainBase(name);
  for (let n = 1; ; n++) {
    const candidate = subdomainCandidate(base, n);
    if (!taken.has(candidate)) return candidate;
  }
}

export const isValidSubdomain = (label: string) => SUBDOMAIN_PATTERN.test(label);
