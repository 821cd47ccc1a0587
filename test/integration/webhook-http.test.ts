/**
 * POST /api/webhook over real HTTP into `fleet serve`: the handler reads a body with a declared
 * Content-Length straight from the Node request (the hot path, webhook.ts) and a chunked one
 * through the counted web stream (body-limits.ts); both must give the same answers and rows.
 */
import http from 'node:http';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookSecret } from '../../orchestrator/instance-spec.ts';
import { SecretBox } from '../../src/crypto.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { freePort, startFleet, waitUntil } from '../helpers/process.ts';

const KEY = 'webhook-http-test-key-0123456789-abcdefgh';
let db: TestDatabase;
let port: number;
let stop: () => Promise<void>;

beforeAll(async () => {
  db = await createTestDatabase();
  const q = db.handle.db;
  await sql`INSERT INTO roles (name) VALUES ('r')`.execute(q);
  await sql`INSERT INTO labeling_configs (name, config_xml) VALUES ('c', '<View><Image name="image" value="$image"/></View>')`.execute(q);
  await sql`INSERT INTO workflows (name, role_id, labeling_config_id, s3_source_path, s3_export_path, auto_assign) VALUES ('w', 1, 1, 's/', 'o/', false)`.execute(q);
  await sql`INSERT INTO annotators (name, email, subdomain, role_id, status) VALUES ('A', 'a@x.local', 'a-1', 1, 'active')`.execute(q);
  await sql`INSERT INTO assignments (workflow_id, annotator_id, ls_project_id, task_count, status) VALUES (1, 1, 77, 4, 'in_progress')`.execute(q);
  await sql`INSERT INTO assignment_tasks (assignment_id, s3_image_key, ls_task_id, position) SELECT 1, 'i/' || n, 700 + n, n FROM generate_series(1, 4) n`.execute(q);
  port = await freePort();
  const proc = startFleet(['serve', '--no-reconcile'], { DATABASE_URL: db.url, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', FLEET_SECRET_KEY: KEY });
  stop = async () => {
    proc.child.kill('SIGTERM');
    await proc.exited;
  };
  await waitUntil('the service to answer', async () => (await fetch(`http://127.0.0.1:${port}/api/health`)).ok, 120_000, 250);
}, 180_000);

afterAll(async () => {
  await stop?.();
  await db?.drop();
});

function send(body: string | Buffer, chunked: boolean): Promise<{ status: number; body: string }> {
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'x-annotator-id': '1',
    'x-webhook-secret': webhookSecret(new SecretBox(KEY), 1, 0),
  };
  if (!chunked) headers['content-length'] = Buffer.byteLength(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/api/webhook', method: 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    if (chunked) {
      // Two writes without a length: Node sends Transfer-Encoding: chunked.
      const b = Buffer.from(body);
      req.write(b.subarray(0, 10));
      req.end(b.subarray(10));
    } else req.end(body);
  });
}

const created = (id: number, lsTask: number, updatedAt = '2026-03-01T10:00:00.000001Z') =>
  JSON.stringify({
    action: 'ANNOTATION_CREATED',
    annotation: { id, task: lsTask, project: 77, result: [{ from_name: 'l', type: 'choices', value: { choices: ['cat'] } }], updated_at: updatedAt, lead_time: 3 },
    project: { id: 77, label_config: '<View/>'.repeat(200) },
    task: { id: lsTask, data: { image: 'http://x/y.png' } },
  });

/** Once the service's drainer has applied every acknowledged webhook (src/workflows/inbox.ts), as a reader would poll. */
const applied = () =>
  expect.poll(async () => (await sql<{ n: number }>`SELECT count(*)::int AS n FROM webhook_inbox`.execute(db.handle.db)).rows[0]!.n, { timeout: 5_000 }).toBe(0);

const annotated = async () =>
  Number((await sql<{ n: number }>`SELECT count(*)::int AS n FROM assignment_tasks WHERE status = 'annotated'`.execute(db.handle.db)).rows[0]!.n);

describe('webhook over HTTP', () => {
  it('records an event whether the body has a declared length or is chunked, with a byte order mark or not', async () => {
    expect(await send(created(1, 701), false)).toEqual({ status: 200, body: '{"ok":true}' });
    expect(await send(created(2, 702), true)).toEqual({ status: 200, body: '{"ok":true}' });
    expect(await send(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(created(3, 703))]), false)).toEqual({ status: 200, body: '{"ok":true}' });
    await applied();
    expect(await annotated()).toBe(3);
    // A duplicate, either way, changes nothing.
    expect((await send(created(1, 701), true)).status).toBe(200);
    expect((await send(created(2, 702), false)).status).toBe(200);
    await applied();
    expect(await annotated()).toBe(3);
  });

  it('answers 400 for malformed JSON and for a refused value, either way, and records nothing', async () => {
    for (const chunked of [false, true]) {
      const bad = await send('{"action": "ANNOTATION_CREATED", ', chunked);
      expect(bad.status).toBe(400);
      expect(JSON.parse(bad.body)).toEqual({ error: 'Malformed JSON body' });
      const date = await send(created(4, 704, '2026-02-30T00:00:00Z'), chunked);
      expect(date.status).toBe(400);
      expect(JSON.parse(date.body).details[0].path).toEqual(['annotation', 'updated_at']);
    }
    expect(await annotated()).toBe(3);
  });
});
