/**
 * JSON requests to a running service as a signed-in admin (its session cookie), for tests that talk
 * to the service over real HTTP. `target` is read at each call, so a test file can create the
 * client at module level and fill in the base URL and cookie in its `beforeAll`.
 */
import { expect } from 'vitest';

export interface SessionTarget {
  /** `http://127.0.0.1:<port>` */
  base: string;
  /** `name=value` of the session cookie */
  cookie: string;
}

export function sessionApi(target: () => SessionTarget) {
  /** One request: the status and the parsed JSON body (undefined when the body is empty). */
  async function api<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const { base, cookie } = target();
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { cookie, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  /** `POST /api/reconcile`, asserting it answered 200 with no errors; its counts. */
  async function reconcile() {
    const res = await api<{ reconciled: number; completed: number; errors: string[] }>('POST', '/api/reconcile');
    expect(res.status).toBe(200);
    expect(res.body.errors).toEqual([]);
    return res.body;
  }

  return { api, reconcile };
}
