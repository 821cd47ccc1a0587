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

/**
 * A child of `parent` with `bindings` (pino's child: every line it writes carries them), made the
 * first time it is used. pino makes a child in about 3.5 µs (its formatters and serialized
 * bindings) — a request's logger costs that on every request, and most requests log nothing but
 * their request line. Out: a Logger that behaves as the child (its methods bound to it).
 */
export function lazyChild(parent: Logger, bindings: pino.Bindings): Logger {
  let child: Logger | undefined;
  const made = () => (child ??= parent.child(bindings));
  return new Proxy(parent, {
    get(_, key) {
      const c = made();
      const value: unknown = Reflect.get(c, key, c);
      return typeof value === 'function' ? value.bind(c) : value;
    },
    set: (_, key, value) => Reflect.set(made(), key, value),
  });
}
