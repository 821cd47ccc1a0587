/**
 * Oversize bodies against a real `fleet serve` process with the heap `npm start` gives it: a
 * 250 MB body to each public route (taken from the service's own OpenAPI document), declared and
 * chunked, while another client keeps asking /api/health. Before issue 9 one such request ended
 * in "JavaScript heap out of memory".
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { FLEET_BIN, freePort, START_NODE_ARGS, waitUntil } from '../helpers/process.ts';

const BODY_BYTES = 250 * 1024 * 1024;
const CHUNK = Buffer.alloc(1024 * 1024, 0x61);

let db: TestDatabase;
let base: string;
let port: number;
let child: ReturnType<typeof spawn>;
let output = '';

beforeAll(async () => {
  db = await createTestDatabase();
  port = await freePort();
  child = spawn(process.execPath, [...START_NODE_ARGS, FLEET_BIN, 'serve', '--no-reconcile'], {
    env: { ...process.env, DATABASE_URL: db.url, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', FLEET_SECRET_KEY: 'k'.repeat(40), METRICS_TOKEN: 'm'.repeat(20) },
  });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  base = `http://127.0.0.1:${port}`;
  await waitUntil('the service to answer', async () => (await fetch(`${base}/api/health`)).ok, 120_000, 250);
}, 180_000);

afterAll(async () => {
  child?.kill('SIGTERM');
  await db?.drop();
});

const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;

/**
 * Sends a `BODY_BYTES` body (with Content-Length, or chunked), with backpressure. A polite
 * client (`persist` false) stops sending once it has an answer, as curl and browsers do; an
 * attacker (`persist` true) writes on until everything is sent or the server closes the
 * connection. Resolves with the answer's status and body, or 'closed' when the connection ended
 * without one being read (the server may close on a client that will not stop).
 */
function sendOversize(method: string, path: string, chunked: boolean, persist: boolean): Promise<{ status: number | 'closed'; body: string }> {
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/json' };
    if (!chunked) headers['content-length'] = BODY_BYTES;
    // A polite client asks first, as curl does for uploads over 1 MiB (Expect: 100-continue), and
    // sends the body only once told to continue; an attacker just sends. Both keep their connection
    // alive as curl and browsers do (to a client that sent `Connection: close` Node's server closes
    // as soon as the answer is written, so while it still sends, a reset can overtake the answer).
    if (!persist) headers['expect'] = '100-continue';
    const req = http.request(`${base}${path}`, { method, headers, agent: new http.Agent({ keepAlive: true }) });
    const told = persist ? Promise.resolve() : new Promise<void>((r) => (req.once('continue', r), req.once('response', r), req.once('close', r)));
    if (!persist) req.flushHeaders();
    let answer: { status: number; body: string } | undefined;
    let stop = false;
    req.on('response', (res) => {
      answer = { status: res.statusCode!, body: '' };
      if (!persist) stop = true;
      res.on('data', (d) => (answer!.body += d));
      res.on('end', () => {
        resolve(answer!);
        req.destroy();
      });
      res.on('error', () => resolve(answer!));
    });
    req.on('error', () => {
      stop = true;
      setTimeout(() => resolve(answer ?? { status: 'closed', body: '' }), 1_000);
    });
    req.on('close', () => (stop = true));
    (async () => {
      await told;
      for (let sent = 0; sent < BODY_BYTES && !stop; sent += CHUNK.length) {
        if (!req.write(CHUNK)) await new Promise<void>((r) => (req.once('drain', r), req.once('close', r)));
      }
      if (!stop) req.end();
    })();
  });
}

/** Every public route, from the service's own OpenAPI document: operations that do not take the session cookie. */
async function publicRoutes() {
  const doc = await (await fetch(`${base}/api/openapi.json`)).json();
  const routes: { method: string; path: string }[] = [];
  for (const [path, ops] of Object.entries<Record<string, { security?: Array<Record<string, unknown>> }>>(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const public_ = op.security !== undefined && !op.security.some((s) => 'sessionCookie' in s);
      if (public_) routes.push({ method: method.toUpperCase(), path: path.replace(/\{[^}]+\}/g, '1') });
    }
  }
  return routes;
}

/** Polls /api/health until stopped; returns every status it got (0: no answer). */
function keepAsking() {
  const statuses: number[] = [];
  let polling = true;
  const done = (async () => {
    while (polling) {
      const res = await fetch(`${base}/api/health`).catch(() => null);
      statuses.push(res?.status ?? 0);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return async () => {
    polling = false;
    await done;
    return statuses;
  };
}

describe('request bodies are bounded before they are read', () => {
  it('answers a 250 MB body to each public route that takes one with the right status', async () => {
    const routes = await publicRoutes();
    expect(routes.map((r) => `${r.method} ${r.path}`).sort()).toEqual([
      'GET /api/auth/csrf',
      'GET /api/auth/session',
      'GET /api/health',
      'GET /api/version',
      'GET /metrics',
      'POST /api/annotators/1/token',
      'POST /api/auth/callback/credentials',
      'POST /api/auth/signout',
      'POST /api/webhook',
    ]);
    const results: Record<string, number | 'closed'> = {};
    for (const r of routes.filter((x) => x.method !== 'GET')) {
      for (const chunked of [false, true]) {
        const { status, body } = await sendOversize(r.method, r.path, chunked, false);
        results[`${r.method} ${r.path}${chunked ? ' chunked' : ''}`] = status;
        if (status === 413) expect(JSON.parse(body)).toEqual({ error: 'Payload too large', details: { limitBytes: expect.any(Number) } });
      }
    }
    // A declared size over the limit is refused before a byte is sent (Expect: 100-continue) or
    // read (without it: the attacker's case below). A chunked body is refused
    // once its reader passes the limit — or never read: the webhook checks its secret first
    // (401), and signout has no use for a body.
    expect(results).toEqual({
      'POST /api/annotators/1/token': 413,
      'POST /api/annotators/1/token chunked': 413,
      'POST /api/auth/callback/credentials': 413,
      'POST /api/auth/callback/credentials chunked': 413,
      'POST /api/auth/signout': 413,
      'POST /api/auth/signout chunked': 200,
      'POST /api/webhook': 413,
      'POST /api/webhook chunked': 401,
    });
  }, 600_000);

  it('keeps memory flat and other clients answered while clients push 250 MB bodies at every public route', async () => {
    const routes = await publicRoutes();
    const stopAsking = keepAsking();
    const before = rssMb();
    let peak = before;
    let uploads = 0;
    for (let round = 0; round < 2; round++) {
      for (const r of routes) {
        for (const chunked of [false, true]) {
          await sendOversize(r.method, r.path, chunked, true);
          uploads++;
          peak = Math.max(peak, rssMb());
        }
      }
    }
    const health = await stopAsking();
    expect(uploads).toBe(36);
    expect(child.exitCode, output).toBeNull();
    // A body held in memory would show as hundreds of MB (or end the 192 MB heap, as it did).
    expect(peak - before, `RSS before ${before.toFixed(0)} MB, peak ${peak.toFixed(0)} MB`).toBeLessThan(64);
    expect(health.length).toBeGreaterThan(0);
    expect(health.every((s) => s === 200), `health answers: ${health.join(',')}`).toBe(true);
    expect((await fetch(`${base}/api/health`)).status).toBe(200);
  }, 600_000);
});
