/**
 * Counts the SQL statements this process sends to PostgreSQL through node-pg (every pool and
 * client, Kysely's included): a hook on `pg.Client.prototype.query`, installed for the duration
 * of `count(fn)`. Used by the reconcile tests and `npm run bench -- reconcile` to show what a pass
 * costs. Statements are classified by their first keyword; `rowsWritten` sums the row counts
 * PostgreSQL reports for INSERT/UPDATE/DELETE (0 for an UPDATE that matched nothing).
 */
import pg from 'pg';

export interface StatementCount {
  /** Every statement sent (BEGIN/COMMIT and advisory-lock calls included). */
  statements: number;
  /** INSERT, UPDATE, DELETE or MERGE statements, whether or not they matched rows. */
  writeStatements: number;
  /** Rows those statements inserted, updated or deleted. */
  rowsWritten: number;
  /** The write statements that changed rows (first 120 characters each), to say what an idle pass wrote. */
  writes: string[];
}

const WRITE = /^\s*(with\b[\s\S]*?\)\s*)?(insert|update|delete|merge)\b/i;

type Query = (this: pg.Client, ...args: unknown[]) => unknown;

/** Runs `fn` and returns its result with the statements it (and anything else in this process meanwhile) sent. */
export async function countStatements<T>(fn: () => Promise<T>): Promise<{ result: T; count: StatementCount }> {
  const count: StatementCount = { statements: 0, writeStatements: 0, rowsWritten: 0, writes: [] };
  const proto = pg.Client.prototype as unknown as { query: Query };
  const original = proto.query;
  proto.query = function (this: pg.Client, ...args: unknown[]) {
    const first = args[0];
    const text = typeof first === 'string' ? first : ((first as { text?: string } | undefined)?.text ?? '');
    count.statements++;
    const write = WRITE.test(text);
    if (write) count.writeStatements++;
    const counted = (r: { rowCount?: number | null } | undefined) => {
      const n = r?.rowCount ?? 0;
      if (n > 0) {
        count.rowsWritten += n;
        count.writes.push(`${n} row(s): ${text.replace(/\s+/g, ' ').slice(0, 120)}`);
      }
    };
    // node-pg answers in either form: a callback as the last argument (what src/db/index.ts's
    // client uses), else a promise.
    const callback = args[args.length - 1];
    if (write && typeof callback === 'function') {
      args[args.length - 1] = (err: unknown, r: { rowCount?: number | null } | undefined) => {
        if (!err) counted(r);
        return (callback as (e: unknown, r: unknown) => unknown)(err, r);
      };
    }
    const out = original.apply(this, args);
    if (write && out && typeof (out as Promise<unknown>).then === 'function') {
      (out as Promise<{ rowCount?: number | null }>).then(counted, () => {});
    }
    return out;
  } as Query;
  try {
    const result = await fn();
    return { result, count };
  } finally {
    proto.query = original;
  }
}
