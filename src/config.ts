/**
 * Every environment variable LabelFleet reads, parsed and typed in one place.
 * README's "Configuration" table mirrors this file; keep the two in step.
 */
import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const url = z.string().url();

const EnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().default('0.0.0.0'),
  PORT: int(1, 65535).default(3000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  /** PostgreSQL connection string; unset → embedded PGlite database in DATA_DIR/pglite. */
  DATABASE_URL: z.string().min(1).optional(),
  DATABASE_POOL_SIZE: int(1, 200).default(10),
  DATA_DIR: z.string().default('./data'),

  /** Key for secrets the fleet must read back (DB passwords, instance tokens) and for signing. */
  FLEET_SECRET_KEY: z.string().min(32, 'FLEET_SECRET_KEY must be at least 32 characters').optional(),
  ADMIN_EMAIL: z.string().email().default('admin@fleet.local'),
  ADMIN_PASSWORD: z.string().min(1).default('admin'),
  SESSION_TTL_HOURS: int(1, 24 * 365).default(24 * 7),
  LOGIN_MAX_FAILURES: int(1, 1000).default(5),
  LOGIN_LOCKOUT_SECONDS: int(1, 86400).default(300),

  ORCHESTRATOR_BACKEND: z.enum(['docker', 'ecs']).default('docker'),
  RECONCILE_INTERVAL_MS: int(100, 3_600_000).default(15_000),
  FLEET_DOMAIN: z.string().min(1).default('fleet.localhost'),
  /** Scheme annotators use to reach `<subdomain>.<FLEET_DOMAIN>` (status `url`). */
  FLEET_PUBLIC_SCHEME: z.enum(['http', 'https']).default('http'),
  /** Base URL a Label Studio container uses to call the fleet back (token report, webhooks). */
  FLEET_CALLBACK_URL: url.default('http://127.0.0.1:3000'),
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
  /** Admin connection to the PostgreSQL hosting the per-annotator databases; defaults to DATABASE_URL. */
  LS_DATABASE_URL: z.string().min(1).optional(),
  /** That server as seen from a Label Studio container; default: LS_DATABASE_URL's host and port. */
  LS_DATABASE_HOST: z.string().min(1).optional(),
  LS_DATABASE_PORT: int(1, 65535).optional(),

  S3_BUCKET: z.string().min(1).optional(),
  S3_ENDPOINT: url.optional(),
  S3_FORCE_PATH_STYLE: bool.default(true),
  AWS_REGION: z.string().default('us-east-1'),

  // ECS (ORCHESTRATOR_BACKEND=ecs; README "Running the fleet on ECS"). Required ones are checked
  // when the ECS backend is built (orchestrator/backends/ecs.ts ecsOptionsFromConfig).
  /** Endpoint override for AWS-compatible endpoints (moto in tests); unset → the real AWS. */
  AWS_ENDPOINT_URL: url.optional(),
  ECS_CLUSTER: z.string().min(1).optional(),
  ECS_LAUNCH_TYPE: z.enum(['FARGATE', 'EC2']).default('FARGATE'),
  /** Comma-separated subnet ids / security group ids for the tasks' awsvpc network. */
  ECS_SUBNETS: z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)).optional(),
  ECS_SECURITY_GROUPS: z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)).optional(),
  ECS_ASSIGN_PUBLIC_IP: bool.default(false),
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

export type Config = z.infer<typeof EnvSchema>;

/** Every environment variable LabelFleet reads (README's table is checked against this). */
export const CONFIG_KEYS = Object.keys(EnvSchema.shape);

export class ConfigError extends Error {}

/** Parses the environment; a bad or missing setting is a ConfigError with a one-line message. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`invalid setting ${issue.path.join('.')}: ${issue.message}`);
  }
  const config = parsed.data;
  if (config.NODE_ENV === 'production') {
    if (config.ADMIN_PASSWORD === 'admin') {
      throw new ConfigError('ADMIN_PASSWORD must be changed from the default "admin" when NODE_ENV=production');
    }
    if (!config.FLEET_SECRET_KEY) throw new ConfigError('FLEET_SECRET_KEY is required when NODE_ENV=production');
  }
  return config;
}
