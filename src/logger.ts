import pino, { type Logger } from 'pino';

/** Paths that may carry secrets anywhere in a log object; pino replaces their values. */
const REDACT = [
  'password',
  'token',
  'apiToken',
  'secret',
  'webhookSecret',
  'authorization',
  'cookie',
  '*.password',
  '*.token',
  '*.apiToken',
  '*.secret',
  '*.webhookSecret',
  '*.authorization',
  '*.cookie',
  'headers["x-webhook-secret"]',
  'headers.authorization',
  'headers.cookie',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: { service: 'labelfleet' } }, destination);
}

export type { Logger };
