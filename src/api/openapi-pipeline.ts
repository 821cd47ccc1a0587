/**
 * GET /api/openapi.json: the document generated from the route schemas, plus what pipelines need
 * to know that no single route states:
 * - security: the session cookie or `Authorization: Bearer lf_…` on every route that is not
 *   public, with the API-key scope the route needs (from ROUTE_SCOPES, the one table);
 * - headers: X-Request-Id on every response; the RateLimit fields and 429 on key requests;
 *   Idempotency-Key on POST, PUT and DELETE, Idempotent-Replayed, and the 409/422 it can answer;
 * - outbound webhook payloads as OpenAPI 3.1 `webhooks`, one per event type, with the Standard
 *   Webhooks headers.
 */
import { z, type OpenAPIHono } from '@hono/zod-openapi';
import { ROUTE_SCOPES } from '../auth/api-keys.ts';
import { EVENT_TYPES, eventBodySchema } from '../outbound/events.ts';
import { ErrorSchema } from './common.ts';
import type { AppEnv } from './router.ts';

type Operation = {
  security?: unknown[];
  parameters?: unknown[];
  responses?: Record<string, { headers?: Record<string, unknown>; description?: string; content?: unknown }>;
};

const WEBHOOK_DESCRIPTIONS: Record<(typeof EVENT_TYPES)[number], string> = {
  'batch.completed': 'A batch completed: every task annotated, exported to S3 (JSON and JSONL keys in `data.export`).',
  'batch.failed': 'A batch failed (it could not be set up in Label Studio, or its annotator was deleted) and its images were released.',
  'item.rejected': 'A reviewer rejected an item; `actionTaken` says whether it was archived, routed back, or escalated.',
  'item.adjudication_needed': 'Overlapping annotations of an item disagree and need adjudication (sent once overlap/consensus is enabled).',
  'annotator.flagged': "An annotator's gold accuracy fell below the threshold.",
  'annotator.error': "An annotator's Label Studio instance went to status error.",
  'catalog.keys_skipped': 'A catalog listing skipped S3 keys a presigned URL cannot address byte-for-byte (`.`/`..` segments, control characters); once per distinct set.',
};

const errorContent = { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } };

/** Registers the API-key scheme, the Error schema and the outbound webhooks in the document. */
export function registerPipelineDocs(app: OpenAPIHono<AppEnv>) {
  const registry = app.openAPIRegistry;
  registry.register('Error', ErrorSchema);
  registry.registerComponent('securitySchemes', 'apiKey', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'lf_…',
    description: 'An API key (POST /api/api-keys). The roles listed per operation are the key scopes it needs: read < write < admin.',
  });
  const headers = z.object({
    'webhook-id': z.string().openapi({ description: 'The event id (msg_…): the same on every retry; deduplicate on it' }),
    'webhook-timestamp': z.string().openapi({ description: 'Unix seconds of this attempt' }),
    'webhook-signature': z.string().openapi({ description: 'v1,<base64 HMAC-SHA256 of "id.timestamp.body" under the subscription secret> (Standard Webhooks)' }),
  });
  for (const type of EVENT_TYPES) {
    registry.registerWebhook({
      method: 'post',
      path: type,
      summary: type,
      description: WEBHOOK_DESCRIPTIONS[type],
      request: { headers, body: { content: { 'application/json': { schema: eventBodySchema(type) } }, required: true } },
      responses: {
        200: { description: 'Any 2xx acknowledges the delivery; anything else (or no answer within webhooks.timeoutSeconds) is retried with backoff' },
      },
    });
  }
}

export type Doc = { paths?: Record<string, Record<string, Operation>> };

/**
 * Adds to a generated document what pipelines need per operation: X-Request-Id on every response;
 * on every route that is not public (`isPublic(documentPath)`), the session cookie or an API key
 * with the route's scope, the RateLimit headers, 403/429, and Idempotency-Key on writes.
 */
export function decoratePipeline(doc: Doc, isPublic: (documentPath: string) => boolean): Doc {
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    const honoPath = path.replace(/\{([^}]+)\}/g, ':$1');
    for (const [method, op] of Object.entries(item)) {
      if (typeof op !== 'object' || op === null || !op.responses) continue;
      for (const res of Object.values(op.responses)) {
        res.headers = { 'X-Request-Id': { description: "The request's id (the caller's X-Request-Id if ≤ 128 characters)", schema: { type: 'string' } }, ...res.headers };
      }
      if (isPublic(path)) continue;
      const scope = ROUTE_SCOPES[`${method.toUpperCase()} ${honoPath}`];
      op.security = [{ sessionCookie: [] }, { apiKey: scope ? [scope] : [] }];
      const limited = {
        'RateLimit-Policy': { description: 'API-key requests: "key";q=<per minute>;w=60, "client";q=<per minute>;w=60', schema: { type: 'string' } },
        RateLimit: { description: 'API-key requests: "key";r=<remaining>;t=<seconds to reset>, …', schema: { type: 'string' } },
      };
      for (const res of Object.values(op.responses)) res.headers = { ...res.headers, ...limited };
      op.responses['403'] ??= { description: "The API key's scopes do not include this route's", content: errorContent };
      op.responses['429'] ??= {
        description: 'Rate limit reached (API keys)',
        content: errorContent,
        headers: { 'Retry-After': { description: 'Seconds', schema: { type: 'integer' } }, ...limited },
      };
      if (['post', 'put', 'delete', 'patch'].includes(method)) {
        op.parameters = [
          ...(op.parameters ?? []),
          {
            name: 'Idempotency-Key',
            in: 'header',
            required: false,
            description: 'Replays the stored response for 24 h when sent again with the same request (Idempotent-Replayed: true)',
            schema: { type: 'string', minLength: 1, maxLength: 255 },
          },
        ];
        for (const res of Object.values(op.responses)) {
          res.headers = { ...res.headers, 'Idempotent-Replayed': { description: '"true" when this is the stored response of an earlier request with the same Idempotency-Key', schema: { type: 'string', enum: ['true'] } } };
        }
        op.responses['409'] ??= { description: 'Conflict (also: a request with this Idempotency-Key is still in progress)', content: errorContent };
        op.responses['422'] ??= { description: 'This Idempotency-Key was used with a different request', content: errorContent };
      }
    }
  }
  return doc;
}
