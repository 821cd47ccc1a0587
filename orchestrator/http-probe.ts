/**
 * Small HTTP calls the fleet makes to its instances: health probes (directly, and through the
 * router with a Host header) and reading the instance's users. node:http/https rather than fetch,
 * because fetch does not let a caller set the Host header.
 */
import http from 'node:http';
import https from 'node:https';

export interface HttpResult {
  status: number;
  body: string;
}

/** GET `url`; status 0 when no HTTP answer came within `timeoutMs` (refused, reset, timeout). */
export function httpGet(url: string, opts: { host?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<HttpResult> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
  if (opts.host) headers.host = opts.host;
  return new Promise((resolve) => {
    const req = mod.request(u, { method: 'GET', headers, timeout: opts.timeoutMs ?? 3000, servername: opts.host }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= 1_000_000) chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', () => resolve({ status: 0, body: '' }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end();
  });
}

/**
 * Label Studio's /health/ answers 200 {"status": "UP"} once migrations are done and it serves.
 * False when it does not within `timeoutMs` (default 3 s).
 */
export async function labelStudioHealthy(baseUrl: string, host?: string, timeoutMs = 3000): Promise<boolean> {
  const res = await httpGet(`${baseUrl.replace(/\/+$/, '')}/health/`, { host, timeoutMs });
  return res.status === 200 && /"UP"/.test(res.body);
}
