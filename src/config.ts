/**
 * Every environment variable LabelFleet reads, parsed and typed in one place.
 * README's "Configuration" table mirrors this file; keep the two in step.
 */
import { z } from 'zod';
import { asciiHostname, asciiUrl, type HostnameResult } from './domain/hostnames.ts';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
/** A whole number in [min, max]; every way of missing it gets the one message that says the range. */
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => {
  const message = max === Number.MAX_SAFE_INTEGER ? `must be a whole number, at least ${min}` : `must be a whole number from ${min} to ${max}`;
  return z.coerce.number({ error: message }).int(message).min(min, message).max(max, message);
};
/** A check of domain/hostnames.ts as a transform: its ASCII form, or its message as the issue. */
const ascii = (convert: (v: string) => HostnameResult) => (v: string, ctx: z.RefinementCtx) => {
  const r = convert(v);
  if (r.ok) return r.value;
  ctx.addIssue({ code: 'custom', message: r.message });
  return z.NEVER;
};
/** A URL, its host name in ASCII form (domain/hostnames.ts). */
const url = z.string().url().transform(ascii(asciiUrl));
/** A host name (or IP address) in ASCII form; `_` allowed (container names). */
const hostname = z.string().min(1).transform(ascii((v) => asciiHostname(v, { underscore: true })));
/** A node-postgres connection string; the message never repeats the value (it may hold a password). */
const postgresUrl = z
  .string()
  .refine((v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'postgres:' || u.protocol === 'postgresql:') && (u.hostname !== '' || u.searchParams.has('host'));
    } catch {
      return false;
    }
  }, 'must be a PostgreSQL URL: postgres://user:password@host:5432/database')
  .transform((v, ctx) => {
    const r = asciiUrl(v);
    if (r.ok) return r.value;
    ctx.addIssue({ code: 'custom', message: 'must be a PostgreSQL URL whose host is a host name or IP address' });
    return z.NEVER;
  });
/**
 * An admin's email as stored and signed in with (ADMIN_EMAIL, `fleet admin --email`): surrounding
 * whitespace dropped — sign-in drops it too — then an email address of at most 255 characters.
 */
export const adminEmail = z.string().trim().pipe(z.email('must be an email address').max(255, 'must be at most 255 characters'));

/** ADMIN_PASSWORD's default: refused in production, and signs in only from this machine (auth/routes.ts). */
export const DEFAULT_ADMIN_PASSWORD = 'admin';

const EnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: hostname.default('0.0.0.0'),
  PORT: int(1, 65535).default(3000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  /** PostgreSQL connection string; unset → embedded PGlite database in DATA_DIR/pglite. */
  DATABASE_URL: postgresUrl.optional(),
  DATABASE_POOL_SIZE: int(1, 200).default(10),
  DATA_DIR: z.string().default('./data'),

  /** Key for secrets the fleet must read back (DB passwords, instance tokens) and for signing. */
  FLEET_SECRET_KEY: z.string().min(32, 'FLEET_SECRET_KEY must be at least 32 characters').optional(),
  ADMIN_EMAIL: adminEmail.default('admin@fleet.local'),
  ADMIN_PASSWORD: z.string().min(1).default(DEFAULT_ADMIN_PASSWORD),
  SESSION_TTL_HOURS: int(1, 24 * 365).default(24 * 7),
  /** Sign-in attempts per client and email in a round, then a block (src/auth/throttle.ts). */
  LOGIN_MAX_FAILURES: int(1, 1000).default(5),
  /** Sign-in attempts per client in a round, over every email. */
  LOGIN_CLIENT_MAX_ATTEMPTS: int(1, 100_000).default(50),
  /** The first block; each further block of the same key doubles (at most 24 h). */
  LOGIN_LOCKOUT_SECONDS: int(1, 86400).default(300),
  /** Proxies of yours in front of the service: X-Forwarded-For is read only this many hops deep (src/auth/client.ts). */
  TRUST_PROXY_HOPS: int(0, 10).default(0),

  ORCHESTRATOR_BACKEND: z.enum(['docker', 'ecs']).default('docker'),
  RECONCILE_INTERVAL_MS: int(100, 3_600_000).default(15_000),
  /**
   * Annotators answer at `<subdomain>.<FLEET_DOMAIN>`: converted to ASCII (`bücher.example` →
   * `xn--bcher-kva.example`), at most 189 characters so that with a 63-character subdomain the
   * host fits DNS's 253.
   */
  FLEET_DOMAIN: z.string().min(1).default('fleet.localhost').transform(ascii((v) => asciiHostname(v, { maxLength: 253 - 64 }))),
  /** Scheme annotators use to reach `<subdomain>.<FLEET_DOMAIN>` (status `url`). */
  FLEET_PUBLIC_SCHEME: z.enum(['http', 'https']).default('http'),
  /** Port of the public URL when the router is not on the scheme's default (80/443): `<scheme>://<host>:<port>`. */
  FLEET_PUBLIC_PORT: int(1, 65535).optional(),
  /** Base URL a Label Studio container uses to call the fleet back (token report, webhooks); default http://127.0.0.1:PORT. */
  FLEET_CALLBACK_URL: url.optional(),
  METRICS_TOKEN: z.string().min(16).optional(),

  // Live updates (src/live/; README "Console"): the change stream's poll and heartbeat.
  /** How often the change watermark is read while a live stream is open, ms. */
  LIVE_POLL_MS: int(100, 60_000).default(1_000),
  /** A comment line this often keeps idle streams open through proxies, seconds. */
  LIVE_HEARTBEAT_SECONDS: int(1, 300).default(15),

  // Fleet (orchestrator/; README "The fleet"). Run-time knobs (limits, timeouts) are settings.
  /** Lets several fleets share one Docker engine / PostgreSQL: goes into every name and label. */
  FLEET_NAMESPACE: z.string().regex(/^[a-z0-9]{1,16}$/, 'FLEET_NAMESPACE must be 1-16 lower-case letters or digits').optional(),
  /** The Label Studio image built from orchestrator/image/Dockerfile (setting `fleet.image` overrides). */
  FLEET_IMAGE: z.string().min(1).default('labelfleet/ls:latest'),
  DOCKER_SOCKET: z.string().min(1).default('/var/run/docker.sock'),
  /** `bridge`: containers join DOCKER_NETWORK on port 8080; `host`: host network, port LS_PORT_BASE + id (tests). */
  DOCKER_NETWORK_MODE: z.enum(['bridge', 'host']).default('bridge'),
  DOCKER_NETWORK: z.string().min(1).default('labelfleet'),
  LS_PORT_BASE: int(1024, 65_000).default(20_000),
  /** `docker`: routes as container labels; `file`: one dynamic-config file per annotator in TRAEFIK_DYNAMIC_DIR. */
  TRAEFIK_PROVIDER: z.enum(['docker', 'file']).default('docker'),
  TRAEFIK_DYNAMIC_DIR: z.string().min(1).optional(),
  TRAEFIK_ENTRYPOINT: z.string().min(1).default('web'),
  /** Where the fleet reaches Traefik's entrypoint to check a route (Host header); unset → the public URL. */
  TRAEFIK_URL: url.optional(),
  /**
   * Traefik's API (its `traefik` entrypoint, e.g. http://127.0.0.1:8081): a start's route phase
   * asks it whether the route is loaded instead of requesting Label Studio through the router;
   * unset or not answering → the request through the router (TRAEFIK_URL or the public URL).
   */
  TRAEFIK_API_URL: url.optional(),
  /** Admin connection to the PostgreSQL hosting the per-annotator databases; defaults to DATABASE_URL. */
  LS_DATABASE_URL: postgresUrl.optional(),
  /** That server as seen from a Label Studio container; default: LS_DATABASE_URL's host and port. */
  LS_DATABASE_HOST: hostname.optional(),
  LS_DATABASE_PORT: int(1, 65535).optional(),

  S3_BUCKET: z.string().min(1).optional(),
  S3_ENDPOINT: url.optional(),
  S3_FORCE_PATH_STYLE: bool.default(true),
  AWS_REGION: z.string().default('us-east-1'),

  // ECS (ORCHESTRATOR_BACKEND=ecs; README "Running the fleet on ECS"). Which are required is a
  // rule below (RULES), checked with everything else before anything connects.
  /** Endpoint override for AWS-compatible endpoints (moto in tests); unset → the real AWS. */
  AWS_ENDPOINT_URL: url.optional(),
  ECS_CLUSTER: z.string().min(1).optional(),
  ECS_LAUNCH_TYPE: z.enum(['FARGATE', 'EC2']).default('FARGATE'),
  /** Comma-separated subnet ids / security group ids for the tasks' awsvpc network. */
  ECS_SUBNETS: z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)).optional(),
  ECS_SECURITY_GROUPS: z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)).optional(),
  ECS_ASSIGN_PUBLIC_IP: bool.default(false),
  /** Task execution role (required with ECS): ECS reads the annotators' secrets with it. */
  ECS_EXECUTION_ROLE_ARN: z.string().min(1).optional(),
  ECS_TASK_ROLE_ARN: z.string().min(1).optional(),
  /** CloudWatch Logs group for the awslogs driver; unset → tasks get no log configuration. */
  ECS_LOG_GROUP: z.string().min(1).optional(),
  /** Names of the family, service and target group: `<prefix>-<annotatorId>` (≤ 32 chars). */
  ECS_NAME_PREFIX: z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,18}[A-Za-z0-9])?$/, 'ECS_NAME_PREFIX must be 1-20 letters, digits or inner hyphens').default('fleet-ls'),
  ALB_LISTENER_ARN: z.string().min(1).optional(),
  /** Listener rule priority = offset + annotator id (collision-free); keeps 1..offset for your own rules. */
  ALB_RULE_PRIORITY_OFFSET: int(0, 49_999).default(0),
  ECS_VPC_ID: z.string().min(1).optional(),
});

export type Config = Omit<z.infer<typeof EnvSchema>, 'FLEET_CALLBACK_URL'> & {
  FLEET_CALLBACK_URL: string;
};

/** Every environment variable LabelFleet reads (README's table is checked against this). */
export const CONFIG_KEYS = Object.keys(EnvSchema.shape);

/** One bad setting: the variable's name and what is wrong with it. */
export interface ConfigProblem {
  variable: string;
  message: string;
}

/** Every problem found in the environment at once; the message has one line per problem. */
export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[] | string) {
    const list = typeof problems === 'string' ? [{ variable: '', message: problems }] : problems;
    const line = (p: ConfigProblem) => (p.variable ? `${p.variable}: ${p.message}` : p.message);
    super(list.length === 1 ? `invalid setting ${line(list[0]!)}` : `${list.length} invalid settings:\n${list.map((p) => `  ${line(p)}`).join('\n')}`);
    this.problems = list;
  }
}

type Rule = (c: Config) => ConfigProblem | false | undefined;
const problem = (variable: string, message: string): ConfigProblem => ({ variable, message });
const requiredWhen = (when: (c: Config) => boolean, condition: string, ...variables: (keyof Config)[]): Rule[] =>
  variables.map((v) => (c) => when(c) && (c[v] === undefined || (Array.isArray(c[v]) && c[v].length === 0)) && problem(v, `is required when ${condition}`));

/**
 * Rules across variables, checked once every variable is parsed. Add one as a line: a function of
 * the parsed config returning a ConfigProblem (or false). A rule about a variable that already
 * failed to parse is not reported twice.
 */
const RULES: Rule[] = [
  (c) => c.NODE_ENV === 'production' && c.ADMIN_PASSWORD === DEFAULT_ADMIN_PASSWORD && problem('ADMIN_PASSWORD', 'must be changed from the default "admin" when NODE_ENV=production'),
  (c) => c.NODE_ENV === 'production' && !c.FLEET_SECRET_KEY && problem('FLEET_SECRET_KEY', 'is required when NODE_ENV=production'),
  ...requiredWhen((c) => c.TRAEFIK_PROVIDER === 'file', 'TRAEFIK_PROVIDER=file', 'TRAEFIK_DYNAMIC_DIR'),
  // The execution role reads every annotator's secret from Secrets Manager (Fargate and EC2 alike).
  ...requiredWhen((c) => c.ORCHESTRATOR_BACKEND === 'ecs', 'ORCHESTRATOR_BACKEND=ecs', 'ECS_CLUSTER', 'ECS_SUBNETS', 'ECS_SECURITY_GROUPS', 'ECS_EXECUTION_ROLE_ARN', 'ALB_LISTENER_ARN', 'ECS_VPC_ID'),
  (c) => c.ORCHESTRATOR_BACKEND === 'ecs' && c.ECS_LAUNCH_TYPE === 'EC2' && c.ECS_ASSIGN_PUBLIC_IP &&
    problem('ECS_ASSIGN_PUBLIC_IP', 'true is only valid with ECS_LAUNCH_TYPE=FARGATE'),
  // Target group names are at most 32 characters: room for `-<annotator id>` up to 6 digits.
  (c) => c.ORCHESTRATOR_BACKEND === 'ecs' && ecsNamePrefix(c).length > 25 &&
    problem('ECS_NAME_PREFIX', `plus FLEET_NAMESPACE ("${ecsNamePrefix(c)}") must be at most 25 characters`),
];

/** Names of ECS families, services and target groups: `<ECS_NAME_PREFIX>[-<FLEET_NAMESPACE>]`. */
export const ecsNamePrefix = (c: Pick<Config, 'ECS_NAME_PREFIX' | 'FLEET_NAMESPACE'>) =>
  c.FLEET_NAMESPACE ? `${c.ECS_NAME_PREFIX}-${c.FLEET_NAMESPACE}` : c.ECS_NAME_PREFIX;

/**
 * Parses the environment. In: variables (unset and empty ones take their defaults). Out: the
 * typed config, or a ConfigError listing EVERY bad variable at once (each by name) — parse
 * failures first, then RULES. Reads nothing else and connects nowhere.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: ConfigProblem[] = [];
  const parsed: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(EnvSchema.shape)) {
    const value = env[key];
    const result = (schema as z.ZodType).safeParse(value === '' ? undefined : value);
    if (result.success) parsed[key] = result.data;
    else problems.push(problem(key, result.error.issues.map((i) => i.message).join('; ')));
  }
  const config = parsed as Config;
  // Derived defaults.
  if (typeof config.PORT === 'number') config.FLEET_CALLBACK_URL ??= `http://127.0.0.1:${config.PORT}`;
  const failed = new Set(problems.map((p) => p.variable));
  for (const rule of RULES) {
    let p: ReturnType<Rule>;
    try {
      p = rule(config);
    } catch {
      continue; // the rule reads a variable that failed to parse: that failure is reported already
    }
    if (p && !failed.has(p.variable)) problems.push(p);
  }
  if (problems.length) throw new ConfigError(problems);
  return config;
}
