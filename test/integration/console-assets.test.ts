/**
 * The console's static assets over HTTP, as a browser or a proxy would fetch them: gzip only when
 * the request accepts gzip (a `q=0` refuses it), the same bytes either way, a 304 for the ETag the
 * browser already holds, cached as immutable, and a 404 for a name that is not in the bundle.
 */
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleAssets } from '../../src/console/assets.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let script = '';

beforeAll(async () => {
  t = await startTestService();
  script = (await consoleAssets()).script;
}, 120_000);

afterAll(async () => {
  await t?.close();
});

const get = (path: string, headers: Record<string, string>) => t.anonymous.request('GET', path, undefined, headers);

describe('console assets', () => {
  it('are gzip-compressed only for a request that accepts gzip, and the same script either way', async () => {
    const plain = await get(script, {});
    expect(plain.status).toBe(200);
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(plain.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(plain.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(plain.headers.get('vary')).toBe('Accept-Encoding');
    const body = Buffer.from(await plain.arrayBuffer());
    expect(body.length).toBeGreaterThan(1000);

    for (const accept of ['gzip', 'gzip, deflate, br', 'br;q=1, gzip;q=0.5', '*']) {
      const res = await get(script, { 'accept-encoding': accept });
      expect(res.headers.get('content-encoding'), accept).toBe('gzip');
      expect(gunzipSync(Buffer.from(await res.arrayBuffer())).equals(body), accept).toBe(true);
    }
    for (const accept of ['gzip;q=0', 'br', 'identity', '*;q=0', 'x-gzip-not, deflate']) {
      const res = await get(script, { 'accept-encoding': accept });
      expect(res.headers.get('content-encoding'), accept).toBeNull();
      expect(Buffer.from(await res.arrayBuffer()).equals(body), accept).toBe(true);
    }
  });

  it('answer 304 to the ETag the browser holds and 404 to a name not in the bundle', async () => {
    const etag = (await get(script, {})).headers.get('etag')!;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{22}"$/);
    const again = await get(script, { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    const missing = await get('/console/assets/app-0000000000.js', {});
    expect(missing.status).toBe(404);
  });
});
