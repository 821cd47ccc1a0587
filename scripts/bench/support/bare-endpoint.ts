/**
 * The webhooks benchmark's baseline (issue 15): a bare Hono endpoint on @hono/node-server that
 * parses the JSON body and does one `INSERT … ON CONFLICT DO NOTHING` with pg — what ingestion
 * costs with no authentication, validation or rules. Run as its own process (like `fleet serve`):
 *   node --import tsx scripts/bench/support/bare-endpoint.ts <databaseUrl> <poolSize>
 * Prints `listening <port>` on stdout once it answers. Inserts into `bare_events` (the same columns
 * and unique key as annotation_events, created by the benchmark), so the measured tables stay apart.
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import pg from 'pg';

const [url, poolSize] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: url, max: Number(poolSize ?? 10) });
const app = new Hono();

app.post('/webhook', async (c) => {
  const body = (await c.req.json()) as { action: string; annotation: { id: number; task: number; project: number; updated_at: string; lead_time: number } };
  const a = body.annotation;
  await pool.query(
    `INSERT INTO bare_events (annotator_id, event_type, ls_project_id, ls_task_id, ls_annotation_id, annotation_updated_at, time_spent_ms, source)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'webhook') ON CONFLICT DO NOTHING`,
    [Number(c.req.header('x-annotator-id')), body.action.toLowerCase(), a.project, a.task, a.id, a.updated_at, Math.round(a.lead_time * 1000)],
  );
  return c.json({ ok: true });
});

serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => console.log(`listening ${info.port}`));
process.on('SIGTERM', () => {
  void pool.end().finally(() => process.exit(0));
});
