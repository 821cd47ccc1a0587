/**
 * A typed client for the parts of Label Studio's REST API that batches use, checked against
 * label-studio==1.23.2 (see test/e2e/batches.test.ts and ../shared/labelstudio-notes.md):
 *
 * - Auth: `Authorization: Token <t>` (legacy tokens, enabled at the instance's first boot).
 * - Projects: title 3–50 characters; `GET /api/projects/?title=` filters case-insensitively by
 *   substring; `include=` trims the fields returned.
 * - Import: `POST /api/projects/{id}/import?return_task_ids=true` with a JSON list is synchronous
 *   and answers 201 {task_count, prediction_count, task_ids} in the list's order.
 * - Webhooks: `POST /api/webhooks/` {project, url, send_payload, send_for_all_actions, actions,
 *   headers, is_active}; `GET /api/webhooks/?project=` lists a project's; a PATCH that leaves out
 *   `actions` clears them (so updates always send the whole webhook). Label Studio refuses
 *   (403 "URL resolves to a reserved network address") and never calls URLs in private or loopback
 *   ranges unless the instance runs with USE_DEFAULT_BANNED_SUBNETS=false (or
 *   SSRF_PROTECTION_ENABLED=false): the fleet's instances need that to reach FLEET_CALLBACK_URL.
 * - Export: `GET /api/projects/{id}/export?exportType=JSON[&download_all_tasks=true]` returns the
 *   tasks (annotated ones only without download_all_tasks) with their annotations, including
 *   skipped ones (`was_cancelled: true`), each with id, result, created_at, updated_at, lead_time;
 *   a task's `predictions` there are ids (GET /api/tasks/{id}/ has them whole).
 * - Webhook payloads (verified): ANNOTATION_CREATED/UPDATED {action, annotation{id, result,
 *   created_at, updated_at (microseconds), lead_time, was_cancelled, task, project, ...}, task{id,
 *   data, meta, ...}, project{id, title, label_config, ...}}; ANNOTATIONS_DELETED {action,
 *   annotations: [{id}], project{...}}. A PATCH of an annotation fires ANNOTATION_UPDATED.
 * Every call has a timeout (default 30 s) and failures throw LabelStudioError with the HTTP
 * status (0 for network errors and timeouts) and the body.
 */
import { metrics } from '../metrics.ts';

export class LabelStudioError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body?: unknown,
    readonly operation?: string,
  ) {
    super(message);
    this.name = 'LabelStudioError';
  }
}

export interface LsResultItem {
  from_name: string;
  to_name: string;
  type: string;
  value: Record<string, unknown>;
  [k: string]: unknown;
}

export interface LsProject {
  id: number;
  title: string;
  description?: string | null;
  label_config?: string;
  task_number?: number | null;
  num_tasks_with_annotations?: number | null;
  finished_task_number?: number | null;
  total_annotations_number?: number | null;
  skipped_annotations_number?: number | null;
}

export interface LsWebhook {
  id: number;
  project: number | null;
  url: string;
  send_payload: boolean;
  send_for_all_actions: boolean;
  headers: Record<string, string>;
  is_active: boolean;
  actions: string[];
}

export interface LsAnnotation {
  id: number;
  result: LsResultItem[];
  was_cancelled?: boolean;
  ground_truth?: boolean;
  created_at: string;
  updated_at: string;
  lead_time?: number | null;
  completed_by?: number | { id: number } | null;
  task?: number;
  project?: number;
}

export interface LsTask {
  id: number;
  data: Record<string, unknown>;
  meta?: Record<string, unknown> | null;
  annotations?: LsAnnotation[];
  predictions?: unknown[];
  project?: number;
  [k: string]: unknown;
}

export interface LsImportTask {
  data: Record<string, unknown>;
  meta?: Record<string, unknown>;
  predictions?: { model_version?: string; score?: number; result: unknown[] }[];
}

export interface LsImportResult {
  task_count: number;
  prediction_count?: number;
  task_ids?: number[];
}

export interface LabelStudioClientOptions {
  baseUrl: string;
  token: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

type Query = Record<string, string | number | boolean | undefined>;

export class LabelStudioClient {
  readonly baseUrl: string;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(opts: LabelStudioClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.#token = opts.token;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#fetch = opts.fetch ?? fetch;
  }

  async request<T>(
    operation: string,
    method: string,
    path: string,
    opts: { query?: Query; body?: unknown; timeoutMs?: number; okStatuses?: number[] } = {},
  ): Promise<T> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const started = performance.now();
    let res: Response;
    try {
      res = await this.#fetch(url, {
        method,
        headers: {
          Authorization: `Token ${this.#token}`,
          Accept: 'application/json',
          ...(opts.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        },
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(opts.timeoutMs ?? this.#timeoutMs),
        redirect: 'manual',
      });
    } catch (err) {
      metrics.errors.inc({ source: 'labelstudio' });
      const e = err as Error;
      const what = e.name === 'TimeoutError' ? `timed out after ${opts.timeoutMs ?? this.#timeoutMs} ms` : e.message;
      throw new LabelStudioError(`Label Studio ${operation} (${method} ${url.pathname}) failed: ${what}`, 0, undefined, operation);
    } finally {
      metrics.lsApiLatency.observe({ operation }, (performance.now() - started) / 1000);
    }
    const text = await res.text().catch(() => '');
    let body: unknown = text;
    if (text && (res.headers.get('content-type') ?? '').includes('json')) {
      try {
        body = JSON.parse(text);
      } catch {
        /* keep text */
      }
    }
    const ok = opts.okStatuses ? opts.okStatuses.includes(res.status) : res.status >= 200 && res.status < 300;
    if (!ok) {
      metrics.errors.inc({ source: 'labelstudio' });
      const detail = typeof body === 'object' && body !== null ? JSON.stringify(body).slice(0, 500) : String(body).slice(0, 200);
      throw new LabelStudioError(`Label Studio ${operation} (${method} ${url.pathname}) answered ${res.status}: ${detail}`, res.status, body, operation);
    }
    return body as T;
  }

  /** GET /health/ → true when it answers {"status": "UP"}. */
  async health(timeoutMs = 5_000): Promise<boolean> {
    try {
      const body = await this.request<{ status?: string }>('health', 'GET', '/health/', { timeoutMs });
      return body?.status === 'UP';
    } catch {
      return false;
    }
  }

  /** Projects whose title contains `title` (case-insensitive), every page. */
  async findProjects(title: string): Promise<LsProject[]> {
    const out: LsProject[] = [];
    for (let page = 1; page < 1000; page++) {
      const res = await this.request<{ results: LsProject[]; next: string | null }>('list_projects', 'GET', '/api/projects/', {
        query: { title, page, page_size: 100, include: 'id,title,description' },
      });
      out.push(...res.results);
      if (!res.next) break;
    }
    return out;
  }

  getProject(id: number) {
    return this.request<LsProject>('get_project', 'GET', `/api/projects/${id}/`);
  }

  createProject(p: { title: string; description: string; label_config: string; [k: string]: unknown }) {
    return this.request<LsProject>('create_project', 'POST', '/api/projects/', { body: p, okStatuses: [201] });
  }

  deleteProject(id: number) {
    return this.request<unknown>('delete_project', 'DELETE', `/api/projects/${id}/`, { okStatuses: [204, 404] });
  }

  listWebhooks(projectId: number) {
    return this.request<LsWebhook[]>('list_webhooks', 'GET', '/api/webhooks/', { query: { project: projectId } });
  }

  createWebhook(w: Omit<LsWebhook, 'id'>) {
    return this.request<LsWebhook>('create_webhook', 'POST', '/api/webhooks/', { body: w, okStatuses: [201] });
  }

  updateWebhook(id: number, patch: Partial<Omit<LsWebhook, 'id'>>) {
    return this.request<LsWebhook>('update_webhook', 'PATCH', `/api/webhooks/${id}/`, { body: patch });
  }

  deleteWebhook(id: number) {
    return this.request<unknown>('delete_webhook', 'DELETE', `/api/webhooks/${id}/`, { okStatuses: [204, 404] });
  }

  importTasks(projectId: number, tasks: LsImportTask[]) {
    return this.request<LsImportResult>('import_tasks', 'POST', `/api/projects/${projectId}/import`, {
      query: { return_task_ids: true },
      body: tasks,
      okStatuses: [200, 201],
      timeoutMs: Math.max(this.#timeoutMs, 120_000),
    });
  }

  /**
   * Label Studio's JSON export of a project: annotated tasks (skipped included) with their
   * annotations; `all` adds the tasks nobody annotated yet.
   */
  exportTasks(projectId: number, opts: { all?: boolean } = {}) {
    return this.request<LsTask[]>('export', 'GET', `/api/projects/${projectId}/export`, {
      query: { exportType: 'JSON', download_all_tasks: opts.all ? 'true' : undefined },
      timeoutMs: Math.max(this.#timeoutMs, 120_000),
    });
  }

  getTask(id: number) {
    return this.request<LsTask>('get_task', 'GET', `/api/tasks/${id}/`);
  }

  taskAnnotations(taskId: number) {
    return this.request<LsAnnotation[]>('list_annotations', 'GET', `/api/tasks/${taskId}/annotations/`);
  }

  /** What an annotator's submit does in the labeling UI. */
  createAnnotation(taskId: number, a: { result: unknown[]; lead_time?: number; was_cancelled?: boolean }) {
    return this.request<LsAnnotation>('create_annotation', 'POST', `/api/tasks/${taskId}/annotations/`, { body: a, okStatuses: [200, 201] });
  }

  updateAnnotation(id: number, a: { result?: unknown[]; lead_time?: number; was_cancelled?: boolean }) {
    return this.request<LsAnnotation>('update_annotation', 'PATCH', `/api/annotations/${id}/`, { body: a });
  }

  deleteAnnotation(id: number) {
    return this.request<unknown>('delete_annotation', 'DELETE', `/api/annotations/${id}/`, { okStatuses: [204, 404] });
  }
}
