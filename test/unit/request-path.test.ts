/** The request path's own pieces: the remembering router and the lazily made request logger. */
import { Writable } from 'node:stream';
import { TrieRouter } from 'hono/router/trie-router';
import { describe, expect, it } from 'vitest';
import { createLogger, lazyChild } from '../../src/logger.ts';
import { REMEMBERED_PATHS, RememberingRouter } from '../../src/api/router.ts';

const TABLE: Array<[string, string, string]> = [
  ['ALL', '*', 'every request'],
  ['ALL', '/api/*', 'api'],
  ['GET', '/api/workflows', 'list'],
  ['GET', '/api/workflows/graph', 'graph'],
  ['GET', '/api/workflows/:id', 'one'],
  ['PUT', '/api/workflows/:id', 'update'],
  ['GET', '/api/workflows/:id/export', 'export'],
];

/** What a match gives Hono: each handler with its parameters. */
const handlers = (r: { match(m: string, p: string): any }, method: string, path: string) =>
  (r.match(method, path)[0] as Array<[string, Record<string, string>]>).map(([h, params]) => `${h} ${JSON.stringify(params)}`);

describe('RememberingRouter', () => {
  it('matches as the trie it wraps, the first time and every time after, literal segments beside parameters included', () => {
    const trie = new TrieRouter<string>();
    const remembering = new RememberingRouter<string>();
    for (const [m, p, h] of TABLE) {
      trie.add(m, p, h);
      remembering.add(m, p, h);
    }
    const asked: Array<[string, string]> = [
      ['GET', '/api/workflows/graph'],
      ['GET', '/api/workflows/7'],
      ['GET', '/api/workflows/8'],
      ['PUT', '/api/workflows/7'],
      ['DELETE', '/api/workflows/7'],
      ['GET', '/api/workflows/7/export'],
      ['GET', '/nowhere'],
      ['GET', `/api/workflows/${'x'.repeat(400)}`],
    ];
    for (let pass = 0; pass < 3; pass++) {
      for (const [m, p] of asked) expect(handlers(remembering, m, p), `${m} ${p}`).toEqual(handlers(trie, m, p));
    }
    expect(handlers(remembering, 'GET', '/api/workflows/8')).toContain('one {"id":"8"}');
  });

  it('forgets what it matched when a route is added', () => {
    const r = new RememberingRouter<string>();
    r.add('GET', '/a/:id', 'param');
    expect(handlers(r, 'GET', '/a/b')).toEqual(['param {"id":"b"}']);
    r.add('GET', '/a/b', 'literal');
    expect(handlers(r, 'GET', '/a/b')).toContain('literal {}');
  });

  it('keeps matching right past the number of paths it remembers', () => {
    const r = new RememberingRouter<string>();
    r.add('GET', '/a/:id', 'param');
    for (let i = 0; i < REMEMBERED_PATHS * 2 + 5; i++) expect(handlers(r, 'GET', `/a/${i}`)).toEqual([`param {"id":"${i}"}`]);
  });
});

describe('lazyChild', () => {
  it('logs as pino’s child would: the bindings on every line, at the parent’s level', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const parent = createLogger('info', sink);
    const log = lazyChild(parent, { reqId: 'r-1' });
    log.debug('below the level');
    log.info({ n: 1 }, 'first');
    const grandchild = log.child({ step: 'two' });
    grandchild.warn({ password: 'hunter2' }, 'second');
    expect(log.level).toBe('info');
    expect(log.isLevelEnabled('debug')).toBe(false);
    const parsed = lines.map((l) => JSON.parse(l));
    expect(parsed).toMatchObject([
      { reqId: 'r-1', n: 1, msg: 'first', service: 'labelfleet' },
      { reqId: 'r-1', step: 'two', msg: 'second', password: '[redacted]' },
    ]);
    expect(parsed).toHaveLength(2);
  });
});
