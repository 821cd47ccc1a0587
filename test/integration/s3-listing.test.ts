/**
 * Listings never lose data: a store that answers IsTruncated=true without a NextContinuationToken.
 * moto paginates correctly (its path is covered in s3-catalog.test.ts) and no such store can be
 * installed here, so this file runs a tiny S3-compatible endpoint on 127.0.0.1 that answers
 * ListObjectsV2 the way those stores do: at most PAGE keys per page, IsTruncated, no token.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListingIncomplete, Storage } from '../../src/storage/s3.ts';
import { syncCatalog } from '../../src/workflows/catalog.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.AWS_ACCESS_KEY_ID = 'test';
process.env.AWS_SECRET_ACCESS_KEY = 'test';

const PAGE = 10;
const BUCKET = 'tokenless';
/** 'tokenless': honours start-after, never sends a token. 'stuck': also ignores start-after. */
let mode: 'tokenless' | 'stuck' = 'tokenless';
let stored: string[] = [];
let requests: URLSearchParams[] = [];
let server: Server;
let storage: Storage;
let t: TestService;

const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function listObjectsV2(q: URLSearchParams): string {
  const prefix = q.get('prefix') ?? '';
  const startAfter = mode === 'stuck' ? '' : (q.get('start-after') ?? '');
  const max = Math.min(PAGE, Number(q.get('max-keys') ?? 1000));
  const keys = [...stored].sort(utf8Order).filter((k) => k.startsWith(prefix) && (!startAfter || utf8Order(k, startAfter) > 0));
  const page = keys.slice(0, max);
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
    `<Name>${BUCKET}</Name><Prefix>${xml(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>${max}</MaxKeys>` +
    `<IsTruncated>${keys.length > page.length}</IsTruncated>` +
    page
      .map((k) => `<Contents><Key>${xml(k)}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"e"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>`)
      .join('') +
    `</ListBucketResult>`
  );
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'GET' && url.pathname.replace(/\/+$/, '') === `/${BUCKET}` && url.searchParams.get('list-type') === '2') {
      requests.push(url.searchParams);
      res.writeHead(200, { 'content-type': 'application/xml' }).end(listObjectsV2(url.searchParams));
      return;
    }
    res.writeHead(501, { 'content-type': 'application/xml' }).end('<Error><Code>NotImplemented</Code><Message>only ListObjectsV2</Message></Error>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  storage = new Storage({ S3_ENDPOINT: `http://127.0.0.1:${port}`, S3_FORCE_PATH_STYLE: true, AWS_REGION: 'us-east-1' });
  t = await startTestService();
});
afterAll(async () => {
  await t?.close();
  await new Promise((resolve) => server?.close(resolve));
});

const names = (n: number, prefix = 'p/') => Array.from({ length: n }, (_, i) => `${prefix}img-${String(i).padStart(3, '0')}.png`);

describe('a store that omits NextContinuationToken', () => {
  it('is listed to the end by continuing with StartAfter, in UTF-8 key order', async () => {
    mode = 'tokenless';
    stored = [...names(23), 'p/é.png', 'p/😀.png', 'p/\uffef.png', 'p/a&b<c>.png'];
    requests = [];
    const seen: string[] = [];
    for await (const page of storage.list(BUCKET, 'p/')) seen.push(...page.map((o) => o.key));
    expect(seen).toEqual([...stored].sort(utf8Order));
    const sorted = [...stored].sort(utf8Order);
    expect(sorted.slice(-3)).toEqual(['p/é.png', 'p/\uffef.png', 'p/😀.png']); // UTF-16 order would put 😀 (D83D) before \uffef
    expect(requests.map((q) => q.get('start-after'))).toEqual([null, sorted[PAGE - 1], sorted[2 * PAGE - 1]]);
    expect(requests.every((q) => !q.has('continuation-token'))).toBe(true);

    const after: string[] = [];
    for await (const page of storage.list(BUCKET, 'p/', { startAfter: 'p/img-015.png' })) after.push(...page.map((o) => o.key));
    expect(after).toEqual([...stored].sort(utf8Order).filter((k) => utf8Order(k, 'p/img-015.png') > 0));
  });

  it('a full catalog sync sees every key, and marks gone exactly the removed ones', async () => {
    mode = 'tokenless';
    stored = names(35, 'c/');
    const wf = await t.db.insertInto('workflows').values({ name: 'tokenless', s3SourcePath: 'c/', s3ExportPath: 'x/' }).returning(['id', 's3SourcePath']).executeTakeFirstOrThrow();
    const deps = { database: t.database.handle, storage, bucket: BUCKET };
    expect(await syncCatalog(deps, wf)).toMatchObject({ mode: 'full', listed: 35, added: 35, gone: 0 });
    stored = stored.filter((_, i) => i % 7 !== 3); // 5 removed, spread over the pages
    expect(await syncCatalog(deps, wf, { full: true })).toMatchObject({ mode: 'full', listed: 30, added: 0, gone: 5 });
    const gone = await t.db.selectFrom('workItems').select('imageKey').where('workflowId', '=', wf.id).where('status', '=', 'gone').orderBy('imageKey').execute();
    expect(gone.map((r) => r.imageKey)).toEqual(['c/img-003.png', 'c/img-010.png', 'c/img-017.png', 'c/img-024.png', 'c/img-031.png']);
  });

  it('a listing that cannot move on fails with a recorded error and marks nothing gone', async () => {
    mode = 'tokenless';
    stored = names(25, 's/');
    const wf = await t.db.insertInto('workflows').values({ name: 'stuck', s3SourcePath: 's/', s3ExportPath: 'x/' }).returning(['id', 's3SourcePath']).executeTakeFirstOrThrow();
    const deps = { database: t.database.handle, storage, bucket: BUCKET };
    await syncCatalog(deps, wf);
    // Now the store ignores StartAfter too: every page is the first one, truncated, without a token.
    mode = 'stuck';
    await expect(syncCatalog(deps, wf, { full: true })).rejects.toBeInstanceOf(ListingIncomplete);
    const state = await t.db.selectFrom('catalogSyncs').selectAll().where('workflowId', '=', wf.id).executeTakeFirstOrThrow();
    expect(state.error).toMatch(/incomplete: the store answered IsTruncated=true without a NextContinuationToken/);
    const byStatus = await t.db.selectFrom('workItems').select('status').where('workflowId', '=', wf.id).execute();
    expect(byStatus.filter((r) => r.status === 'queued')).toHaveLength(25);
    // The store recovers: the next sync succeeds and clears the error.
    mode = 'tokenless';
    expect(await syncCatalog(deps, wf, { full: true })).toMatchObject({ listed: 25, gone: 0 });
    expect((await t.db.selectFrom('catalogSyncs').select('error').where('workflowId', '=', wf.id).executeTakeFirstOrThrow()).error).toBeNull();
  });
});
