/**
 * Statements built and compiled once per shape, then run with each call's values.
 *
 * Kysely builds a query's operation tree, runs the plugins over it (CamelCasePlugin) and compiles
 * it to SQL on every call; on a hot read that is a large share of the service's own CPU (GET
 * /api/annotators: about a fifth of its in-process CPU per request, in a CPU profile). A
 * precompiled statement calls `build` with placeholders instead of the values the first time it
 * meets a shape — which of the values are given — keeps the SQL, and from then on only puts each
 * call's values where the placeholders came out among the parameters.
 *
 * The rule `build` must follow: branch on whether a value is given, never on what it is, and pass
 * each value on to Kysely as it is, as one parameter (a scalar, not a list for `in`): a placeholder
 * is an opaque object. A value that does not come out as a parameter is an error at first compile.
 */
import { CompiledQuery, type Compilable } from 'kysely';
import type { Db } from './index.ts';

/** Stands for one named value in a statement being compiled. */
class Placeholder {
  constructor(readonly name: string) {}
}

interface Shape {
  sql: string;
  /** Each parameter: a constant of the statement, or the placeholder of a value. */
  parameters: readonly unknown[];
}

/**
 * Returns a function that runs the statement `build(db, values)` would build, with `values`, and
 * resolves to its rows (result rows as Kysely returns them: through the database's plugins).
 * Compiled shapes are kept per database handle; there are as many as combinations of given values.
 */
export function precompiled<V extends object, O>(build: (db: Db, values: V) => Compilable<O>) {
  const shapes = new WeakMap<Db, Map<string, Shape>>();

  function shapeOf(db: Db, values: V): Shape {
    // The given names in the values' own order: a caller passes them in one order, so a shape is
    // found without sorting (another order only compiles the same shape once more).
    let key = '';
    for (const k in values) if (values[k] !== undefined) key += `${k},`;
    let byKey = shapes.get(db);
    if (!byKey) shapes.set(db, (byKey = new Map()));
    let shape = byKey.get(key);
    if (!shape) {
      const given = key.split(',').slice(0, -1);
      const placeholders = Object.fromEntries(given.map((k) => [k, new Placeholder(k)])) as V;
      const { sql, parameters } = build(db, placeholders).compile();
      const missing = given.filter((k) => !parameters.some((p) => p instanceof Placeholder && p.name === k));
      if (missing.length > 0) throw new Error(`precompiled: ${missing.join(', ')} did not come out as parameters`);
      shape = { sql, parameters };
      byKey.set(key, shape);
    }
    return shape;
  }

  /** The SQL and parameters for these values, as they are sent (for benchmarks and EXPLAIN). */
  const compile = (db: Db, values: V) => {
    const shape = shapeOf(db, values);
    return CompiledQuery.raw(shape.sql, shape.parameters.map((p) => (p instanceof Placeholder ? values[p.name as keyof V] : p)));
  };

  const run = async (db: Db, values: V): Promise<O[]> => (await db.executeQuery<O>(compile(db, values))).rows;
  return Object.assign(run, { compile });
}
