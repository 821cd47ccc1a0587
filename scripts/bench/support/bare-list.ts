/**
 * The api benchmark's floor (issue 15): a bare Hono endpoint on @hono/node-server that answers
 * GET /api/annotators by sending one given statement with pg and answering its one row's `json`
 * column as the body, with the total in X-Total-Count — what any HTTP service costs around that
 * statement here, with no authentication, validation or middleware. Run as its own process:
 *   node --import tsx scripts/bench/support/bare-list.ts <databaseUrl> <poolSize> <statement JSON {sql, parameters}>
 * Prints `listening <port>` on stdout once it answers.
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import pg from 'pg';

const [url, poolSize, statement] = process.argv.slice(2);
const { sql, parameters } = JSON.parse(statement!) as { sql: string; parameters: unknown[] };
const pool = new pg.Pool({ connectionString: url, max: Number(poolSize ?? 10) });
const app = new Hono();

app.get('/api/annotators', async (c) => {
  const { rows } = await pool.query<{ json: string; list_total: number }>(sql, parameters);
  c.header('X-Total-Count', String(rows[0]!.list_total));
  return c.body(rows[0]!.json, 200, { 'Content-Type': 'application/json' });
});

serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => console.log(`listening ${info.port}`));
process.on('SIGTERM', () => {
  void pool.end().finally(() => process.exit(0));
});
