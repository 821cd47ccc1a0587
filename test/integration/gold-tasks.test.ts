import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let configId: number;
let textConfigId: number;

const IMAGE_XML =
  '<View><Image name="image" value="$image"/><Choices name="label" toName="image"><Choice value="cat"/><Choice value="dog"/></Choices>' +
  '<RectangleLabels name="box" toName="image"><Label value="cat"/></RectangleLabels></View>';
const TEXT_XML = '<View><Text name="text" value="$text"/><Labels name="ner" toName="text"><Label value="PER"/></Labels></View>';

const CAT = { from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['cat'] } };
const DOG = { from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['dog'] } };

beforeAll(async () => {
  t = await startTestService();
  configId = (await t.json('POST', '/api/labeling-configs', { name: 'Image', configXml: IMAGE_XML })).body.id;
  textConfigId = (await t.json('POST', '/api/labeling-configs', { name: 'Text', configXml: TEXT_XML })).body.id;
});
afterAll(async () => t?.close());

async function createGold(body: Record<string, unknown> = {}) {
  const res = await t.json('POST', '/api/gold-tasks', { s3ImageKey: 'gold/cat_001.jpg', expectedLabels: [CAT], labelingConfigId: configId, ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: number };
}

/** The row as stored; expected_labels read as text so no key mapping touches it. */
async function storedRow(id: number) {
  const row = await t.db
    .selectFrom('goldTasks')
    .selectAll()
    .select(sql<string>`expected_labels::text`.as('labelsText'))
    .where('id', '=', id)
    .executeTakeFirst();
  return row && { ...row, expectedLabels: JSON.parse(row.labelsText) };
}

describe('gold tasks: happy path', () => {
  it('creates, reads, lists, updates and deletes a gold task', async () => {
    const created = await t.json('POST', '/api/gold-tasks', {
      name: 'Gold - Cat',
      s3ImageKey: 'gold/cat_001.jpg',
      expectedLabels: [CAT],
      labelingConfigId: configId,
      category: 'animals',
      difficulty: 'easy',
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.any(Number),
      name: 'Gold - Cat',
      s3ImageKey: 'gold/cat_001.jpg',
      expectedLabels: [CAT],
      labelingConfigId: configId,
      category: 'animals',
      difficulty: 'easy',
      createdAt: expect.any(String),
    });
    expect(Date.parse(created.body.createdAt)).not.toBeNaN();
    const id = created.body.id;
    expect((await storedRow(id))?.expectedLabels).toEqual([CAT]);

    expect((await t.json('GET', `/api/gold-tasks/${id}`)).body).toEqual(created.body);
    const list = await t.json('GET', '/api/gold-tasks');
    expect(list.status).toBe(200);
    expect(list.body).toContainEqual(created.body);

    const updated = await t.json('PUT', `/api/gold-tasks/${id}`, { expectedLabels: [DOG], difficulty: 'hard', category: null, name: 'Gold - Dog' });
    expect(updated.status).toBe(200);
    expect(updated.body).toEqual({ ...created.body, expectedLabels: [DOG], difficulty: 'hard', category: null, name: 'Gold - Dog' });
    expect(await storedRow(id)).toMatchObject({ expectedLabels: [DOG], difficulty: 'hard', category: null, name: 'Gold - Dog' });

    expect(await t.json('DELETE', `/api/gold-tasks/${id}`)).toMatchObject({ status: 200, body: { success: true } });
    expect((await t.json('GET', `/api/gold-tasks/${id}`)).status).toBe(404);
    expect(await storedRow(id)).toBeUndefined();
  });

  it('fills optional fields with null', async () => {
    const res = await t.json('POST', '/api/gold-tasks', { s3ImageKey: 'gold/x.jpg', expectedLabels: [CAT], labelingConfigId: configId });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ name: null, category: null, difficulty: null });
  });

  it('keeps extra Label Studio result fields and relation results as sent', async () => {
    const box = {
      id: 'r1',
      from_name: 'box',
      to_name: 'image',
      type: 'rectanglelabels',
      origin: 'manual',
      original_width: 640,
      original_height: 480,
      value: { x: 10, y: 20, width: 30, height: 40, rotation: 0, rectanglelabels: ['cat'] },
    };
    const relation = { type: 'relation', from_id: 'r1', to_id: 'r1', direction: 'right' };
    const res = await t.json('POST', '/api/gold-tasks', {
      s3ImageKey: 'gold/box.jpg',
      expectedLabels: [box, CAT, relation],
      labelingConfigId: configId,
    });
    expect(res.status).toBe(201);
    expect(res.body.expectedLabels).toEqual([box, CAT, relation]);
  });

  it('filters by labelingConfigId and category, pages and reports the filtered total', async () => {
    await t.db.deleteFrom('goldTasks').execute();
    const a = await createGold({ category: 'animals' });
    const b = await createGold({ category: 'animals' });
    const c = await createGold({ category: 'vehicles' });
    const d = await createGold({
      labelingConfigId: textConfigId,
      category: 'animals',
      expectedLabels: [{ from_name: 'ner', to_name: 'text', type: 'labels', value: { start: 0, end: 3, labels: ['PER'] } }],
    });
    const ids = (body: { id: number }[]) => body.map((g) => g.id);

    const byConfig = await t.json('GET', `/api/gold-tasks?labelingConfigId=${configId}`);
    expect(ids(byConfig.body)).toEqual([a.id, b.id, c.id]);
    expect(byConfig.headers.get('x-total-count')).toBe('3');

    const byCategory = await t.json('GET', '/api/gold-tasks?category=animals');
    expect(ids(byCategory.body)).toEqual([a.id, b.id, d.id]);

    const both = await t.json('GET', `/api/gold-tasks?labelingConfigId=${configId}&category=animals&limit=1&offset=1`);
    expect(ids(both.body)).toEqual([b.id]);
    expect(both.headers.get('x-total-count')).toBe('2');

    const none = await t.json('GET', '/api/gold-tasks?category=nothing');
    expect(none.body).toEqual([]);
    expect(none.headers.get('x-total-count')).toBe('0');
    const unknownConfig = await t.json('GET', '/api/gold-tasks?labelingConfigId=424242');
    expect(unknownConfig.status).toBe(200);
    expect(unknownConfig.body).toEqual([]);

    const all = await t.json('GET', '/api/gold-tasks');
    expect(ids(all.body)).toEqual([a.id, b.id, c.id, d.id]);
    expect(all.headers.get('x-total-count')).toBe('4');
  });

  it('moves a gold task to another config when its labels fit that config', async () => {
    const { id } = await createGold();
    const ner = [{ from_name: 'ner', to_name: 'text', type: 'labels', value: { start: 0, end: 3, labels: ['PER'] } }];
    const res = await t.json('PUT', `/api/gold-tasks/${id}`, { labelingConfigId: textConfigId, expectedLabels: ner });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ labelingConfigId: textConfigId, expectedLabels: ner });
  });

  it('locks its labeling config', async () => {
    const { id } = await createGold();
    const config = await t.json('GET', `/api/labeling-configs/${configId}`);
    expect(config.body.isLocked).toBe(true);
    expect((await t.json('PUT', `/api/labeling-configs/${configId}`, { configXml: TEXT_XML })).status).toBe(409);
    await t.json('DELETE', `/api/gold-tasks/${id}`);
  });
});

describe('gold tasks: validation errors', () => {
  it('rejects bad fields with 400 in the documented shape', async () => {
    const ok = { s3ImageKey: 'gold/a.jpg', expectedLabels: [CAT], labelingConfigId: configId };
    const bad: Record<string, unknown>[] = [
      {},
      { ...ok, s3ImageKey: undefined },
      { ...ok, s3ImageKey: '' },
      { ...ok, s3ImageKey: '   ' },
      { ...ok, s3ImageKey: 'k'.repeat(1025) },
      { ...ok, expectedLabels: undefined },
      { ...ok, expectedLabels: [] },
      { ...ok, expectedLabels: CAT },
      { ...ok, expectedLabels: ['choices'] },
      { ...ok, expectedLabels: [{ ...CAT, type: undefined }] },
      { ...ok, expectedLabels: [{ ...CAT, type: '' }] },
      { ...ok, expectedLabels: [{ ...CAT, value: undefined }] },
      { ...ok, expectedLabels: [{ ...CAT, value: ['cat'] }] },
      { ...ok, expectedLabels: [{ ...CAT, from_name: undefined }] },
      { ...ok, expectedLabels: [{ ...CAT, to_name: 7 }] },
      { ...ok, expectedLabels: [{ type: 'relation', from_id: 'a' }] },
      { ...ok, expectedLabels: [{ ...CAT, value: { choices: ['a\u0000b'] } }] },
      { ...ok, labelingConfigId: undefined },
      { ...ok, labelingConfigId: 0 },
      { ...ok, labelingConfigId: -1 },
      { ...ok, labelingConfigId: 1.5 },
      { ...ok, labelingConfigId: '1' },
      { ...ok, name: 'n'.repeat(256) },
      { ...ok, category: 'c'.repeat(101) },
      { ...ok, difficulty: 'extreme' },
      { ...ok, extra: 1 },
      { ...ok, name: 'a\u0000' },
      { ...ok, s3ImageKey: 'gold/\u0000.jpg' },
      { ...ok, category: '\u0000' },
    ];
    for (const body of bad) {
      const res = await t.json('POST', '/api/gold-tasks', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toBe('Validation failed');
      expect(Array.isArray(res.body.details)).toBe(true);
    }
  });

  it('refuses keys a presigned URL cannot address (the catalog skips them too), on create and update; takes other awkward keys', async () => {
    const count = async () => Number((await sql<{ n: string }>`SELECT count(*) AS n FROM gold_tasks`.execute(t.db)).rows[0]!.n);
    const existing = await createGold({ s3ImageKey: 'gold/keep.jpg' });
    const before = await count();
    const bad: [string, string][] = [
      ['gold/a/../b.jpg', 'dot_segment'],
      ['gold/./b.jpg', 'dot_segment'],
      ['../b.jpg', 'dot_segment'],
      ['gold/..', 'dot_segment'],
      ['gold/tab\there.jpg', 'control_character'],
      ['gold/new\nline.jpg', 'control_character'],
      ['gold/cr\rx.jpg', 'control_character'],
      ['gold/del\u007f.jpg', 'control_character'],
      ['gold/c1\u0085.jpg', 'control_character'],
    ];
    for (const [key, problem] of bad) {
      for (const [method, path] of [
        ['POST', '/api/gold-tasks'],
        ['PUT', `/api/gold-tasks/${existing.id}`],
      ] as const) {
        const body = method === 'POST' ? { s3ImageKey: key, expectedLabels: [CAT], labelingConfigId: configId } : { s3ImageKey: key };
        const res = await t.json(method, path, body);
        expect(res.status, `${method} ${JSON.stringify(key)}`).toBe(400);
        expect(res.body.error).toBe('Validation failed');
        expect(res.body.details).toEqual([expect.objectContaining({ path: ['s3ImageKey'], message: expect.stringContaining(`(${problem})`) })]);
      }
    }
    expect(await count()).toBe(before);
    expect((await t.json('GET', `/api/gold-tasks/${existing.id}`)).body.s3ImageKey).toBe('gold/keep.jpg');
    for (const key of ['gold/...jpg', 'gold/x..jpg', 'gold/.hidden/a.jpg', 'gold//double.jpg', 'gold/a b+c%d#e?f.jpg', 'gold/😀/é.jpg']) {
      await createGold({ s3ImageKey: key });
    }
  });

  it('says which result field is missing', async () => {
    const res = await t.json('POST', '/api/gold-tasks', {
      s3ImageKey: 'gold/a.jpg',
      expectedLabels: [CAT, { type: 'choices', value: { choices: ['x'] } }],
      labelingConfigId: configId,
    });
    expect(res.status).toBe(400);
    expect(res.body.details).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: ['expectedLabels', 1, 'from_name'], message: expect.stringMatching(/is required/) }),
        expect.objectContaining({ path: ['expectedLabels', 1, 'to_name'] }),
      ]),
    );
  });

  it('rejects expectedLabels nested too deeply', async () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100; i++) deep = [deep];
    const res = await t.json('POST', '/api/gold-tasks', {
      s3ImageKey: 'gold/a.jpg',
      expectedLabels: [{ ...CAT, value: { deep } }],
      labelingConfigId: configId,
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body.details)).toMatch(/nested more than 32 levels/);
  });

  it('answers 400 "Labeling config not found" for a missing config, on create and update', async () => {
    const before = await t.db.selectFrom('goldTasks').select('id').execute();
    const res = await t.json('POST', '/api/gold-tasks', { s3ImageKey: 'gold/a.jpg', expectedLabels: [CAT], labelingConfigId: 424242 });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('Labeling config not found');
    expect(res.body.details).toEqual([{ path: ['labelingConfigId'], message: 'no labeling config has id 424242' }]);
    expect(await t.db.selectFrom('goldTasks').select('id').execute()).toEqual(before);

    const { id } = await createGold();
    const put = await t.json('PUT', `/api/gold-tasks/${id}`, { labelingConfigId: 424242 });
    expect(put.status).toBe(400);
    expect(put.body.error).toBe('Labeling config not found');
    expect((await storedRow(id))?.labelingConfigId).toBe(configId);
  });

  it('answers 400 when expectedLabels name controls the config does not have', async () => {
    const unknownControl = await t.json('POST', '/api/gold-tasks', {
      s3ImageKey: 'gold/a.jpg',
      expectedLabels: [CAT, { ...CAT, from_name: 'species' }],
      labelingConfigId: configId,
    });
    expect(unknownControl.status).toBe(400);
    expect(unknownControl.body.error).toBe(
      `expectedLabels do not match labeling config ${configId}: from_name "species" is not a control tag of the labeling config (controls: "label", "box")`,
    );
    expect(unknownControl.body.details).toEqual([
      { path: ['expectedLabels', 1, 'from_name'], message: expect.stringContaining('"species"') },
    ]);

    const wrongObject = await t.json('POST', '/api/gold-tasks', {
      s3ImageKey: 'gold/a.jpg',
      expectedLabels: [{ ...CAT, to_name: 'img' }],
      labelingConfigId: configId,
    });
    expect(wrongObject.status).toBe(400);
    expect(wrongObject.body.details).toEqual([
      { path: ['expectedLabels', 0, 'to_name'], message: 'to_name "img" is not labeled by control "label" (its toName: "image")' },
    ]);
  });

  it('checks existing labels against a new config, and new labels against the current one', async () => {
    const { id } = await createGold();
    const move = await t.json('PUT', `/api/gold-tasks/${id}`, { labelingConfigId: textConfigId });
    expect(move.status).toBe(400);
    expect(move.body.error).toMatch(/^expectedLabels do not match labeling config \d+: from_name "label"/);
    const relabel = await t.json('PUT', `/api/gold-tasks/${id}`, {
      expectedLabels: [{ from_name: 'ner', to_name: 'text', type: 'labels', value: { labels: ['PER'] } }],
    });
    expect(relabel.status).toBe(400);
    expect(await storedRow(id)).toMatchObject({ labelingConfigId: configId, expectedLabels: [CAT] });
  });

  it('rejects empty, unknown-field and invalid updates', async () => {
    const { id } = await createGold();
    for (const body of [{}, { nope: 1 }, { s3ImageKey: '' }, { expectedLabels: [] }, { difficulty: 'x' }, { labelingConfigId: 0 }]) {
      const res = await t.json('PUT', `/api/gold-tasks/${id}`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
  });

  it('validates the list filters and pagination', async () => {
    for (const q of ['labelingConfigId=abc', 'labelingConfigId=0', 'labelingConfigId=-3', 'labelingConfigId=1.5', 'labelingConfigId=99999999999', 'limit=0', 'limit=501', 'offset=-1']) {
      const res = await t.json('GET', `/api/gold-tasks?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error).toBe('Validation failed');
    }
  });

  it('answers 400 for ids that are not positive integers and 404 for missing ones', async () => {
    for (const id of ['abc', '0', '-1', '1.5', '99999999999']) {
      expect((await t.json('GET', `/api/gold-tasks/${id}`)).status, id).toBe(400);
      expect((await t.json('PUT', `/api/gold-tasks/${id}`, { name: 'x' })).status, id).toBe(400);
      expect((await t.json('DELETE', `/api/gold-tasks/${id}`)).status, id).toBe(400);
    }
    for (const [method, body] of [['GET'], ['PUT', { name: 'z' }], ['DELETE']] as const) {
      const res = await t.json(method, '/api/gold-tasks/424242', body);
      expect(res.status, method).toBe(404);
      expect(res.body).toEqual({ error: 'Gold task not found' });
    }
  });
});

describe('gold tasks: security', () => {
  it('answers 401 without a session', async () => {
    const { id } = await createGold();
    for (const [method, path, body] of [
      ['GET', '/api/gold-tasks'],
      ['POST', '/api/gold-tasks', { s3ImageKey: 'k', expectedLabels: [CAT], labelingConfigId: configId }],
      ['GET', `/api/gold-tasks/${id}`],
      ['PUT', `/api/gold-tasks/${id}`, { name: 'x' }],
      ['DELETE', `/api/gold-tasks/${id}`],
    ] as const) {
      const res = await t.anonymous.json(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.body).toEqual({ error: 'Unauthorized' });
    }
    expect(await storedRow(id)).toBeDefined();
  });
});
