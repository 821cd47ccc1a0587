/**
 * S3 storage and the incremental catalog, against moto (`npm run env:up`) and real PostgreSQL.
 */
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyProblem } from '../../src/domain/object-keys.ts';
import type { Storage } from '../../src/storage/s3.ts';
import { syncCatalog } from '../../src/workflows/catalog.ts';
import { createTestBucket, PNG_1PX } from '../helpers/s3.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let storage: Storage;
let bucket: string;

beforeAll(async () => {
  ({ storage, bucket } = await createTestBucket('lf-catalog'));
  t = await startTestService();
});
afterAll(async () => t?.close());

async function workflow(s3SourcePath: string) {
  return t.db
    .insertInto('workflows')
    .values({ name: `wf ${s3SourcePath}`, s3SourcePath, s3ExportPath: 'exports/' })
    .returning(['id', 's3SourcePath'])
    .executeTakeFirstOrThrow();
}

const deps = () => ({ database: t.database.handle, storage, bucket });

async function keys(workflowId: number, status?: string) {
  let q = t.db.selectFrom('workItems').select(['imageKey', 'status']).where('workflowId', '=', workflowId);
  if (status) q = q.where('status', '=', status as never);
  return (await q.orderBy('imageKey').execute()).map((r) => r.imageKey);
}

async function putKeys(prefix: string, names: string[]) {
  for (let i = 0; i < names.length; i += 50) {
    await Promise.all(names.slice(i, i + 50).map((n) => storage.put(bucket, `${prefix}${n}`, PNG_1PX, { contentType: 'image/png' })));
  }
}

describe('S3 storage', () => {
  it('puts, heads, gets, copies and lists with continuation', async () => {
    await storage.put(bucket, 'misc/a.json', '{"a":1}', { contentType: 'application/json', metadata: { sha256: 'abc' } });
    expect((await storage.get(bucket, 'misc/a.json'))!.toString()).toBe('{"a":1}');
    expect((await storage.head(bucket, 'misc/a.json'))!.metadata).toEqual({ sha256: 'abc' });
    expect(await storage.head(bucket, 'misc/missing.json')).toBeNull();
    expect(await storage.get(bucket, 'misc/missing.json')).toBeNull();
    await storage.copy({ bucket, key: 'misc/a.json' }, { bucket, key: 'misc/copy of a.json' });
    expect((await storage.get(bucket, 'misc/copy of a.json'))!.toString()).toBe('{"a":1}');

    const pages: number[] = [];
    for await (const page of storage.list(bucket, 'misc/', { pageSize: 1 })) pages.push(page.length);
    expect(pages).toEqual([1, 1]);
  });

  it('presigns GET URLs that load the image', async () => {
    await storage.put(bucket, 'img/with space+plus.png', PNG_1PX, { contentType: 'image/png' });
    const url = await storage.presignGet(bucket, 'img/with space+plus.png', 3600);
    expect(url.startsWith(`${process.env.AWS_ENDPOINT_URL ?? 'http://127.0.0.1:5055'}/${bucket}/img/with%20space%2Bplus.png?`)).toBe(true);
    expect(url).toContain('X-Amz-Signature=');
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(PNG_1PX)).toBe(true);
  });

  it('every key the catalog accepts is fetched byte-for-byte through its presigned URL', async () => {
    // Look-alike pairs sit next to each other, so a URL that reached the wrong one would show.
    const awkward = [
      'k/plain.png',
      'k/with space.png',
      'k/with%20space.png',
      'k/plus+sign.png',
      'k/plus sign.png',
      'k/percent%.png',
      'k/percent%25.png',
      'k/%zz.png',
      'k/%2e%2e/encoded-dots.png',
      'k/hash#frag.png',
      'k/hash',
      'k/question?q=1.png',
      'k/question',
      'k/back\\slash.png',
      'k/back/slash.png',
      'k//double.png',
      '/k/leading-slash.png',
      'k/leading-slash.png',
      'k/trailing-dot.',
      'k/trailing-dot',
      'k/...png',
      'k/.x/y.png',
      "k/~!$&'()*,;=:@.png",
      'k/é.png', // NFC
      'k/e\u0301.png', // NFD: another key
      'k/😀.png',
      'k/👨‍👩‍👧‍👦.png',
      'k/שלום.png',
      'k/\u200bzero-width.png',
      'k/中文.png',
    ];
    expect(awkward.filter((k) => keyProblem(k) !== null)).toEqual([]);
    const body = (i: number) => Buffer.concat([PNG_1PX, Buffer.from(`#${i}`)]);
    await Promise.all(awkward.map((k, i) => storage.put(bucket, k, body(i), { contentType: 'image/png' })));
    for (const [i, key] of awkward.entries()) {
      const res = await fetch(await storage.presignGet(bucket, key, 600));
      expect(res.status, key).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(body(i)), key).toBe(true);
    }
  });

  it('dot segments are why such keys are skipped: their presigned URL loads another object', async () => {
    await storage.put(bucket, 'dots/a/../b.png', 'the object named a/../b.png');
    await storage.put(bucket, 'dots/b.png', 'the object named b.png');
    await storage.put(bucket, 'dots/./c.png', 'the object named ./c.png');
    await storage.put(bucket, 'dots/c.png', 'the object named c.png');
    expect(keyProblem('dots/a/../b.png')).toBe('dot_segment');
    expect(await (await fetch(await storage.presignGet(bucket, 'dots/a/../b.png', 600))).text()).toBe('the object named b.png');
    expect(await (await fetch(await storage.presignGet(bucket, 'dots/./c.png', 600))).text()).toBe('the object named c.png');
  });
});

describe('catalog sync', () => {
  it('lists a prefix fully once, then only keys after the last one seen', async () => {
    const names = Array.from({ length: 2100 }, (_, i) => `img-${String(i).padStart(5, '0')}.png`);
    await putKeys('cat1/', names);
    await storage.put(bucket, 'cat1/0-folder/', '');
    await storage.put(bucket, 'cat1/.DS_Store', 'x');
    const wf = await workflow('cat1/');

    const first = await syncCatalog(deps(), wf);
    expect(first).toEqual({ workflowId: wf.id, mode: 'full', listed: 2102, added: 2100, gone: 0 });
    expect((await keys(wf.id)).length).toBe(2100);
    const state = await t.db.selectFrom('catalogSyncs').selectAll().where('workflowId', '=', wf.id).executeTakeFirstOrThrow();
    expect(state).toMatchObject({ bucket, prefix: 'cat1/', lastKey: 'cat1/img-02099.png', objectCount: 2100, error: null });

    // Within the interval nothing is listed; forced, only what sorts after the last key is listed.
    expect((await syncCatalog(deps(), wf)).mode).toBe('skipped');
    expect(await syncCatalog(deps(), wf, { force: true })).toMatchObject({ mode: 'incremental', listed: 0, added: 0 });
    await putKeys('cat1/', ['img-09000.png', 'img-09001.png']);
    expect(await syncCatalog(deps(), wf, { force: true })).toEqual({ workflowId: wf.id, mode: 'incremental', listed: 2, added: 2, gone: 0 });
    expect((await keys(wf.id)).length).toBe(2102);
  });

  it('finds mid-order additions and removals at the full resync', async () => {
    await putKeys('cat2/', ['b.png', 'd.png', 'f.png']);
    const wf = await workflow('/cat2/');
    await syncCatalog(deps(), wf);
    await putKeys('cat2/', ['c.png']);
    await storage.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'cat2/d.png' }));

    // An incremental listing starts after f.png: it cannot see c.png.
    expect(await syncCatalog(deps(), wf, { force: true })).toMatchObject({ mode: 'incremental', added: 0 });
    expect(await keys(wf.id, 'queued')).toEqual(['cat2/b.png', 'cat2/d.png', 'cat2/f.png']);

    // The full resync (here forced; normally every catalog.fullResyncMinutes) repairs both.
    expect(await syncCatalog(deps(), wf, { full: true })).toMatchObject({ mode: 'full', added: 1, gone: 1 });
    expect(await keys(wf.id, 'queued')).toEqual(['cat2/b.png', 'cat2/c.png', 'cat2/f.png']);
    expect(await keys(wf.id, 'gone')).toEqual(['cat2/d.png']);

    // A key that comes back is queued again; keys in a batch are never marked gone.
    await putKeys('cat2/', ['d.png']);
    await t.db.updateTable('workItems').set({ status: 'done' }).where('imageKey', '=', 'cat2/b.png').execute();
    await storage.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'cat2/b.png' }));
    expect(await syncCatalog(deps(), wf, { full: true })).toMatchObject({ added: 0, gone: 0 });
    expect(await keys(wf.id, 'queued')).toEqual(['cat2/c.png', 'cat2/d.png', 'cat2/f.png']);
    expect(await keys(wf.id, 'done')).toEqual(['cat2/b.png']);
  });

  it('runs a full resync when the interval has passed or the prefix changed', async () => {
    await putKeys('cat3/', ['a.png']);
    await putKeys('cat3b/', ['z.png']);
    const wf = await workflow('cat3/');
    const t0 = new Date();
    await syncCatalog(deps(), wf, { now: t0 });
    const later = new Date(t0.getTime() + 61 * 60_000);
    expect((await syncCatalog(deps(), wf, { now: later })).mode).toBe('full');

    await t.db.updateTable('workflows').set({ s3SourcePath: 'cat3b/' }).where('id', '=', wf.id).execute();
    const moved = await syncCatalog(deps(), { id: wf.id, s3SourcePath: 'cat3b/' }, { now: new Date(later.getTime() + 1000) });
    expect(moved).toMatchObject({ mode: 'full', added: 1, gone: 1 });
    expect(await keys(wf.id, 'queued')).toEqual(['cat3b/z.png']);
  });

  it('records a listing error on the sync state', async () => {
    const wf = await workflow('cat4/');
    await expect(syncCatalog({ ...deps(), bucket: 'lf-no-such-bucket-x' }, wf)).rejects.toThrow();
    const state = await t.db.selectFrom('catalogSyncs').selectAll().where('workflowId', '=', wf.id).executeTakeFirstOrThrow();
    expect(state.error).toMatch(/bucket/i);
  });
});
