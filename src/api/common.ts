/** Building blocks every route file shares: ids, pagination, errors, list responses. */
import { z } from '@hono/zod-openapi';
import type { Context, TypedResponse } from 'hono';
import type { JSONParsed } from 'hono/utils/types';
import type { JsonText } from '../db/json-text.ts';

export const MAX_INT = 2_147_483_647;

/** A path or query id: a positive integer that fits PostgreSQL's integer. */
export const idString = z
  .string()
  .regex(/^[1-9][0-9]{0,9}$/, 'must be a positive integer')
  .transform(Number)
  .refine((n) => n <= MAX_INT, 'is too large')
  // The document states the bounds the regex and refine enforce, for path ids and query filters alike.
  .openapi({ type: 'integer', minimum: 1, maximum: MAX_INT });

export const IdParam = z.object({
  id: idString.openapi({ param: { name: 'id', in: 'path' }, example: 1 }),
});

/** An id in a JSON body. */
export const idField = z.number().int().positive().max(MAX_INT);

const queryInt = (min: number, max: number, fallback: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a non-negative integer')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .optional()
    .transform((v) => v ?? fallback)
    .openapi({ type: 'integer', default: fallback, minimum: min, maximum: max });

/** limit 1–500 (default 100), offset ≥ 0 (default 0); anything else is a 400. */
export const PaginationQuery = z.object({
  limit: queryInt(1, 500, 100),
  offset: queryInt(0, MAX_INT, 0),
});
export type Pagination = z.output<typeof PaginationQuery>;

export const ErrorSchema = z
  .object({
    error: z.string().openapi({ example: 'Validation failed' }),
    details: z.unknown().optional(),
  })
  .openapi('Error');

const errorResponse = (description: string) => ({
  content: { 'application/json': { schema: ErrorSchema } },
  description,
});

/** The error responses a route can give, for the OpenAPI document. */
export const errors = {
  400: errorResponse('Bad request: validation failed or invalid parameters'),
  401: errorResponse('Missing or invalid session'),
  404: errorResponse('Not found'),
  409: errorResponse('Conflict'),
} as const;

/**
 * A 200 whose body is JSON already serialized (kept or built whole elsewhere, e.g. by PostgreSQL),
 * sent as c.json sends it (same Content-Type) and typed as c.json(value of type T) would be, so
 * the route's response schema still checks it.
 */
export const jsonText = <T>(c: Context, text: JsonText<T>) =>
  c.body(text, 200, { 'Content-Type': 'application/json' }) as unknown as Response & TypedResponse<JSONParsed<T>, 200, 'json'>;

export const jsonBody = <T extends z.ZodType>(schema: T, description = 'Request body') => ({
  body: { content: { 'application/json': { schema } }, required: true, description },
});

export const jsonContent = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { 'application/json': { schema } },
  description,
});

export const SuccessSchema = z.object({ success: z.literal(true) }).openapi('Success');

export const EntityRef = z.object({ id: z.number().int(), name: z.string() });

/** Bare-array lists carry their total in X-Total-Count (see README "Lists"). */
export function setTotal(c: Context, total: number) {
  c.header('X-Total-Count', String(total));
}

export function envelope<T>(data: T[], total: number, page: Pagination) {
  return {
    data,
    pagination: { total, limit: page.limit, offset: page.offset, hasMore: page.offset + data.length < total },
  };
}

export const Envelope = <T extends z.ZodType>(item: T) =>
  z.object({
    data: z.array(item),
    pagination: z.object({
      total: z.number().int(),
      limit: z.number().int(),
      offset: z.number().int(),
      hasMore: z.boolean(),
    }),
  });

export const iso = (d: Date | string | null | undefined): string | null =>
  d == null ? null : (d instanceof Date ? d : new Date(d)).toISOString();
export const isoRequired = (d: Date | string): string => (d instanceof Date ? d : new Date(d)).toISOString();

export const Timestamp = z.string().openapi({ format: 'date-time', example: '2026-04-01T00:00:00.000Z' });

/** Requires at least one field in an update body. */
export const nonEmpty = <T extends z.ZodObject>(schema: T) =>
  schema
    .refine((v) => Object.keys(v).length > 0, { message: 'At least one field is required' })
    .openapi({ minProperties: 1 });
