/**
 * JSON already serialized, tagged with the type of the value it encodes (a compile-time tag only:
 * at run time it is a plain string). Lets a response built as text (by PostgreSQL, or kept from an
 * earlier request) be checked against the route's schema like a value passed to c.json.
 */
export type JsonText<T> = string & { readonly __jsonOf?: T };

/**
 * The JSON array of items already serialized, as one flat string. `[${items.join(',')}]` makes a
 * rope that is copied flat once more when the response measures and sends it: for a page of 100
 * annotators 45 kB more to allocate and copy per request.
 */
export function jsonArray<T>(items: readonly JsonText<T>[]): JsonText<T[]> {
  const n = items.length;
  if (n === 0) return '[]';
  const parts = items.slice();
  parts[0] = `[${parts[0]}`;
  parts[n - 1] = `${parts[n - 1]}]`;
  return parts.join(',');
}
