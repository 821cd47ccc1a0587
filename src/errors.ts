/**
 * Typed errors that handlers and use-cases throw. `api/app.ts` maps them to HTTP in one place,
 * always in the documented `{error, details?}` shape.
 */
export class AppError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 422 | 429 | 503,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export const badRequest = (message: string, details?: unknown) => new AppError(400, message, details);
export const unauthorized = (message = 'Unauthorized') => new AppError(401, message);
export const notFound = (what: string) => new AppError(404, `${what} not found`);
export const conflict = (message: string, details?: unknown) => new AppError(409, message, details);
export const tooManyRequests = (message: string, retryAfterSeconds: number) =>
  new AppError(429, message, undefined, { 'Retry-After': String(retryAfterSeconds) });
export const unavailable = (message: string) => new AppError(503, message);

/** PostgreSQL error codes we turn into client errors rather than 500s. */
export const PG = {
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  checkViolation: '23514',
  notNullViolation: '23502',
  stringTooLong: '22001',
  numericOutOfRange: '22003',
  invalidText: '22P02',
  characterNotInRepertoire: '22021',
  untranslatableCharacter: '22P05',
} as const;

export function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
