/** The console's one way to call the API: same origin, the session cookie, JSON in and out. */

export interface ApiResult<T = any> {
  status: number;
  ok: boolean;
  body: T;
}

export interface ApiErrorBody {
  error?: string;
  details?: unknown;
}

/** Sends `body` as JSON (when given). A 401 outside sign-in means the session ended: to the sign-in page. */
export async function api<T = any>(method: string, url: string, body?: unknown): Promise<ApiResult<T>> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  if (res.status === 401 && !url.startsWith('/api/auth/')) {
    toLogin(true);
    throw new Error('Your session has ended');
  }
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = { error: text.slice(0, 300) };
  }
  return { status: res.status, ok: res.ok, body: parsed as T };
}

/** The sign-in page, coming back here afterwards. */
export function toLogin(expired: boolean) {
  const next = encodeURIComponent(location.pathname + location.search);
  location.assign(`/login?next=${next}${expired ? '&expired=1' : ''}`);
}

/** The message of an error response, for a person. */
export function errorText(r: ApiResult<ApiErrorBody>): string {
  const msg = r.body?.error ?? `Request failed (${r.status})`;
  return r.status >= 500 ? `${msg}. Try again; if it persists, see the service log.` : msg;
}
