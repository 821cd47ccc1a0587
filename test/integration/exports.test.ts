/**
 * GET /api/workflows/:id/export in every format, with its filters, streamed across many pages;
 * and the JSONL a batch's completion writes (same records).
 */
import { gunzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { sql } from 'kysely';
import { extract } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchJsonl } from '../../src/workflows/export.ts';
import { IMAGE_CONFIG, seedAnnotator, seedConfig, seedRole, seedWorkflow } from '../helpers/batches.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let workflowId = 0;
let annotator: { id: number; name: string };
const batches: Record<string, number> = {};
const tasks: Record<string, number> = {};

const box = (x: number, label = 'car') => ({
  from_name: 'box',
  to_name: 'image',
  type: 'rectanglelabels',
  original_width: 200,
  original_height: 100,
  value: { x, y: 10, width: 20, height: 50, rotation: 0, rectanglelabels: [label] },
});
const choice = (c: string) => ({ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [c] } });

async function batch(name: string, status: 'completed' | 'in_progress' | 'cancelled', completedAt: string | null) {
  const row = await t.db
    .insertInto('assignments')
    .values({ workflowId, annotatorId: annotator.id, status, completedAt: completedAt ? new Date(completedAt) : null, taskCount: 4 })
    .returning('id')
    .executeTakeFirstOrThrow();
  batches[name] = row.id;
  return row.id;
}

async function task(name: string, batchName: string, imageKey: string, result: unknown[] | null, extra: Record<string, unknown> = {}) {
  const row = await t.db
    .insertInto('assignmentTasks')
    .values({
      assignmentId: batches[batchName]!,
      s3ImageKey: imageKey,
      result: result === null ? null : JSON.stringify(result),
      status: result === null ? 'open' : 'annotated',
      annotatedAt: result === null ? null : new Date('2026-03-01T10:00:00Z'),
      leadTimeSeconds: result === null ? null : 7.5,
      lsTaskId: 100 + Object.keys(tasks).length,
      lsAnnotationId: result === null ? null : 500 + Object.keys(tasks).length,
      ...extra,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  tasks[name] = row.id;
  return row.id;
}

const lines = (text: string) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l));

beforeAll(async () => {
  t = await startTestService();
  const role = await seedRole(t);
  const config = await seedConfig(t, IMAGE_CONFIG);
  workflowId = (await seedWorkflow(t, { labelingConfigId: config.id, roleId: role.id })).id;
  const a = await seedAnnotator(t, { roleId: role.id, name: 'Alice' });
  annotator = { id: a.id, name: a.name };

  await batch('b1', 'completed', '2026-03-01T12:00:00Z');
  await task('a1', 'b1', 'img/a.png', [choice('cat'), box(10)]);
  await task('b', 'b1', 'img/b.jpg', [box(50, 'person'), box(0, 'car')], { reviewDecision: 'accept', reviewReason: 'looks "right", thanks' });
  await task('c', 'b1', 'img/c.png', [], { skipped: true });
  const gold = await task('gold', 'b1', 'gold/g.png', [choice('cat')], { isGold: true });
  await t.db.insertInto('goldResults').values({ assignmentTaskId: gold, assignmentId: batches.b1!, annotatorId: annotator.id, score: 0.5 }).execute();

  await batch('b2', 'in_progress', null);
  await task('d', 'b2', 'img/d.png', [box(30)], { annotatedAt: new Date('2026-03-05T10:00:00Z') });
  await task('e', 'b2', 'img/e.png', null);

  await batch('b3', 'completed', '2026-03-10T12:00:00Z');
  await task('a3', 'b3', 'img/a.png', [box(60, 'person')], { annotatedAt: new Date('2026-03-10T11:00:00Z') });

  await batch('b4', 'cancelled', null);
  await task('f', 'b4', 'img/f.png', [box(1)]);
});
afterAll(async () => t?.close());

const exportOf = (query = '') => t.request('GET', `/api/workflows/${workflowId}/export${query}`);

describe('export formats', () => {
  it('JSONL (default): one record per annotated real task of completed batches, in batch and task order', async () => {
    const res = await exportOf();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="workflow-${workflowId}.jsonl"`);
    const records = lines(await res.text());
    expect(records.map((r) => r.taskId)).toEqual([tasks.a1, tasks.b, tasks.c, tasks.a3]);
    expect(records[1]).toEqual({
      imageKey: 'img/b.jpg',
      result: [box(50, 'person'), box(0, 'car')],
      skipped: false,
      annotator,
      workflowId,
      batchId: batches.b1,
      taskId: tasks.b,
      lsTaskId: expect.any(Number),
      lsAnnotationId: expect.any(Number),
      annotatedAt: '2026-03-01T10:00:00.000Z',
      leadTimeSeconds: 7.5,
      review: { decision: 'accept', reason: 'looks "right", thanks' },
      gold: { batchScore: 0.5, batchEvaluations: 1 },
    });
    expect(records[2]).toMatchObject({ skipped: true, result: [] });
    expect(records[3]).not.toHaveProperty('gold');
    expect(records[3]).not.toHaveProperty('review');
  });

  it('filters by batch status and since (batches completed since, or tasks annotated since)', async () => {
    expect(lines(await (await exportOf('?status=completed,in_progress')).text()).map((r) => r.taskId)).toEqual([tasks.a1, tasks.b, tasks.c, tasks.d, tasks.a3]);
    expect(lines(await (await exportOf('?status=cancelled')).text()).map((r) => r.taskId)).toEqual([tasks.f]);
    const since = lines(await (await exportOf(`?status=completed,in_progress&since=${encodeURIComponent('2026-03-02T00:00:00+00:00')}`)).text());
    expect(since.map((r) => r.taskId)).toEqual([tasks.d, tasks.a3]);
    for (const q of ['?status=done', '?status=', '?since=yesterday', '?format=xml', '?status=completed,nope']) {
      const res = await exportOf(q);
      expect(res.status, q).toBe(400);
      expect((await res.json()).error).toBeTruthy();
    }
    expect((await t.request('GET', '/api/workflows/999999/export')).status).toBe(404);
  });

  it('JSON: the same records as one array; CSV: one quoted row per record', async () => {
    const jsonl = lines(await (await exportOf()).text());
    const json = await exportOf('?format=json');
    expect(json.headers.get('content-type')).toBe('application/json');
    expect(await json.json()).toEqual(jsonl);
    const empty = await exportOf('?format=json&since=2030-01-01T00:00:00Z');
    expect(await empty.json()).toEqual([]);

    const csv = await exportOf('?format=csv');
    expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const text = await csv.text();
    const rows = text.trimEnd().split('\n');
    expect(rows[0]).toBe('image_key,workflow_id,batch_id,task_id,ls_task_id,ls_annotation_id,annotator_id,annotator_name,annotated_at,lead_time_seconds,skipped,review_decision,review_reason,batch_gold_score,result');
    expect(rows).toHaveLength(1 + jsonl.length);
    expect(rows[2]).toContain(`img/b.jpg,${workflowId},${batches.b1},${tasks.b},`);
    expect(rows[2]).toContain(',accept,"looks ""right"", thanks",0.5,');
    expect(rows[2]).toContain(`"${JSON.stringify(jsonl[1].result).replaceAll('"', '""')}"`);
  });

  it('COCO: categories from the RectangleLabels, each image once with its newest annotation, boxes in pixels', async () => {
    const res = await exportOf('?format=coco');
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="workflow-${workflowId}.coco.json"`);
    const coco = await res.json();
    expect(coco.categories).toEqual([
      { id: 0, name: 'car', supercategory: 'none' },
      { id: 1, name: 'person', supercategory: 'none' },
    ]);
    expect(coco.images).toEqual([
      { id: tasks.b, file_name: 'img/b.jpg', width: 200, height: 100 },
      { id: tasks.c, file_name: 'img/c.png' },
      { id: tasks.a3, file_name: 'img/a.png', width: 200, height: 100 },
    ]);
    expect(coco.annotations).toEqual([
      { id: 1, image_id: tasks.b, category_id: 1, bbox: [100, 10, 40, 50], area: 2000, iscrowd: 0, segmentation: [] },
      { id: 2, image_id: tasks.b, category_id: 0, bbox: [0, 10, 40, 50], area: 2000, iscrowd: 0, segmentation: [] },
      { id: 3, image_id: tasks.a3, category_id: 1, bbox: [120, 10, 40, 50], area: 2000, iscrowd: 0, segmentation: [] },
    ]);
  });

  it('YOLO: a gzipped tar with classes, data.yaml and one label file per image', async () => {
    const res = await exportOf('?format=yolo');
    expect(res.headers.get('content-type')).toBe('application/gzip');
    const files = new Map<string, string>();
    const tar = extract();
    tar.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        files.set(header.name, Buffer.concat(chunks).toString('utf8'));
        next();
      });
    });
    const done = new Promise<void>((resolve, reject) => tar.on('finish', () => resolve()).on('error', reject));
    Readable.from(gunzipSync(Buffer.from(await res.arrayBuffer()))).pipe(tar);
    await done;
    expect([...files.keys()]).toEqual(['classes.txt', 'data.yaml', 'labels/img/b.txt', 'labels/img/c.txt', 'labels/img/a.txt']);
    expect(files.get('classes.txt')).toBe('car\nperson\n');
    expect(files.get('data.yaml')).toContain('nc: 2');
    expect(files.get('labels/img/b.txt')).toBe('1 0.600000 0.350000 0.200000 0.500000\n0 0.100000 0.350000 0.200000 0.500000\n');
    expect(files.get('labels/img/c.txt')).toBe('');
    expect(files.get('labels/img/a.txt')).toBe('1 0.700000 0.350000 0.200000 0.500000\n');
  });

  it('refuses COCO and YOLO for configs without RectangleLabels', async () => {
    const config = await seedConfig(t, '<View><Image name="image" value="$image"/><Choices name="label" toName="image"><Choice value="a"/></Choices></View>');
    const wf = await seedWorkflow(t, { labelingConfigId: config.id });
    for (const format of ['coco', 'yolo']) {
      const res = await t.request('GET', `/api/workflows/${wf.id}/export?format=${format}`);
      expect(res.status).toBe(400);
      expect((await res.json()).error).toMatch(/RectangleLabels/);
    }
    expect((await t.request('GET', `/api/workflows/${wf.id}/export?format=jsonl`)).status).toBe(200);
  });

  it('a read API key exports', async () => {
    const key = (await t.json('POST', '/api/api-keys', { name: 'exporter', scopes: ['read'] })).body.key;
    const res = await t.anonymous.request('GET', `/api/workflows/${workflowId}/export`, undefined, { authorization: `Bearer ${key}` });
    expect(res.status).toBe(200);
    expect(lines(await res.text())).toHaveLength(4);
  });

  it('the JSONL beside a batch export has the batch’s lines, the same records', async () => {
    const jsonl = await batchJsonl(t.db, { id: batches.b1!, workflowId, status: 'completed' });
    const all = lines(await (await exportOf()).text());
    expect(lines(jsonl)).toEqual(all.filter((r) => r.batchId === batches.b1));
  });
});

describe('export across many pages', () => {
  it('streams every record once, in order, across batch groups and a batch bigger than a page', async () => {
    const config = await seedConfig(t, IMAGE_CONFIG);
    const wf = await seedWorkflow(t, { labelingConfigId: config.id });
    // 60 batches of 50, one of 4,500 (more than a page), 40 more of 50: 9,500 annotated tasks.
    const sizes = [...Array(60).fill(50), 4500, ...Array(40).fill(50)];
    for (const size of sizes) {
      const a = await t.db.insertInto('assignments').values({ workflowId: wf.id, annotatorId: annotator.id, status: 'completed', completedAt: sql<Date>`now()`, taskCount: size }).returning('id').executeTakeFirstOrThrow();
      await sql`INSERT INTO assignment_tasks (assignment_id, s3_image_key, status, result, annotated_at)
        SELECT ${a.id}, 'many/' || ${a.id} || '-' || g || '.png', 'annotated', '[]'::jsonb, now() FROM generate_series(1, ${size}) g`.execute(t.db);
    }
    const records = lines(await (await t.request('GET', `/api/workflows/${wf.id}/export`)).text());
    expect(records).toHaveLength(9_500);
    const keys = records.map((r) => [r.batchId, r.taskId] as const);
    for (let i = 1; i < keys.length; i++) {
      const [pb, pt] = keys[i - 1]!;
      const [b, tk] = keys[i]!;
      expect(b > pb || (b === pb && tk > pt), `record ${i}`).toBe(true);
    }
  });
});
