/** Health when the database goes away, and what the logs never contain. */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { signIn, startTestService, type TestService } from '../helpers/service.ts';

const lines: string[] = [];
const sink = new Writable({
  write(chunk, _enc, done) {
    lines.push(String(chunk));
    done();
  },
});

let t: TestService;
beforeAll(async () => {
  t = await startTestService({ overrides: { logger: createLogger('debug', sink) } });
});
afterAll(async () => t?.close());

describe('logs', () => {
  it('carry request ids but never passwords, session tokens or webhook secrets', async () => {
    const cookie = await signIn(t.service.app, 'admin@fleet.local', 'admin');
    const token = cookie.split('=')[1]!;
    const bad = await t.service.app.request('/api/auth/callback/credentials', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'admin@fleet.local', password: 'hunter2-secret-guess', csrfToken: 'x.y.z' }),
    });
    expect(bad.status).toBe(401);
    const annotator = (await t.json('POST', '/api/annotators', { name: 'Log Check', email: 'log@check.io' })).body;
    await t.service.app.request(`/api/annotators/${annotator.id}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-webhook-secret': 'presented-webhook-secret' },
      body: JSON.stringify({ token: 'reported-ls-token-123' }),
    });
    const text = lines.join('');
    expect(text).toMatch(/"reqId":/);
    for (const secret of ['hunter2-secret-guess', token, 'presented-webhook-secret', 'reported-ls-token-123', '"password":"admin"']) {
      expect(text.includes(secret), secret).toBe(false);
    }
  });
});

describe('health', () => {
  it('answers 503 in the error shape once the database is unreachable', async () => {
    expect((await t.json('GET', '/api/health')).status).toBe(200);
    await t.database.handle.close();
    const res = await t.json('GET', '/api/health');
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ status: 'error', database: 'unreachable', error: 'Database unreachable' });
  });
});
