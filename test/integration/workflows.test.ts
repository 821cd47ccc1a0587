import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
const wakes: string[] = [];
let roleId: number;
let configId: number;

beforeAll(async () => {
  t = await startTestService({ overrides: { wake: (reason: string) => void wakes.push(reason) } });
  roleId = (await t.db.insertInto('roles').values({ name: 'labeler', color: '#3B82F6' }).returning('id').executeTakeFirstOrThrow()).id;
  configId = (
    await t.db
      .insertInto('labelingConfigs')
      .values({ name: 'Image Classification', configXml: '<View><Image name="image" value="$image"/></View>' })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
});
afterAll(async () => t?.close());
beforeEach(() => {
  wakes.length = 0;
});

const minimal = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  s3SourcePath: 'images/',
  s3ExportPath: 'exports/',
  ...extra,
});

async function create(name: string, extra: Record<string, unknown> = {}) {
  const res = await t.json('POST', '/api/workflows', minimal(name, extra));
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: number; [k: string]: unknown };
}

const count = async () =>
  (await t.db.selectFrom('workflows').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow()).n;

let annotatorSeq = 0;
async function annotator() {
  annotatorSeq++;
  return (
    await t.db
      .insertInto('annotators')
      .values({ name: `A${annotatorSeq}`, email: `a${annotatorSeq}@x.io`, subdomain: `a${annotatorSeq}` })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
}

describe('workflows: create and read', () => {
  it('creates with the documented defaults and answers the reference shape', async () => {
    const res = await t.json('POST', '/api/workflows', minimal('Defaults'));
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.any(Number),
      name: 'Defaults',
      roleId: null,
      labelingConfigId: null,
      previousWorkflowId: null,
      s3SourcePath: 'images/',
      s3ExportPath: 'exports/',
      imagesPerProject: 100,
      maxProjects: null,
      estimatedTimeMinutes: null,
      autoAssign: true,
      goldStandardRate: 0,
      shuffleImages: true,
      isActive: true,
      totalImagesAvailable: 0,
      totalImagesAssigned: 0,
      rejectionMode: 'none',
      rejectionArchiveBucket: null,
      rejectionRouteWorkflowId: null,
      rejectionReturnToOriginal: false,
      rejectionFlagAnnotator: true,
      maxReworkIterations: null,
      // Issue 13 (new fields; the defaults keep one annotator per item, as before).
      overlap: 1,
      consensusThreshold: null,
      adjudicationWorkflowId: null,
      createdAt: expect.any(String),
      role: null,
      labelingConfig: null,
    });
    expect(Date.parse(res.body.createdAt)).not.toBeNaN();
    expect(wakes).toEqual([`workflow ${res.body.id} created`]);
    const { chain, ...plain } = (await t.json('GET', `/api/workflows/${res.body.id}`)).body;
    expect(plain).toEqual(res.body);
    expect(chain).toEqual([
      { id: res.body.id, name: 'Defaults', previousWorkflowId: null, isActive: true, depth: 0, relation: 'self', isTerminal: true },
    ]);
  });

  it('stores every field and nests role and labeling config', async () => {
    const upstream = await create('Upstream');
    const body = {
      name: 'Car Detection',
      roleId,
      labelingConfigId: configId,
      previousWorkflowId: upstream.id,
      s3SourcePath: 'images/cars/',
      s3ExportPath: 'exports/cars/',
      imagesPerProject: 10_000,
      maxProjects: 3,
      estimatedTimeMinutes: 0,
      autoAssign: false,
      goldStandardRate: 1,
      shuffleImages: false,
      rejectionMode: 'route_to_workflow',
      rejectionArchiveBucket: 's3://other-bucket/rejected/',
      rejectionRouteWorkflowId: upstream.id,
      rejectionReturnToOriginal: true,
      rejectionFlagAnnotator: false,
      maxReworkIterations: 0,
      overlap: 3,
      consensusThreshold: 0.75,
      adjudicationWorkflowId: upstream.id,
    };
    const res = await t.json('POST', '/api/workflows', body);
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      ...body,
      id: expect.any(Number),
      isActive: true,
      totalImagesAvailable: 0,
      totalImagesAssigned: 0,
      createdAt: expect.any(String),
      role: { id: roleId, name: 'labeler', color: '#3B82F6' },
      labelingConfig: { id: configId, name: 'Image Classification' },
    });
    const row = await t.db.selectFrom('workflows').selectAll().where('id', '=', res.body.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ goldStandardRate: 1, rejectionRouteWorkflowId: upstream.id, maxReworkIterations: 0 });
  });

  it('normalises S3 prefixes: trims, drops leading slashes; keeps the given trailing form', async () => {
    const w = await create('Paths', { s3SourcePath: '  /images/raw ', s3ExportPath: '//exports/x/' });
    expect(w).toMatchObject({ s3SourcePath: 'images/raw', s3ExportPath: 'exports/x/' });
  });

  it("archives rejections under <s3ExportPath>/rejected/ when mode is 'archive' and no location is given", async () => {
    expect(await create('Arch1', { rejectionMode: 'archive', s3ExportPath: 'out' })).toMatchObject({
      rejectionMode: 'archive',
      rejectionArchiveBucket: 'out/rejected/',
    });
    expect(await create('Arch2', { rejectionMode: 'archive', rejectionArchiveBucket: 'S3://arch-ive.bucket/p/' })).toMatchObject({
      rejectionArchiveBucket: 's3://arch-ive.bucket/p/',
    });
    expect(await create('Arch3', { rejectionMode: 'archive', rejectionArchiveBucket: '/same-bucket/prefix/' })).toMatchObject({
      rejectionArchiveBucket: 'same-bucket/prefix/',
    });
  });

  it('404s a missing workflow and 400s ids that are not positive integers', async () => {
    expect((await t.json('GET', '/api/workflows/424242')).status).toBe(404);
    expect((await t.json('GET', '/api/workflows/424242')).body).toEqual({ error: 'Workflow not found' });
    for (const id of ['abc', '0', '-1', '1.5', '99999999999']) {
      expect((await t.json('GET', `/api/workflows/${id}`)).status, id).toBe(400);
      expect((await t.json('PUT', `/api/workflows/${id}`, { name: 'x' })).status, id).toBe(400);
      expect((await t.json('DELETE', `/api/workflows/${id}`)).status, id).toBe(400);
    }
  });
});

describe('workflows: create validation', () => {
  it('rejects every out-of-bounds field with 400 and creates nothing', async () => {
    const before = await count();
    const bad: Record<string, unknown>[] = [
      {},
      { name: 'x', s3SourcePath: 'a/' },
      { name: 'x', s3ExportPath: 'a/' },
      minimal(''),
      minimal('   '),
      minimal('x'.repeat(256)),
      minimal('x', { s3SourcePath: '' }),
      minimal('x', { s3SourcePath: '/' }),
      minimal('x', { s3ExportPath: '   ' }),
      minimal('x', { s3SourcePath: 's3://bucket/images/' }),
      minimal('x', { s3ExportPath: 'S3://bucket/out/' }),
      minimal('x', { s3SourcePath: 'a'.repeat(1025) }),
      minimal('x', { s3SourcePath: 'bad\nkey/' }),
      minimal('x', { s3SourcePath: 5 }),
      minimal('x', { imagesPerProject: 0 }),
      minimal('x', { imagesPerProject: 10_001 }),
      minimal('x', { imagesPerProject: 1.5 }),
      minimal('x', { imagesPerProject: null }),
      minimal('x', { imagesPerProject: '100' }),
      minimal('x', { maxProjects: 0 }),
      minimal('x', { estimatedTimeMinutes: -1 }),
      minimal('x', { goldStandardRate: 1.01 }),
      minimal('x', { goldStandardRate: -0.1 }),
      minimal('x', { autoAssign: 'yes' }),
      minimal('x', { shuffleImages: null }),
      minimal('x', { rejectionMode: 'delete' }),
      minimal('x', { rejectionArchiveBucket: '' }),
      minimal('x', { rejectionArchiveBucket: 's3://B/x' }),
      minimal('x', { rejectionArchiveBucket: 's3://' }),
      minimal('x', { rejectionArchiveBucket: 'a'.repeat(1025) }),
      minimal('x', { maxReworkIterations: -1 }),
      minimal('x', { maxReworkIterations: 1.5 }),
      minimal('x', { roleId: 0 }),
      minimal('x', { roleId: '1' }),
      minimal('x', { previousWorkflowId: -1 }),
      minimal('x', { labelingConfigId: 2_147_483_648 }),
      minimal('x', { isActive: false }),
      minimal('x', { totalImagesAvailable: 5 }),
      minimal('x', { extra: 1 }),
      // Overlap (issue 13): 1–10 distinct annotators per item; threshold 0–1.
      minimal('x', { overlap: 0 }),
      minimal('x', { overlap: 11 }),
      minimal('x', { overlap: 2.5 }),
      minimal('x', { overlap: null }),
      minimal('x', { overlap: '3' }),
      minimal('x', { consensusThreshold: -0.01 }),
      minimal('x', { consensusThreshold: 1.5 }),
      minimal('x', { consensusThreshold: '0.5' }),
      minimal('x', { adjudicationWorkflowId: 0 }),
    ];
    for (const body of bad) {
      const res = await t.json('POST', '/api/workflows', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error, JSON.stringify(body)).toMatch(/^Validation failed/);
      expect(Array.isArray(res.body.details), JSON.stringify(body)).toBe(true);
    }
    expect(await count()).toBe(before);
    expect(wakes).toEqual([]);
  });

  it('answers malformed JSON with 400', async () => {
    const res = await t.json('POST', '/api/workflows', '{"name":');
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/json/i);
  });

  it('accepts the bounds themselves', async () => {
    await create('b'.repeat(255), {
      imagesPerProject: 1,
      maxProjects: 1,
      goldStandardRate: 0,
      s3SourcePath: 'a'.repeat(1024),
      maxReworkIterations: null,
      estimatedTimeMinutes: null,
      roleId: null,
    });
  });

  it('400s references that do not exist, naming the field', async () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['roleId', { roleId: 9999 }, /roleId: role 9999 does not exist/],
      ['labelingConfigId', { labelingConfigId: 9999 }, /labelingConfigId: labeling config 9999 does not exist/],
      ['previousWorkflowId', { previousWorkflowId: 9999 }, /previousWorkflowId: workflow 9999 does not exist/],
      [
        'rejectionRouteWorkflowId',
        { rejectionMode: 'route_to_workflow', rejectionRouteWorkflowId: 9999 },
        /rejectionRouteWorkflowId: workflow 9999 does not exist/,
      ],
      [
        'adjudicationWorkflowId',
        { overlap: 2, consensusThreshold: 0.5, adjudicationWorkflowId: 9999 },
        /adjudicationWorkflowId: workflow 9999 does not exist/,
      ],
    ];
    const before = await count();
    for (const [field, extra, message] of cases) {
      const res = await t.json('POST', '/api/workflows', minimal('ref', extra));
      expect(res.status, field).toBe(400);
      expect(res.body.error).toMatch(message);
      expect(res.body.details).toEqual([{ code: 'custom', path: [field], message: expect.stringContaining('9999') }]);
    }
    // Several at once are all reported.
    const many = await t.json('POST', '/api/workflows', minimal('ref', { roleId: 9999, labelingConfigId: 9998 }));
    expect(many.body.details.map((d: { path: string[] }) => d.path[0])).toEqual(['roleId', 'labelingConfigId']);
    expect(await count()).toBe(before);
  });

  it('requires consensusThreshold with adjudicationWorkflowId, and no workflow adjudicates itself', async () => {
    const target = await create('Adjudication');
    const res = await t.json('POST', '/api/workflows', minimal('adj', { overlap: 3, adjudicationWorkflowId: target.id }));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('Validation failed: consensusThreshold: is required when adjudicationWorkflowId is set (items below it are adjudicated)');
    const own = await t.json('PUT', `/api/workflows/${target.id}`, { consensusThreshold: 0.5, adjudicationWorkflowId: target.id });
    expect(own.status).toBe(400);
    expect(own.body.details[0].path).toEqual(['adjudicationWorkflowId']);
    const ok = await t.json('PUT', `/api/workflows/${target.id}`, { overlap: 10, consensusThreshold: 1 });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ overlap: 10, consensusThreshold: 1, adjudicationWorkflowId: null });
  });

  it("requires rejectionRouteWorkflowId when rejectionMode is 'route_to_workflow'", async () => {
    for (const extra of [{ rejectionMode: 'route_to_workflow' }, { rejectionMode: 'route_to_workflow', rejectionRouteWorkflowId: null }]) {
      const res = await t.json('POST', '/api/workflows', minimal('route', extra));
      expect(res.status).toBe(400);
      expect(res.body.error).toBe("Validation failed: rejectionRouteWorkflowId: is required when rejectionMode is 'route_to_workflow'");
      expect(res.body.details[0].path).toEqual(['rejectionRouteWorkflowId']);
    }
  });
});

describe('workflows: list', () => {
  it('returns a bare array with X-Total-Count, pages, and filters by role, config, previous and isActive', async () => {
    const other = (await t.db.insertInto('roles').values({ name: 'reviewer' }).returning('id').executeTakeFirstOrThrow()).id;
    const a = await create('L-a', { roleId: other });
    const b = await create('L-b', { roleId: other, previousWorkflowId: a.id });
    const c = await create('L-c', { roleId: other, labelingConfigId: configId });
    await t.json('PUT', `/api/workflows/${c.id}`, { isActive: false });

    const all = await t.json('GET', '/api/workflows');
    expect(all.status).toBe(200);
    expect(Array.isArray(all.body)).toBe(true);
    expect(all.headers.get('x-total-count')).toBe(String(await count()));
    const ids = all.body.map((w: { id: number }) => w.id);
    expect(ids).toEqual([...ids].sort((x, y) => x - y));

    const byRole = await t.json('GET', `/api/workflows?roleId=${other}`);
    expect(byRole.body.map((w: { name: string }) => w.name)).toEqual(['L-a', 'L-b', 'L-c']);
    expect(byRole.body[0].role).toEqual({ id: other, name: 'reviewer', color: null });
    expect(byRole.headers.get('x-total-count')).toBe('3');

    const page = await t.json('GET', `/api/workflows?roleId=${other}&limit=1&offset=1`);
    expect(page.body.map((w: { name: string }) => w.name)).toEqual(['L-b']);
    expect(page.headers.get('x-total-count')).toBe('3');

    const paused = await t.json('GET', `/api/workflows?roleId=${other}&isActive=false`);
    expect(paused.body.map((w: { id: number }) => w.id)).toEqual([c.id]);
    const running = await t.json('GET', `/api/workflows?roleId=${other}&isActive=true`);
    expect(running.body.map((w: { id: number }) => w.id)).toEqual([a.id, b.id]);
    expect(running.headers.get('x-total-count')).toBe('2');

    expect((await t.json('GET', `/api/workflows?previousWorkflowId=${a.id}`)).body.map((w: { id: number }) => w.id)).toEqual([b.id]);
    const byConfig = await t.json('GET', `/api/workflows?labelingConfigId=${configId}&roleId=${other}`);
    expect(byConfig.body.map((w: { id: number }) => w.id)).toEqual([c.id]);
    expect(byConfig.body[0].labelingConfig).toEqual({ id: configId, name: 'Image Classification' });

    expect((await t.json('GET', '/api/workflows?roleId=424242')).body).toEqual([]);
  });

  it('validates pagination and filters', async () => {
    for (const q of ['limit=0', 'limit=501', 'offset=-1', 'roleId=abc', 'roleId=0', 'isActive=yes', 'isActive=1', 'previousWorkflowId=-2', 'labelingConfigId=1.5']) {
      const res = await t.json('GET', `/api/workflows?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error, q).toBe('Validation failed');
    }
  });
});

describe('workflows: chains', () => {
  it('GET /:id traces origin → self → downstream tree, branches included, other branches left out', async () => {
    const a = await create('C-a');
    const b = await create('C-b', { previousWorkflowId: a.id });
    const side = await create('C-side', { previousWorkflowId: a.id });
    const c1 = await create('C-c1', { previousWorkflowId: b.id });
    const c2 = await create('C-c2', { previousWorkflowId: b.id });
    const d = await create('C-d', { previousWorkflowId: c2.id });
    await t.json('PUT', `/api/workflows/${c1.id}`, { isActive: false });

    const res = await t.json('GET', `/api/workflows/${b.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: b.id, name: 'C-b', previousWorkflowId: a.id });
    expect(res.body.chain).toEqual([
      { id: a.id, name: 'C-a', previousWorkflowId: null, isActive: true, depth: 0, relation: 'ancestor', isTerminal: false },
      { id: b.id, name: 'C-b', previousWorkflowId: a.id, isActive: true, depth: 1, relation: 'self', isTerminal: false },
      { id: c1.id, name: 'C-c1', previousWorkflowId: b.id, isActive: false, depth: 2, relation: 'descendant', isTerminal: true },
      { id: c2.id, name: 'C-c2', previousWorkflowId: b.id, isActive: true, depth: 2, relation: 'descendant', isTerminal: false },
      { id: d.id, name: 'C-d', previousWorkflowId: c2.id, isActive: true, depth: 3, relation: 'descendant', isTerminal: true },
    ]);
    const fromD = (await t.json('GET', `/api/workflows/${d.id}`)).body.chain;
    expect(fromD.map((e: { id: number }) => e.id)).toEqual([a.id, b.id, c2.id, d.id]);
    const fromA = (await t.json('GET', `/api/workflows/${a.id}`)).body.chain;
    expect(fromA.map((e: { id: number }) => e.id)).toEqual([a.id, b.id, side.id, c1.id, c2.id, d.id]);
  });

  it('PUT refuses a previousWorkflowId that is itself or makes the chain a cycle, and changes nothing', async () => {
    const a = await create('Y-a');
    const b = await create('Y-b', { previousWorkflowId: a.id });
    const c = await create('Y-c', { previousWorkflowId: b.id });
    wakes.length = 0;

    const self = await t.json('PUT', `/api/workflows/${a.id}`, { previousWorkflowId: a.id });
    expect(self.status).toBe(400);
    expect(self.body.error).toMatch(/previousWorkflowId: a workflow cannot be its own previous workflow/);

    const loop = await t.json('PUT', `/api/workflows/${a.id}`, { previousWorkflowId: c.id, name: 'renamed' });
    expect(loop.status).toBe(400);
    expect(loop.body.error).toContain(`previousWorkflowId: workflow ${c.id} is downstream of workflow ${a.id}`);
    expect(loop.body.error).toContain(`(${a.id} → ${c.id} → ${b.id} → ${a.id})`);
    expect(loop.body.details).toEqual([{ code: 'custom', path: ['previousWorkflowId'], message: expect.any(String) }]);

    const short = await t.json('PUT', `/api/workflows/${b.id}`, { previousWorkflowId: c.id });
    expect(short.status).toBe(400);

    const stored = await t.db.selectFrom('workflows').select(['id', 'name', 'previousWorkflowId']).where('id', 'in', [a.id, b.id]).orderBy('id').execute();
    expect(stored).toEqual([
      { id: a.id, name: 'Y-a', previousWorkflowId: null },
      { id: b.id, name: 'Y-b', previousWorkflowId: a.id },
    ]);
    expect(wakes).toEqual([]);

    // Relinking that stays acyclic is fine: move c under a, then re-point a's origin elsewhere.
    const moved = await t.json('PUT', `/api/workflows/${c.id}`, { previousWorkflowId: a.id });
    expect(moved.status).toBe(200);
    expect(moved.body.previousWorkflowId).toBe(a.id);
    const root = await create('Y-root');
    expect((await t.json('PUT', `/api/workflows/${a.id}`, { previousWorkflowId: root.id })).body.previousWorkflowId).toBe(root.id);
    // Now b's downstream is empty, so b may go below c.
    expect((await t.json('PUT', `/api/workflows/${b.id}`, { previousWorkflowId: c.id })).status).toBe(200);
    expect((await t.json('PUT', `/api/workflows/${root.id}`, { previousWorkflowId: b.id })).status).toBe(400);
    // Unlinking is always fine.
    expect((await t.json('PUT', `/api/workflows/${a.id}`, { previousWorkflowId: null })).body.previousWorkflowId).toBeNull();
  });

  it('refuses cycles through a long chain', async () => {
    const ids: number[] = [];
    const bulk = await t.json('POST', '/api/workflows/bulk', {
      workflows: Array.from({ length: 50 }, (_, i) => minimal(`Long-${i}`)),
    });
    expect(bulk.status).toBe(201);
    for (const w of bulk.body.workflows) ids.push(w.id);
    for (let i = 1; i < ids.length; i++) {
      expect((await t.json('PUT', `/api/workflows/${ids[i]}`, { previousWorkflowId: ids[i - 1] })).status).toBe(200);
    }
    const res = await t.json('PUT', `/api/workflows/${ids[0]}`, { previousWorkflowId: ids.at(-1) });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/cycle/);
    const chain = (await t.json('GET', `/api/workflows/${ids[0]}`)).body.chain;
    expect(chain).toHaveLength(50);
    expect(chain.at(-1)).toMatchObject({ id: ids.at(-1), depth: 49, isTerminal: true });
  });

  it('allows rejection routes back upstream (rework loops) but not to the workflow itself', async () => {
    const label = await create('R-label');
    const review = await create('R-review', {
      previousWorkflowId: label.id,
      rejectionMode: 'route_to_workflow',
      rejectionRouteWorkflowId: label.id,
    });
    expect(review.rejectionRouteWorkflowId).toBe(label.id);
    // The upstream workflow may route back down too: rejection routes are not a chain.
    const loop = await t.json('PUT', `/api/workflows/${label.id}`, {
      rejectionMode: 'route_to_workflow',
      rejectionRouteWorkflowId: review.id,
    });
    expect(loop.status).toBe(200);

    const self = await t.json('PUT', `/api/workflows/${review.id}`, { rejectionRouteWorkflowId: review.id });
    expect(self.status).toBe(400);
    expect(self.body.error).toMatch(/rejectionRouteWorkflowId: a workflow cannot route rejections to itself/);
  });
});

describe('workflows: update', () => {
  it('updates any field, keeps the rest, and wakes the reconciler', async () => {
    const w = await create('U-1');
    wakes.length = 0;
    const res = await t.json('PUT', `/api/workflows/${w.id}`, {
      name: ' U-renamed ',
      roleId,
      labelingConfigId: configId,
      imagesPerProject: 5,
      goldStandardRate: 0.25,
      s3SourcePath: '/new/src/',
      maxProjects: null,
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      ...w,
      name: 'U-renamed',
      roleId,
      labelingConfigId: configId,
      imagesPerProject: 5,
      goldStandardRate: 0.25,
      s3SourcePath: 'new/src/',
      role: { id: roleId, name: 'labeler', color: '#3B82F6' },
      labelingConfig: { id: configId, name: 'Image Classification' },
    });
    expect(wakes).toEqual([`workflow ${w.id} updated`]);
    const cleared = await t.json('PUT', `/api/workflows/${w.id}`, { roleId: null, labelingConfigId: null });
    expect(cleared.body).toMatchObject({ roleId: null, role: null, labelingConfigId: null, labelingConfig: null });
  });

  it('pauses and resumes with isActive', async () => {
    const w = await create('U-pause');
    wakes.length = 0;
    const paused = await t.json('PUT', `/api/workflows/${w.id}`, { isActive: false });
    expect(paused.body.isActive).toBe(false);
    expect((await t.db.selectFrom('workflows').select('isActive').where('id', '=', w.id).executeTakeFirstOrThrow()).isActive).toBe(false);
    const resumed = await t.json('PUT', `/api/workflows/${w.id}`, { isActive: true });
    expect(resumed.body.isActive).toBe(true);
    expect(wakes).toEqual([`workflow ${w.id} paused`, `workflow ${w.id} resumed`]);
    expect((await t.json('PUT', `/api/workflows/${w.id}`, { isActive: 'no' })).status).toBe(400);
  });

  it('checks cross-field rules on the merged result', async () => {
    const target = await create('U-target');
    const w = await create('U-merge');
    const noRoute = await t.json('PUT', `/api/workflows/${w.id}`, { rejectionMode: 'route_to_workflow' });
    expect(noRoute.status).toBe(400);
    expect(noRoute.body.error).toMatch(/rejectionRouteWorkflowId: is required/);

    // Setting the route first, then the mode, is fine; so is both at once.
    expect((await t.json('PUT', `/api/workflows/${w.id}`, { rejectionRouteWorkflowId: target.id })).body.rejectionMode).toBe('none');
    expect((await t.json('PUT', `/api/workflows/${w.id}`, { rejectionMode: 'route_to_workflow' })).body).toMatchObject({
      rejectionMode: 'route_to_workflow',
      rejectionRouteWorkflowId: target.id,
    });
    // Clearing the route while still routing is refused.
    const clear = await t.json('PUT', `/api/workflows/${w.id}`, { rejectionRouteWorkflowId: null });
    expect(clear.status).toBe(400);
    // Switching to archive defaults the archive location from the (merged) export path.
    const archived = await t.json('PUT', `/api/workflows/${w.id}`, { rejectionMode: 'archive', s3ExportPath: 'done/' });
    expect(archived.body).toMatchObject({ rejectionMode: 'archive', rejectionArchiveBucket: 'done/rejected/', rejectionRouteWorkflowId: target.id });
    const explicit = await t.json('PUT', `/api/workflows/${w.id}`, { rejectionArchiveBucket: 's3://arch/x/' });
    expect(explicit.body.rejectionArchiveBucket).toBe('s3://arch/x/');
  });

  it('400s empty bodies, unknown or read-only fields, bad values and missing references; 404s missing workflows', async () => {
    const w = await create('U-bad');
    for (const body of [
      {},
      { extra: 1 },
      { totalImagesAssigned: 3 },
      { createdAt: '2020-01-01T00:00:00Z' },
      { id: 5 },
      { name: '' },
      { imagesPerProject: 0 },
      { goldStandardRate: 2 },
      { s3ExportPath: 's3://b/x' },
      { rejectionMode: 'nope' },
    ]) {
      expect((await t.json('PUT', `/api/workflows/${w.id}`, body)).status, JSON.stringify(body)).toBe(400);
    }
    for (const field of ['roleId', 'labelingConfigId', 'previousWorkflowId', 'rejectionRouteWorkflowId']) {
      const res = await t.json('PUT', `/api/workflows/${w.id}`, { [field]: 777_777 });
      expect(res.status, field).toBe(400);
      expect(res.body.error).toContain(`${field}: `);
      expect(res.body.error).toContain('777777 does not exist');
    }
    expect((await t.json('GET', `/api/workflows/${w.id}`)).body).toMatchObject({ name: 'U-bad', roleId: null });
    expect((await t.json('PUT', '/api/workflows/424242', { name: 'z' })).status).toBe(404);
  });
});

describe('workflows: delete', () => {
  it('deletes an unused workflow and wakes the reconciler', async () => {
    const w = await create('D-1');
    wakes.length = 0;
    expect((await t.json('DELETE', `/api/workflows/${w.id}`)).body).toEqual({ success: true });
    expect((await t.json('GET', `/api/workflows/${w.id}`)).status).toBe(404);
    expect(wakes).toEqual([`workflow ${w.id} deleted`]);
    expect((await t.json('DELETE', `/api/workflows/${w.id}`)).status).toBe(404);
  });

  it('409s while other workflows chain from or route to it, or it has assignments', async () => {
    const up = await create('D-up');
    const down = await create('D-down', { previousWorkflowId: up.id });
    const res = await t.json('DELETE', `/api/workflows/${up.id}`);
    expect(res.status).toBe(409);
    expect(res.body.error).toBe(`Cannot delete: it is the previous workflow of workflow(s) ${down.id}`);
    expect(res.body.details).toEqual({ downstreamWorkflowIds: [down.id], routingWorkflowIds: [], assignments: 0, rejections: 0 });

    const target = await create('D-target');
    const router = await create('D-router', { rejectionMode: 'route_to_workflow', rejectionRouteWorkflowId: target.id });
    const routed = await t.json('DELETE', `/api/workflows/${target.id}`);
    expect(routed.status).toBe(409);
    expect(routed.body.error).toBe(`Cannot delete: workflow(s) ${router.id} route rejections to it`);

    const busy = await create('D-busy');
    const annotatorId = await annotator();
    await t.db.insertInto('assignments').values({ workflowId: busy.id, annotatorId, status: 'cancelled' }).execute();
    const withWork = await t.json('DELETE', `/api/workflows/${busy.id}`);
    expect(withWork.status).toBe(409);
    expect(withWork.body.error).toBe('Cannot delete: it has 1 assignment(s)');

    // Deleting in the right order works: downstream first, then upstream.
    expect((await t.json('DELETE', `/api/workflows/${down.id}`)).status).toBe(200);
    expect((await t.json('DELETE', `/api/workflows/${up.id}`)).status).toBe(200);
    expect((await t.json('GET', `/api/workflows/${busy.id}`)).status).toBe(200);
  });
});

describe('workflows: bulk create', () => {
  it('creates all, in order, and lets later items link to earlier ones (the reference example)', async () => {
    const { nextval } = (await sql<{ nextval: number }>`SELECT nextval('workflows_id_seq')::int AS nextval`.execute(t.db)).rows[0]!;
    const stage1 = nextval + 1;
    wakes.length = 0;
    const res = await t.json('POST', '/api/workflows/bulk', {
      workflows: [
        { name: 'Stage 1', s3SourcePath: 'data/', s3ExportPath: 'out/', roleId, labelingConfigId: configId },
        { name: 'Stage 2', s3SourcePath: 'data/', s3ExportPath: 'out/', previousWorkflowId: stage1, rejectionMode: 'route_to_workflow', rejectionRouteWorkflowId: stage1 },
      ],
    });
    expect(res.status).toBe(201);
    expect(res.body.created).toBe(2);
    expect(res.body.workflows).toHaveLength(2);
    expect(res.body.workflows[0]).toMatchObject({ id: stage1, name: 'Stage 1', role: { id: roleId }, labelingConfig: { id: configId }, imagesPerProject: 100 });
    expect(res.body.workflows[1]).toMatchObject({ name: 'Stage 2', previousWorkflowId: stage1, rejectionRouteWorkflowId: stage1 });
    expect((await t.json('GET', `/api/workflows/${res.body.workflows[1].id}`)).body).toMatchObject(res.body.workflows[1]);
    expect(wakes).toEqual([`workflows ${stage1}, ${stage1 + 1} created`]);
  });

  it('is all-or-nothing: a bad reference at any index creates nothing and names the index', async () => {
    const before = await count();
    const res = await t.json('POST', '/api/workflows/bulk', {
      workflows: [minimal('ok-0'), minimal('ok-1', { roleId }), minimal('bad-2', { labelingConfigId: 99_999 }), minimal('bad-3', { rejectionMode: 'route_to_workflow' })],
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe(
      "Validation failed: workflows[2].labelingConfigId: labeling config 99999 does not exist; workflows[3].rejectionRouteWorkflowId: is required when rejectionMode is 'route_to_workflow'",
    );
    expect(res.body.details.map((d: { path: unknown[] }) => d.path)).toEqual([
      ['workflows', 2, 'labelingConfigId'],
      ['workflows', 3, 'rejectionRouteWorkflowId'],
    ]);
    expect(await count()).toBe(before);
    expect(await t.db.selectFrom('workflows').select('id').where('name', 'in', ['ok-0', 'ok-1']).execute()).toEqual([]);
    expect(wakes).toEqual([]);
  });

  it('names the index of a schema error too, and creates nothing', async () => {
    const before = await count();
    const res = await t.json('POST', '/api/workflows/bulk', { workflows: [minimal('fine'), minimal('fine'), minimal('x', { imagesPerProject: 0 })] });
    expect(res.status).toBe(400);
    expect(res.body.details[0].path).toEqual(['workflows', 2, 'imagesPerProject']);
    expect(await count()).toBe(before);
  });

  it('accepts exactly 50 and refuses 51, an empty list, and malformed bodies', async () => {
    const before = await count();
    const over = await t.json('POST', '/api/workflows/bulk', { workflows: Array.from({ length: 51 }, (_, i) => minimal(`o${i}`)) });
    expect(over.status).toBe(400);
    expect(await count()).toBe(before);
    for (const body of [{ workflows: [] }, {}, { workflows: {} }, { workflows: [minimal('a')], extra: true }, [minimal('a')]]) {
      expect((await t.json('POST', '/api/workflows/bulk', body)).status, JSON.stringify(body)).toBe(400);
    }
    const fifty = await t.json('POST', '/api/workflows/bulk', { workflows: Array.from({ length: 50 }, (_, i) => minimal(`f${i}`)) });
    expect(fifty.status).toBe(201);
    expect(fifty.body.created).toBe(50);
    expect(await count()).toBe(before + 50);
  });
});

describe('workflows: graph', () => {
  it('answers nodes with stats, archive terminals and chain/rejection edges', async () => {
    // The graph covers every workflow in the database; the exact assertions are on the ones made here.
    const label = await create('G-label', { roleId });
    const review = await create('G-review', {
      previousWorkflowId: label.id,
      rejectionMode: 'route_to_workflow',
      rejectionRouteWorkflowId: label.id,
    });
    const qa = await create('G-qa', { previousWorkflowId: review.id, rejectionMode: 'archive' });
    await t.json('PUT', `/api/workflows/${qa.id}`, { isActive: false });
    // Overlap (issue 13): items below the threshold go to the adjudication workflow, its own edge type.
    const overlapped = await create('G-overlap', { overlap: 2, consensusThreshold: 0.8, adjudicationWorkflowId: qa.id });

    const [a1, a2, a3] = [await annotator(), await annotator(), await annotator()];
    const assign = (workflowId: number, annotatorId: number, status: 'pending' | 'in_progress' | 'completed' | 'failed', completedCount = 0) =>
      t.db.insertInto('assignments').values({ workflowId, annotatorId, status, completedCount }).returning('id').executeTakeFirstOrThrow();
    await assign(label.id, a1, 'completed', 40);
    await assign(label.id, a1, 'in_progress', 5);
    await assign(label.id, a1, 'pending');
    await assign(label.id, a2, 'pending');
    await assign(label.id, a3, 'failed');
    const r1 = await assign(review.id, a3, 'completed', 50);
    for (let i = 0; i < 6; i++) {
      await t.db
        .insertInto('rejections')
        .values({ workflowId: review.id, originalAnnotatorId: a1, reviewerAnnotatorId: a3, reviewerAssignmentId: r1.id, imageKey: `img/${i}.jpg`, actionTaken: 'route_to_workflow' })
        .execute();
    }

    const res = await t.json('GET', '/api/workflows/graph');
    expect(res.status).toBe(200);
    const nodes = res.body.nodes as { id: number | string; type: string }[];
    const byId = new Map(nodes.map((n) => [n.id, n]));
    expect(byId.get(label.id)).toEqual({
      id: label.id,
      name: 'G-label',
      type: 'workflow',
      roleId,
      roleName: 'labeler',
      roleColor: '#3B82F6',
      isActive: true,
      rejectionMode: 'none',
      stats: { totalAssignments: 5, completedAssignments: 1, activeAnnotators: 2, rejectionRate: 0 },
    });
    expect(byId.get(review.id)).toEqual({
      id: review.id,
      name: 'G-review',
      type: 'workflow',
      roleId: null,
      roleName: null,
      roleColor: null,
      isActive: true,
      rejectionMode: 'route_to_workflow',
      stats: { totalAssignments: 1, completedAssignments: 1, activeAnnotators: 0, rejectionRate: 0.12 },
    });
    expect(byId.get(qa.id)).toMatchObject({ isActive: false, rejectionMode: 'archive', stats: { totalAssignments: 0, rejectionRate: 0 } });
    expect(byId.get(`archive-${qa.id}`)).toEqual({ id: `archive-${qa.id}`, name: 'Archive', type: 'terminal' });

    // Every workflow is a node; terminals exist exactly for archive-mode workflows.
    const workflows = await t.db.selectFrom('workflows').select(['id', 'rejectionMode']).execute();
    expect(nodes.filter((n) => n.type === 'workflow')).toHaveLength(workflows.length);
    expect(nodes.filter((n) => n.type === 'terminal').map((n) => n.id).sort()).toEqual(
      workflows.filter((w) => w.rejectionMode === 'archive').map((w) => `archive-${w.id}`).sort(),
    );

    const mine = (res.body.edges as { source: number; target: number | string }[]).filter((e) =>
      [label.id, review.id, qa.id, overlapped.id].includes(e.source),
    );
    expect(mine).toEqual([
      { source: label.id, target: review.id, type: 'chain', label: 'accept' },
      { source: review.id, target: label.id, type: 'rejection', label: 'reject' },
      { source: review.id, target: qa.id, type: 'chain', label: 'accept' },
      { source: qa.id, target: `archive-${qa.id}`, type: 'rejection', label: 'reject' },
      { source: overlapped.id, target: qa.id, type: 'adjudication', label: 'adjudicate' },
    ]);
  });

  it('answers concurrent requests alike and includes writes made before them', async () => {
    // (Which computation a request may share is unit-tested with Coalesced; here: it works through HTTP.)
    const w = await create('G-concurrent');
    const all = await Promise.all(Array.from({ length: 8 }, () => t.json('GET', '/api/workflows/graph')));
    for (const res of all) {
      expect(res.status).toBe(200);
      expect(res.body).toEqual(all[0]!.body);
      expect(res.body.nodes.some((n: { id: number }) => n.id === w.id)).toBe(true);
    }
  });

  it('is not mistaken for an id and needs a session', async () => {
    expect((await t.json('GET', '/api/workflows/graph')).status).toBe(200);
    expect((await t.anonymous.json('GET', '/api/workflows/graph')).status).toBe(401);
  });
});

describe('workflows: security', () => {
  it('answers 401 without a session on every route and changes nothing', async () => {
    const w = await create('S-1');
    const before = await count();
    const calls: [string, string, unknown?][] = [
      ['GET', '/api/workflows'],
      ['POST', '/api/workflows', minimal('anon')],
      ['POST', '/api/workflows/bulk', { workflows: [minimal('anon')] }],
      ['GET', '/api/workflows/graph'],
      ['GET', `/api/workflows/${w.id}`],
      ['PUT', `/api/workflows/${w.id}`, { name: 'anon' }],
      ['DELETE', `/api/workflows/${w.id}`],
    ];
    for (const [method, path, body] of calls) {
      const res = await t.anonymous.json(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.body).toEqual({ error: 'Unauthorized' });
    }
    expect(await count()).toBe(before);
    expect((await t.json('GET', `/api/workflows/${w.id}`)).body.name).toBe('S-1');
  });

  it('documents its routes in the OpenAPI document', async () => {
    const doc = (await t.anonymous.json('GET', '/api/openapi.json')).body;
    for (const p of ['/api/workflows', '/api/workflows/bulk', '/api/workflows/graph', '/api/workflows/{id}']) {
      expect(Object.keys(doc.paths), p).toContain(p);
    }
  });

  it('documents rejectionArchiveBucket as nullable, as create and update accept it', async () => {
    const doc = (await t.anonymous.json('GET', '/api/openapi.json')).body;
    for (const name of ['CreateWorkflow', 'UpdateWorkflow']) {
      expect(doc.components.schemas[name].properties.rejectionArchiveBucket, name).toMatchObject({ type: ['string', 'null'], maxLength: 1024 });
    }
    const w = await create('ArchNull', { rejectionArchiveBucket: 's3://other-bucket/x/' });
    const res = await t.json('PUT', `/api/workflows/${w.id}`, { rejectionArchiveBucket: null });
    expect(res.status).toBe(200);
    expect(res.body.rejectionArchiveBucket).toBeNull();
  });
});
