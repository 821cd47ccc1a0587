import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
beforeAll(async () => {
  t = await startTestService();
});
afterAll(async () => t?.close());

const XML =
  '<View>\n <Image name="image" value="$image"/>\n <Choices name="label" toName="image">\n <Choice value="cat"/>\n <Choice value="dog"/>\n </Choices>\n</View>';
const OTHER_XML = '<View><Text name="text" value="$text"/><Labels name="ner" toName="text"><Label value="PER"/></Labels></View>';

async function createConfig(body: Record<string, unknown> = {}) {
  const res = await t.json('POST', '/api/labeling-configs', { name: 'Image Classification', configXml: XML, ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: number; name: string; configXml: string };
}

async function addGoldTask(labelingConfigId: number) {
  await t.db
    .insertInto('goldTasks')
    .values({
      s3ImageKey: 'gold/cat.jpg',
      labelingConfigId,
      expectedLabels: JSON.stringify([{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['cat'] } }]),
    })
    .execute();
}

async function addWorkflow(labelingConfigId: number) {
  await t.db.insertInto('workflows').values({ name: 'wf', s3SourcePath: 'data/', s3ExportPath: 'out/', labelingConfigId }).execute();
}

describe('labeling configs: happy path', () => {
  it('creates, reads, lists, updates and deletes a config', async () => {
    const created = await t.json('POST', '/api/labeling-configs', {
      name: 'Image Classification',
      description: 'Single-label image classification',
      configXml: XML,
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.any(Number),
      name: 'Image Classification',
      description: 'Single-label image classification',
      configXml: XML,
      createdAt: expect.any(String),
      workflowCount: 0,
      goldTaskCount: 0,
      isLocked: false,
    });
    expect(Date.parse(created.body.createdAt)).not.toBeNaN();
    const id = created.body.id;

    const got = await t.json('GET', `/api/labeling-configs/${id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(created.body);

    const list = await t.json('GET', '/api/labeling-configs');
    expect(list.status).toBe(200);
    expect(list.body).toContainEqual(created.body);

    const updated = await t.json('PUT', `/api/labeling-configs/${id}`, { name: 'Renamed', description: null, configXml: OTHER_XML });
    expect(updated.status).toBe(200);
    expect(updated.body).toEqual({ ...created.body, name: 'Renamed', description: null, configXml: OTHER_XML });
    const row = await t.db.selectFrom('labelingConfigs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ name: 'Renamed', description: null, configXml: OTHER_XML });

    expect(await t.json('DELETE', `/api/labeling-configs/${id}`)).toMatchObject({ status: 200, body: { success: true } });
    expect((await t.json('GET', `/api/labeling-configs/${id}`)).status).toBe(404);
    expect(await t.db.selectFrom('labelingConfigs').selectAll().where('id', '=', id).executeTakeFirst()).toBeUndefined();
  });

  it('pages with limit and offset, ordered by id, and reports the total', async () => {
    await t.db.deleteFrom('goldTasks').execute();
    await t.db.deleteFrom('workflows').execute();
    await t.db.deleteFrom('labelingConfigs').execute();
    const ids = [];
    for (const name of ['p1', 'p2', 'p3']) ids.push((await createConfig({ name })).id);
    const page = await t.json('GET', '/api/labeling-configs?limit=2&offset=1');
    expect(page.status).toBe(200);
    expect(page.body.map((r: { id: number }) => r.id)).toEqual(ids.slice(1));
    expect(page.headers.get('x-total-count')).toBe('3');
    const empty = await t.json('GET', '/api/labeling-configs?offset=10');
    expect(empty.body).toEqual([]);
    expect(empty.headers.get('x-total-count')).toBe('3');
  });

  it('reports usage counts and isLocked on the detail and the list', async () => {
    const { id } = await createConfig({ name: 'counted' });
    await addWorkflow(id);
    await addWorkflow(id);
    await addGoldTask(id);
    const got = await t.json('GET', `/api/labeling-configs/${id}`);
    expect(got.body).toMatchObject({ workflowCount: 2, goldTaskCount: 1, isLocked: true });
    const list = await t.json('GET', '/api/labeling-configs?limit=500');
    expect(list.body.find((r: { id: number }) => r.id === id)).toMatchObject({ workflowCount: 2, goldTaskCount: 1, isLocked: true });

    const { id: plain } = await createConfig({ name: 'workflow only' });
    await addWorkflow(plain);
    expect((await t.json('GET', `/api/labeling-configs/${plain}`)).body).toMatchObject({
      workflowCount: 1,
      goldTaskCount: 0,
      isLocked: false,
    });
  });

  it('accepts configs with comments, CDATA, an XML declaration, namespaces and character references', async () => {
    for (const configXml of [
      '<?xml version="1.0" encoding="UTF-8"?>\n<!-- a classifier -->\n<View><Image name="i" value="$image"/></View>',
      '<View><Text name="t" value="$text"/><![CDATA[ <b>not markup</b> & raw ]]><Header value="Caf&#233; &amp; &lt;b&gt;"/></View>',
      '<View xmlns:lf="urn:labelfleet"><lf:note/><Audio name="a" value="$audio"/></View>',
      '<View><image name="i" value="$image"/></View>',
    ]) {
      const res = await t.json('POST', '/api/labeling-configs', { name: 'variant', configXml });
      expect(res.status, `${configXml}: ${JSON.stringify(res.body)}`).toBe(201);
      expect(res.body.configXml).toBe(configXml);
    }
  });

  it('stores the XML exactly as sent and accepts a 50000-character config', async () => {
    const head = '<View><Image name="i" value="$image"/>';
    const tail = '</View>';
    const filler = '<!--' + 'x'.repeat(50_000 - head.length - tail.length - 7) + '-->';
    const configXml = head + filler + tail;
    expect(configXml.length).toBe(50_000);
    const res = await t.json('POST', '/api/labeling-configs', { name: 'big', configXml });
    expect(res.status).toBe(201);
    expect((await t.json('GET', `/api/labeling-configs/${res.body.id}`)).body.configXml).toBe(configXml);
  });

  it('lets a locked config change its name and description, and take the identical XML', async () => {
    const { id } = await createConfig({ name: 'locked' });
    await addGoldTask(id);
    const res = await t.json('PUT', `/api/labeling-configs/${id}`, { name: 'still locked', description: 'd', configXml: XML });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: 'still locked', description: 'd', configXml: XML, isLocked: true });
  });
});

describe('labeling configs: validation errors', () => {
  it('rejects bad fields with 400 in the documented shape', async () => {
    for (const body of [
      {},
      { name: 'x' },
      { configXml: XML },
      { name: '', configXml: XML },
      { name: '   ', configXml: XML },
      { name: 'n'.repeat(101), configXml: XML },
      { name: 'ok', configXml: XML, description: 'd'.repeat(501) },
      { name: 'ok', configXml: 42 },
      { name: 42, configXml: XML },
      { name: 'ok', configXml: XML, extra: true },
      { name: 'a\u0000b', configXml: XML },
      { name: 'ok', configXml: XML, description: 'nul\u0000' },
    ]) {
      const res = await t.json('POST', '/api/labeling-configs', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toBe('Validation failed');
      expect(Array.isArray(res.body.details)).toBe(true);
    }
  });

  it('rejects malformed JSON and a body that is not an object', async () => {
    expect((await t.json('POST', '/api/labeling-configs', '{"name":')).status).toBe(400);
    expect((await t.json('POST', '/api/labeling-configs', '[1]')).status).toBe(400);
  });

  it('rejects configXml over 50000 characters', async () => {
    const configXml = '<View><Image name="i" value="$i"/>' + ' '.repeat(50_000) + '</View>';
    const res = await t.json('POST', '/api/labeling-configs', { name: 'huge', configXml });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body.details)).toContain('configXml: must be at most 50000 characters');
  });

  it.each([
    ['malformed XML', '<View><Image name="i" value="$i"></View>', /^configXml: malformed XML: closing tag <\/View> does not match <Image>/],
    ['unclosed root', '<View><Image name="i" value="$i"/>', /^configXml: malformed XML: <View> is never closed/],
    ['not XML at all', 'just text', /^configXml: malformed XML/],
    ['empty', '', /^configXml: must not be empty/],
    ['two roots', '<View><Image name="i" value="$i"/></View><View/>', /^configXml: malformed XML: more than one root element/],
    ['wrong root', '<Config><Image name="i" value="$i"/></Config>', /^configXml: root element must be <View> \(found <Config>\)$/],
    ['prefixed root', '<x:View xmlns:x="urn:x"><Image name="i" value="$i"/></x:View>', /^configXml: root element must be <View>/],
    ['no object tag', '<View><Header value="hi"/><Choices name="c" toName="c2"/><View name="c2"/></View>', /^configXml: must contain at least one Label Studio object tag/],
    ['undefined entity', '<View><Image name="i" value="&img;"/></View>', /^configXml: malformed XML: undefined entity &img;/],
    ['bare ampersand', '<View><Text name="t" value="$t"/>fish & chips</View>', /^configXml: malformed XML: '&' must be escaped/],
    ['duplicate names', '<View><Image name="i" value="$a"/><Image name="i" value="$b"/></View>', /^configXml: name "i" is used by more than one tag/],
    ['dangling toName', '<View><Image name="i" value="$a"/><Choices name="c" toName="img"/></View>', /^configXml: <Choices name="c"> has toName="img", but no tag is named "img"$/],
  ])('answers 400 with a clear message for %s', async (_label, configXml, message) => {
    const res = await t.json('POST', '/api/labeling-configs', { name: 'bad', configXml });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(message);
    expect(res.body.details[0].path).toEqual(['configXml']);
  });

  it('reports where in the document malformed XML is', async () => {
    const res = await t.json('POST', '/api/labeling-configs', { name: 'bad', configXml: '<View>\n  <Image name="i" value="$i">\n</View>' });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/\(line 3, column 1\)$/);
    expect(res.body.details[0]).toMatchObject({ path: ['configXml'], line: 3, column: 1 });
  });

  it('refuses DOCTYPE and ENTITY declarations (billion laughs, external entities) without expanding them', async () => {
    const attacks = [
      '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n]>\n<View><Text name="t" value="&lol3;"/></View>',
      '<!DOCTYPE View [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><View><Text name="t" value="$t"/>&xxe;</View>',
      '<!DOCTYPE View SYSTEM "http://127.0.0.1:1/evil.dtd"><View><Image name="i" value="$i"/></View>',
      '<View><!ENTITY x "y"><Image name="i" value="$i"/></View>',
    ];
    for (const configXml of attacks) {
      const res = await t.json('POST', '/api/labeling-configs', { name: 'attack', configXml });
      expect(res.status, configXml).toBe(400);
      expect(res.body.error).toMatch(/^configXml: DOCTYPE and ENTITY declarations are not allowed: .*entity/);
    }
    const { n } = await t.db
      .selectFrom('labelingConfigs')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('name', '=', 'attack')
      .executeTakeFirstOrThrow();
    expect(Number(n)).toBe(0);
  });

  it('validates the XML on update too and leaves the stored config unchanged', async () => {
    const { id } = await createConfig({ name: 'keep' });
    const res = await t.json('PUT', `/api/labeling-configs/${id}`, { configXml: '<Root/>' });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/^configXml: root element must be <View>/);
    expect((await t.json('GET', `/api/labeling-configs/${id}`)).body.configXml).toBe(XML);
  });

  it('rejects empty and unknown-field updates', async () => {
    const { id } = await createConfig({ name: 'upd' });
    expect((await t.json('PUT', `/api/labeling-configs/${id}`, {})).status).toBe(400);
    expect((await t.json('PUT', `/api/labeling-configs/${id}`, { nope: 1 })).status).toBe(400);
    expect((await t.json('PUT', `/api/labeling-configs/${id}`, { name: '' })).status).toBe(400);
  });

  it('answers 400 for ids that are not positive integers and 404 for missing ones', async () => {
    for (const id of ['abc', '0', '-1', '1.5', '99999999999']) {
      expect((await t.json('GET', `/api/labeling-configs/${id}`)).status, id).toBe(400);
      expect((await t.json('PUT', `/api/labeling-configs/${id}`, { name: 'x' })).status, id).toBe(400);
      expect((await t.json('DELETE', `/api/labeling-configs/${id}`)).status, id).toBe(400);
    }
    for (const [method, body] of [['GET'], ['PUT', { name: 'z' }], ['DELETE']] as const) {
      const res = await t.json(method, '/api/labeling-configs/424242', body);
      expect(res.status, method).toBe(404);
      expect(res.body).toEqual({ error: 'Labeling config not found' });
    }
  });

  it('validates limit and offset', async () => {
    for (const q of ['limit=0', 'limit=501', 'limit=abc', 'offset=-1', 'limit=1.5']) {
      expect((await t.json('GET', `/api/labeling-configs?${q}`)).status, q).toBe(400);
    }
  });
});

describe('labeling configs: conflicts', () => {
  it('answers 409 when configXml changes while gold tasks reference the config', async () => {
    const { id } = await createConfig({ name: 'gold-locked' });
    await addGoldTask(id);
    const res = await t.json('PUT', `/api/labeling-configs/${id}`, { name: 'new name', configXml: OTHER_XML });
    expect(res.status).toBe(409);
    expect(res.body).toEqual({ error: 'Cannot update configXml: gold tasks reference this labeling config', details: { goldTaskCount: 1 } });
    // Nothing changed, the name included.
    expect((await t.json('GET', `/api/labeling-configs/${id}`)).body).toMatchObject({ name: 'gold-locked', configXml: XML });
  });

  it('lets configXml change while only workflows use the config', async () => {
    const { id } = await createConfig({ name: 'wf-used' });
    await addWorkflow(id);
    const res = await t.json('PUT', `/api/labeling-configs/${id}`, { configXml: OTHER_XML });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ configXml: OTHER_XML, workflowCount: 1, isLocked: false });
  });

  it('answers 409 on delete while workflows or gold tasks reference the config', async () => {
    const { id: byWorkflow } = await createConfig({ name: 'del-wf' });
    await addWorkflow(byWorkflow);
    const a = await t.json('DELETE', `/api/labeling-configs/${byWorkflow}`);
    expect(a.status).toBe(409);
    expect(a.body).toEqual({
      error: 'Cannot delete: labeling config is referenced by workflows or gold tasks',
      details: { workflowCount: 1, goldTaskCount: 0 },
    });

    const { id: byGold } = await createConfig({ name: 'del-gold' });
    await addGoldTask(byGold);
    const b = await t.json('DELETE', `/api/labeling-configs/${byGold}`);
    expect(b.status).toBe(409);
    expect(b.body.details).toEqual({ workflowCount: 0, goldTaskCount: 1 });

    for (const id of [byWorkflow, byGold]) expect((await t.json('GET', `/api/labeling-configs/${id}`)).status).toBe(200);
  });

  it('deletes once the references are gone', async () => {
    const { id } = await createConfig({ name: 'freed' });
    await addGoldTask(id);
    expect((await t.json('DELETE', `/api/labeling-configs/${id}`)).status).toBe(409);
    await t.db.deleteFrom('goldTasks').where('labelingConfigId', '=', id).execute();
    expect((await t.json('DELETE', `/api/labeling-configs/${id}`)).status).toBe(200);
  });
});

describe('labeling configs: security and documentation', () => {
  it('answers 401 without a session', async () => {
    const { id } = await createConfig({ name: 'private' });
    for (const [method, path, body] of [
      ['GET', '/api/labeling-configs'],
      ['POST', '/api/labeling-configs', { name: 'x', configXml: XML }],
      ['GET', `/api/labeling-configs/${id}`],
      ['PUT', `/api/labeling-configs/${id}`, { name: 'x' }],
      ['DELETE', `/api/labeling-configs/${id}`],
    ] as const) {
      const res = await t.anonymous.json(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.body).toEqual({ error: 'Unauthorized' });
    }
    expect((await t.json('GET', `/api/labeling-configs/${id}`)).body.name).toBe('private');
  });

  it('documents the routes in the OpenAPI document', async () => {
    const doc = await t.json('GET', '/api/openapi.json');
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/labeling-configs', '/api/labeling-configs/{id}']));
  });
});
