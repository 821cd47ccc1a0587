/**
 * Which S3 keys a presigned URL addresses byte-for-byte. Pure (no I/O).
 *
 * A batch task is a presigned GET URL that a browser loads (README "Batches"). The URL's path is
 * the key with every byte outside RFC 3986's unreserved set percent-encoded (the AWS SDK's
 * presigner), so spaces, `+`, `%`, `#`, `?`, backslashes, non-ASCII text, empty segments (`a//b`,
 * a leading `/`) and trailing dots all arrive unchanged. Two classes do not:
 *
 * - `dot_segment`: a path segment that is exactly `.` or `..`. `.` is unreserved, so it is not
 *   encoded, and every URL parser (WHATWG URL in browsers and Node's fetch; RFC 3986 §5.2.4
 *   remove_dot_segments) resolves it: `cat/a/../b.png` is fetched as `cat/b.png` — another object,
 *   or a signature mismatch on real S3. Measured against moto in test/integration/s3-catalog.test.ts.
 * - `control_character`: C0 controls (tab, newline, carriage return, …), DEL and C1 controls.
 *   ListObjectsV2 answers in XML, where most C0 controls are not characters at all and a carriage
 *   return is read back as a newline (XML end-of-line handling), so the key we list is not the key
 *   stored; some S3-compatible stores do not serve them (moto answers 404 for a newline).
 *   U+FFFE and U+FFFF, which are not XML characters either, count here too.
 *
 * Such keys are skipped by the catalog and refused for gold tasks.
 */

export type KeyProblem = 'dot_segment' | 'control_character';

/** What each problem means, for error details and reports. */
export const KEY_PROBLEM_MESSAGES: Record<KeyProblem, string> = {
  dot_segment: 'has a "." or ".." path segment, which URLs resolve away, so its presigned URL would load another object',
  control_character: 'has a control character, which S3 listings (XML) and URLs do not carry byte-for-byte',
};

const CONTROL = /[\p{Cc}\uFFFE\uFFFF]/u;

/** The reason `key` cannot be sent to Label Studio as a presigned URL, or null when it can. */
export function keyProblem(key: string): KeyProblem | null {
  if (key.split('/').some((segment) => segment === '.' || segment === '..')) return 'dot_segment';
  if (CONTROL.test(key)) return 'control_character';
  return null;
}
