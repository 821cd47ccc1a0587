/**
 * The README's first command on a clean directory: `npm start`'s bundle starts on the embedded database
 * (no DATABASE_URL), answers the documented curl login flow, creates a role, and stops cleanly on
 * SIGTERM. Then it starts again on the same directory and still has the role.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle, freePort, startFleet, waitUntil } from '../helpers/process.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'labelfleet-smoke-'));
let bundle: string;
beforeAll(() => {
  bundle = buildBundle();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function boot() {
  const port = await freePort();
  const env = { PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: '', FLEET_SECRET_KEY: '', DATA_DIR: path.join(dir, 'data'), LOG_LEVEL: 'info', NODE_ENV: 'development' };
  const proc = startFleet(['serve', '--no-reconcile'], env, dir, bundle);
  const base = `http://127.0.0.1:${port}`;
  await waitUntil('the service to answer /api/health', async () => (await fetch(`${base}/api/health`)).ok, 60_000, 200);
  return { proc, base };
}

async function login(base: string): Promise<string> {
  const { csrfToken } = (await (await fetch(`${base}/api/auth/csrf`)).json()) as { csrfToken: string };
  const res = await fetch(`${base}/api/auth/callback/credentials`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: `email=admin@fleet.local&password=admin&csrfToken=${encodeURIComponent(csrfToken)}`,
  });
  expect(res.status).toBe(200);
  return res.headers.get('set-cookie')!.split(';')[0]!;
}

describe('smoke: fleet serve on the embedded database', () => {
  it('starts from a clean directory, signs in with the curl flow, creates a role, restarts with its data', async () => {
    const first = await boot();
    expect(await (await fetch(`${first.base}/api/health`)).json()).toEqual({ status: 'ok', database: 'connected' });
    const cookie = await login(first.base);
    const created = await fetch(`${first.base}/api/roles`, {
      method: 'POST',
      headers: { cookie, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'labeler', description: 'Image labelers', color: '#3B82F6' }),
    });
    expect(created.status).toBe(201);
    expect(first.proc.output.text).toMatch(/DEFAULT PASSWORD/);
    expect(first.proc.output.text).not.toMatch(/csrfToken=|password=admin/);

    first.proc.child.kill('SIGTERM');
    expect(await first.proc.exited).toBe(0);
    expect(first.proc.output.text).toMatch(/LabelFleet stopped/);

    const second = await boot();
    const cookie2 = await login(second.base);
    const roles = await (await fetch(`${second.base}/api/roles`, { headers: { cookie: cookie2 } })).json();
    expect(roles.map((r: { name: string }) => r.name)).toEqual(['labeler']);
    second.proc.child.kill('SIGTERM');
    expect(await second.proc.exited).toBe(0);
  });
});
