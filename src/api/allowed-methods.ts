/**
 * Which methods a path is served with, derived from the router's own route table, so a 405's
 * `Allow` can never drift from what is registered.
 *
 * In: the route table as Hono lists it (`app.routes`: `{method, path}` with `:param` segments;
 * middleware entries have method `ALL` and are ignored). Out: a function from a request path to
 * the sorted methods its route template serves (HEAD added wherever GET is), or null when no
 * template matches (a 404).
 *
 * A path is served by ONE template: where templates overlap, a literal segment beats a parameter
 * at the first position they differ (`/annotators/bulk` beats `/annotators/:id` for "bulk",
 * RFC 6570-style routers such as OpenAPI's path matching rank them the same way). So
 * `PUT /api/annotators/bulk` is a 405 naming bulk's methods, never a 400 from `/:id`.
 */

interface Template {
  segments: string[];
  /** 1 per literal segment, 0 per parameter: the rank that decides overlaps. */
  rank: number[];
  pattern: RegExp;
  methods: Set<string>;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Lexicographic comparison of two ranks: positive when `a` is more specific. */
function compareRank(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

export function allowedMethods(routes: ReadonlyArray<{ method: string; path: string }>): (path: string) => readonly string[] | null {
  const templates = new Map<string, Template>();
  for (const r of routes) {
    if (r.method === 'ALL' || r.path.includes('*')) continue;
    const segments = r.path.split('/');
    // Parameter names do not make a template different: /a/:id and /a/:name are one path.
    const key = segments.map((s) => (s.startsWith(':') ? ':' : s)).join('/');
    let t = templates.get(key);
    if (!t) {
      t = {
        segments,
        rank: segments.map((s) => (s.startsWith(':') ? 0 : 1)),
        pattern: new RegExp(`^${segments.map((s) => (s.startsWith(':') ? '[^/]+' : escape(s))).join('/')}$`),
        methods: new Set(),
      };
      templates.set(key, t);
    }
    t.methods.add(r.method.toUpperCase());
    if (r.method.toUpperCase() === 'GET') t.methods.add('HEAD');
  }
  // A path matches only templates with as many segments whose third segment (the resource under
  // /api) is the same literal or a parameter, so each request tests those few, not every template.
  const isParam = (segment: string | undefined) => segment?.startsWith(':') ?? false;
  const key = (count: number, third: string | undefined) => `${count}/${third ?? ''}`;
  const all = [...templates.values()].map((t) => ({ ...t, sorted: [...t.methods].sort() }));
  const withParam = new Map<number, typeof all>();
  for (const t of all) if (isParam(t.segments[2])) withParam.set(t.segments.length, [...(withParam.get(t.segments.length) ?? []), t]);
  const byKey = new Map<string, typeof all>();
  for (const t of all) {
    if (isParam(t.segments[2])) continue;
    const k = key(t.segments.length, t.segments[2]);
    if (!byKey.has(k)) byKey.set(k, [...(withParam.get(t.segments.length) ?? [])]);
    byKey.get(k)!.push(t);
  }
  return (path) => {
    const segments = path.split('/');
    const candidates = byKey.get(key(segments.length, segments[2])) ?? withParam.get(segments.length) ?? [];
    let best: (typeof all)[number] | null = null;
    for (const t of candidates) {
      if (!t.pattern.test(path)) continue;
      if (!best || compareRank(t.rank, best.rank) > 0) best = t;
    }
    return best ? best.sorted : null;
  };
}
