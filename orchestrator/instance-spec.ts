/**
 * What one annotator's Label Studio instance should be: names, environment, limits, and the hash
 * of it all. Every name is deterministic (annotator id + FLEET_NAMESPACE), so a restarted fleet
 * finds its containers, routes and databases again and never makes a second one.
 *
 * Secrets are DERIVED, not stored: HMAC(FLEET_SECRET_KEY, purpose:id[:generation]). The webhook
 * secret and the database password include the start generation (bumped by every POST /start), so
 * they rotate at each start while staying stable for the life of one start — a container recreated
 * by a restart gets the very same environment and the very same spec hash. The container made
 * ahead of a created annotator's first start (orchestrator/annotators-step.ts) carries that start's
 * (generation 1's) values before it: they open nothing until POST /start records the generation
 * (the webhook secret's hash) and the start sets the password, and a container whose generation is
 * not the start's has another spec hash and is replaced, never started. Only the annotator's own
 * Label Studio password is random (shown once) and therefore sealed in the annotators row.
 *
 * This file is the one place that names the environment the image's entrypoint reads
 * (orchestrator/image/entrypoint.sh).
 */
import { createHash } from 'node:crypto';
import type { Config } from '../src/config.ts';
import type { SecretBox } from '../src/crypto.ts';
import type { InstanceSpec } from './backends/types.ts';

/** The environment variables orchestrator/image/entrypoint.sh (and Label Studio) read. */
export const ENV = {
  djangoDb: 'DJANGO_DB',
  dbName: 'POSTGRE_NAME',
  dbUser: 'POSTGRE_USER',
  dbPassword: 'POSTGRE_PASSWORD',
  dbHost: 'POSTGRE_HOST',
  dbPort: 'POSTGRE_PORT',
  secretKey: 'SECRET_KEY',
  adminUsername: 'LABEL_STUDIO_USERNAME',
  adminPassword: 'LABEL_STUDIO_PASSWORD',
  apiToken: 'LABEL_STUDIO_USER_TOKEN',
  port: 'LS_PORT',
  bindHost: 'LS_BIND_HOST',
  publicHost: 'LABEL_STUDIO_HOST',
  csrfOrigins: 'CSRF_TRUSTED_ORIGINS',
  callbackUrl: 'FLEET_CALLBACK_URL',
  annotatorId: 'ANNOTATOR_ID',
  webhookSecret: 'WEBHOOK_SECRET',
  annotatorEmail: 'ANNOTATOR_EMAIL',
  annotatorPassword: 'ANNOTATOR_PASSWORD',
  // Label Studio's own outbound calls (PyPI version check, analytics, Sentry): off.
  versionCheck: 'LATEST_VERSION_CHECK',
  analytics: 'COLLECT_ANALYTICS',
  sentryDsn: 'SENTRY_DSN',
  frontendSentryDsn: 'FRONTEND_SENTRY_DSN',
  // Label Studio's SSRF guard for outbound calls (webhooks).
  defaultBannedSubnets: 'USE_DEFAULT_BANNED_SUBNETS',
  additionalBannedSubnets: 'USER_ADDITIONAL_BANNED_SUBNETS',
} as const;

/**
 * The entries of ENV whose values are secrets (derived from FLEET_SECRET_KEY, or the annotator's
 * sealed password). A backend that can keep secrets out of what it registers passes exactly these
 * through its secret store (ECS: Secrets Manager); every other entry is a plain setting.
 */
export const SECRET_ENV: ReadonlySet<string> = new Set([
  ENV.dbPassword,
  ENV.secretKey,
  ENV.adminPassword,
  ENV.apiToken,
  ENV.webhookSecret,
  ENV.annotatorPassword,
]);

/** The fleet's own superuser in every instance (its API token stays the fleet's). */
export const FLEET_ADMIN_USERNAME = 'fleet-admin@labelfleet.local';
/** Label Studio's port inside a container on the fleet network. */
export const BRIDGE_PORT = 8080;
/** Where Label Studio keeps media inside the image (LABEL_STUDIO_BASE_DATA_DIR). */
export const DATA_DIR_IN_IMAGE = '/label-studio/data';

export const LABELS = {
  managed: 'labelfleet.managed',
  namespace: 'labelfleet.namespace',
  annotatorId: 'labelfleet.annotator-id',
  specHash: 'labelfleet.spec-hash',
  port: 'labelfleet.port',
} as const;

export interface FleetNames {
  /** Label value of labelfleet.namespace ("default" when FLEET_NAMESPACE is unset). */
  namespace: string;
  /** Container name, Traefik router/service name and route file stem: `fleet-ls-[<ns>-]<id>`. */
  instance(id: number): string;
  volume(id: number): string;
  /** PostgreSQL database and role: `ls_annotator_[<ns>_]<id>`. */
  database(id: number): string;
  /** The annotator id an instance name belongs to, or null when it is not one of ours. */
  parseInstance(name: string): number | null;
}

export function fleetNames(config: Pick<Config, 'FLEET_NAMESPACE'>): FleetNames {
  const ns = config.FLEET_NAMESPACE;
  const prefix = ns ? `fleet-ls-${ns}-` : 'fleet-ls-';
  const pattern = new RegExp(`^${prefix}([1-9][0-9]{0,9})$`);
  return {
    namespace: ns ?? 'default',
    instance: (id) => `${prefix}${id}`,
    volume: (id) => `${prefix}${id}-data`,
    database: (id) => (ns ? `ls_annotator_${ns}_${id}` : `ls_annotator_${id}`),
    parseInstance(name) {
      const m = pattern.exec(name.replace(/^\//, ''));
      return m ? Number(m[1]) : null;
    },
  };
}

export class PortRangeError extends Error {}

/** The port Label Studio listens on: LS_PORT_BASE + id with host networking, else 8080. */
export function listenPort(config: Pick<Config, 'DOCKER_NETWORK_MODE' | 'LS_PORT_BASE'>, annotatorId: number): number {
  if (config.DOCKER_NETWORK_MODE !== 'host') return BRIDGE_PORT;
  const port = config.LS_PORT_BASE + annotatorId;
  if (port > 65_535) {
    throw new PortRangeError(`annotator ${annotatorId} has no port with host networking (LS_PORT_BASE ${config.LS_PORT_BASE} + id > 65535)`);
  }
  return port;
}

export const publicHost = (config: Pick<Config, 'FLEET_DOMAIN'>, subdomain: string) => `${subdomain}.${config.FLEET_DOMAIN}`;
/** `<scheme>://<subdomain>.<FLEET_DOMAIN>[:<FLEET_PUBLIC_PORT>]` (the port only when it is not the scheme's default). */
export const publicUrl = (config: Pick<Config, 'FLEET_DOMAIN' | 'FLEET_PUBLIC_SCHEME' | 'FLEET_PUBLIC_PORT'>, subdomain: string) => {
  const port = config.FLEET_PUBLIC_PORT;
  const defaultPort = config.FLEET_PUBLIC_SCHEME === 'https' ? 443 : 80;
  return `${config.FLEET_PUBLIC_SCHEME}://${publicHost(config, subdomain)}${port && port !== defaultPort ? `:${port}` : ''}`;
};

// ------------------------------------------------------------------------------------ secrets

const derive = (secrets: SecretBox, purpose: string) => secrets.sign(`labelfleet:${purpose}`);

/** The secret the instance presents as X-Webhook-Secret (token report, webhooks) for one start. */
export const webhookSecret = (secrets: SecretBox, annotatorId: number, generation: number) =>
  derive(secrets, `webhook:${annotatorId}:${generation}`);

/** The per-annotator PostgreSQL role's password for one start (ALTER ROLE at each start). */
export const databasePassword = (secrets: SecretBox, annotatorId: number, generation: number) =>
  derive(secrets, `database:${annotatorId}:${generation}`);

/** The token the fleet's superuser gets on the instance's first boot (6–40 characters). */
export const instanceApiToken = (secrets: SecretBox, annotatorId: number) => derive(secrets, `ls-token:${annotatorId}`).slice(0, 40);

const adminPassword = (secrets: SecretBox, annotatorId: number) => derive(secrets, `ls-admin:${annotatorId}`);
const djangoSecretKey = (secrets: SecretBox, annotatorId: number) => derive(secrets, `django:${annotatorId}`);

// ------------------------------------------------------------------------------------ the spec

export interface InstanceLimits {
  image: string;
  memoryMb: number;
  cpus: number;
}

export interface AnnotatorForSpec {
  id: number;
  email: string;
  subdomain: string;
  startGeneration: number;
  /** The sealed Label Studio password of the annotator, when an admin issued one. */
  lsPasswordEnc: string | null;
}

/** The database a container connects to, as the container sees it. */
export interface DatabaseTarget {
  host: string;
  port: number;
  name: string;
  user: string;
}

type SpecConfig = Pick<
  Config,
  | 'FLEET_NAMESPACE'
  | 'FLEET_DOMAIN'
  | 'FLEET_PUBLIC_SCHEME'
  | 'FLEET_PUBLIC_PORT'
  | 'FLEET_CALLBACK_URL'
  | 'DOCKER_NETWORK_MODE'
  | 'DOCKER_NETWORK'
  | 'LS_PORT_BASE'
  | 'TRAEFIK_PROVIDER'
  | 'TRAEFIK_ENTRYPOINT'
>;

/**
 * The hash of everything that makes an instance what it is: image, environment, limits and how it
 * is wired (network, router). Equal hashes ⇒ the running instance is the wanted one.
 */
export function hashSpec(spec: Omit<InstanceSpec, 'specHash'>, wiring: Record<string, unknown>): string {
  const env = Object.fromEntries(Object.entries(spec.env).sort(([a], [b]) => a.localeCompare(b)));
  const canonical = JSON.stringify({
    image: spec.image,
    env,
    port: spec.port,
    memoryMb: spec.memoryMb,
    cpus: spec.cpus,
    subdomain: spec.subdomain,
    wiring,
  });
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** The full spec of an annotator's instance for its current start generation. */
export function buildInstanceSpec(
  config: SpecConfig,
  secrets: SecretBox,
  annotator: AnnotatorForSpec,
  limits: InstanceLimits,
  database: DatabaseTarget,
): InstanceSpec {
  const id = annotator.id;
  const port = listenPort(config, id);
  const url = publicUrl(config, annotator.subdomain);
  const env: Record<string, string> = {
    [ENV.djangoDb]: 'default',
    [ENV.dbName]: database.name,
    [ENV.dbUser]: database.user,
    [ENV.dbPassword]: databasePassword(secrets, id, annotator.startGeneration),
    [ENV.dbHost]: database.host,
    [ENV.dbPort]: String(database.port),
    [ENV.secretKey]: djangoSecretKey(secrets, id),
    [ENV.adminUsername]: FLEET_ADMIN_USERNAME,
    [ENV.adminPassword]: adminPassword(secrets, id),
    [ENV.apiToken]: instanceApiToken(secrets, id),
    [ENV.port]: String(port),
    // With host networking the instance listens on loopback only: Traefik and the fleet reach it there.
    [ENV.bindHost]: config.DOCKER_NETWORK_MODE === 'host' ? '127.0.0.1' : '0.0.0.0',
    [ENV.publicHost]: url,
    [ENV.csrfOrigins]: url,
    [ENV.callbackUrl]: config.FLEET_CALLBACK_URL.replace(/\/+$/, ''),
    [ENV.annotatorId]: String(id),
    [ENV.webhookSecret]: webhookSecret(secrets, id, annotator.startGeneration),
    [ENV.annotatorEmail]: annotator.email,
    [ENV.versionCheck]: 'false',
    [ENV.analytics]: 'false',
    [ENV.sentryDsn]: '',
    [ENV.frontendSentryDsn]: '',
    // FLEET_CALLBACK_URL is always a private or loopback address (the fleet network, or 127.0.0.1
    // with host networking), which Label Studio's default SSRF guard refuses as a webhook URL
    // ("URL resolves to a reserved network address"). Lift the default ban list, but keep the
    // link-local range (cloud instance metadata, 169.254.169.254) blocked.
    [ENV.defaultBannedSubnets]: 'false',
    [ENV.additionalBannedSubnets]: '169.254.0.0/16',
  };
  if (annotator.lsPasswordEnc) env[ENV.annotatorPassword] = secrets.decrypt(annotator.lsPasswordEnc);
  const spec = {
    annotatorId: id,
    subdomain: annotator.subdomain,
    image: limits.image,
    env,
    port,
    memoryMb: limits.memoryMb,
    cpus: limits.cpus,
  };
  const wiring = {
    namespace: config.FLEET_NAMESPACE ?? null,
    domain: config.FLEET_DOMAIN,
    networkMode: config.DOCKER_NETWORK_MODE,
    network: config.DOCKER_NETWORK_MODE === 'bridge' ? config.DOCKER_NETWORK : null,
    router: config.TRAEFIK_PROVIDER,
    entrypoint: config.TRAEFIK_ENTRYPOINT,
  };
  return { ...spec, specHash: hashSpec(spec, wiring) };
}
