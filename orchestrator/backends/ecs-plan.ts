/**
 * What the ECS backend asks AWS for, computed from a spec and the backend's settings (pure: no
 * I/O). Names, tags, Fargate sizing, the annotator's secret document, the task definition and the
 * idempotency token all come from here, so the same spec always yields byte-for-byte the same request.
 */
import { createHash } from 'node:crypto';
import { SECRET_ENV } from '../instance-spec.ts';
import type { InstanceSpec } from './types.ts';

export const TAG = {
  managed: 'labelfleet.managed',
  annotatorId: 'labelfleet.annotator-id',
  specHash: 'labelfleet.spec-hash',
  /** On task definitions: hash of the whole RegisterTaskDefinition input (spec + settings). */
  taskDefHash: 'labelfleet.taskdef-hash',
  /** On services: where the task definitions take their secrets from (SECRET_STORE). */
  secretStore: 'labelfleet.secret-store',
  /** The installation that made the resource (orchestrator/ownership.ts; the Docker label of the same name). */
  installation: 'labelfleet.installation',
} as const;

/** TAG.secretStore of a service whose task definitions hold references to Secrets Manager, no secret values. */
export const SECRET_STORE = 'secretsmanager';

/** The container's name inside the task definition (the service's load balancer points at it). */
export const CONTAINER_NAME = 'label-studio';
/** Label Studio's health endpoint, used by the target group's health check. */
export const HEALTH_CHECK_PATH = '/health/';

export interface ResourceNames {
  family: string;
  service: string;
  targetGroup: string;
  /** The Secrets Manager secret holding the instance's secret environment. */
  secret: string;
}

/**
 * Ends every secret's name: `<prefix>-<id>/secrets`. Besides saying what it is, it keeps names from
 * ending in a hyphen and six characters, which Secrets Manager would confuse with its ARN suffix.
 */
export const SECRET_NAME_SUFFIX = '/secrets';

/** `<prefix>-<id>` for the family, the service and the target group (a target group name is ≤ 32). */
export function resourceNames(prefix: string, annotatorId: number): ResourceNames {
  const name = `${prefix}-${annotatorId}`;
  if (name.length > 32) throw new RangeError(`resource name ${name} is longer than 32 characters`);
  return { family: name, service: name, targetGroup: name, secret: `${name}${SECRET_NAME_SUFFIX}` };
}

/** The annotator id in a `<prefix>-<id>` name, or undefined when the name is not one of ours. */
export function annotatorIdFromName(prefix: string, name: string): number | undefined {
  if (!name.startsWith(`${prefix}-`)) return undefined;
  const rest = name.slice(prefix.length + 1);
  if (!/^[1-9][0-9]{0,15}$/.test(rest)) return undefined;
  const id = Number(rest);
  return Number.isSafeInteger(id) ? id : undefined;
}

/** The `<prefix>-<id>` a secret name `<prefix>-<id>/secrets` belongs to, or undefined for other names. */
export function secretOwnerName(secretName: string): string | undefined {
  return secretName.endsWith(SECRET_NAME_SUFFIX) ? secretName.slice(0, -SECRET_NAME_SUFFIX.length) : undefined;
}

/** The family in a task definition ARN (`...:task-definition/<family>:<revision>`). */
export function familyOfTaskDefinitionArn(arn: string): string {
  const last = arn.slice(arn.lastIndexOf('/') + 1);
  const colon = last.lastIndexOf(':');
  return colon === -1 ? last : last.slice(0, colon);
}

export function fleetTags(spec: Pick<InstanceSpec, 'annotatorId' | 'specHash'>): Record<string, string> {
  return {
    [TAG.managed]: 'true',
    [TAG.annotatorId]: String(spec.annotatorId),
    [TAG.specHash]: spec.specHash,
  };
}

/** A service's tags: the fleet's, and where its secrets live. */
export const serviceTags = (spec: Pick<InstanceSpec, 'annotatorId' | 'specHash'>): Record<string, string> => ({
  ...fleetTags(spec),
  [TAG.secretStore]: SECRET_STORE,
});

/**
 * The spec hash a service reports (from its tags): undefined while it still runs task definitions
 * from before secrets moved to Secrets Manager (no TAG.secretStore), so the reconciler sees a
 * changed spec and recreates it — which moves the secrets out and deletes the old revisions.
 */
export function reportedSpecHash(tags: Record<string, string | undefined>): string | undefined {
  return tags[TAG.secretStore] === SECRET_STORE ? tags[TAG.specHash] : undefined;
}

/** ECS spells tags `{key, value}`. */
export const ecsTags = (tags: Record<string, string>) => Object.entries(tags).map(([key, value]) => ({ key, value }));
/** ELBv2 and Secrets Manager spell tags `{Key, Value}`. */
export const elbTags = (tags: Record<string, string>) => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));

// ------------------------------------------------------------------------------------- sizing

/** Fargate's valid task sizes: CPU units → allowed memory (MiB). */
const FARGATE_SIZES: Array<{ cpu: number; memory: number[] }> = [
  { cpu: 256, memory: [512, 1024, 2048] },
  { cpu: 512, memory: steps(1024, 4096, 1024) },
  { cpu: 1024, memory: steps(2048, 8192, 1024) },
  { cpu: 2048, memory: steps(4096, 16384, 1024) },
  { cpu: 4096, memory: steps(8192, 30720, 1024) },
  { cpu: 8192, memory: steps(16384, 61440, 4096) },
  { cpu: 16384, memory: steps(32768, 122880, 8192) },
];

function steps(from: number, to: number, step: number): number[] {
  const out: number[] = [];
  for (let v = from; v <= to; v += step) out.push(v);
  return out;
}

export interface TaskSize {
  /** CPU units (1024 = one vCPU), as ECS wants it: a string. */
  cpu: string;
  /** MiB, a string. */
  memory: string;
}

/**
 * The task size for a spec. Fargate accepts only fixed CPU/memory pairs: the smallest pair that
 * gives at least the requested vCPUs and memory is chosen (never less than asked). EC2 takes the
 * request as it is.
 */
export function taskSize(launchType: 'FARGATE' | 'EC2', cpus: number, memoryMb: number): TaskSize {
  if (!(cpus > 0) || !(memoryMb > 0)) throw new RangeError(`cpus and memoryMb must be positive (got ${cpus}, ${memoryMb})`);
  const cpuUnits = Math.ceil(cpus * 1024);
  const mem = Math.ceil(memoryMb);
  if (launchType === 'EC2') return { cpu: String(Math.max(cpuUnits, 128)), memory: String(Math.max(mem, 6)) };
  for (const size of FARGATE_SIZES) {
    if (size.cpu < cpuUnits) continue;
    const memory = size.memory.find((m) => m >= mem);
    if (memory !== undefined) return { cpu: String(size.cpu), memory: String(memory) };
  }
  throw new RangeError(`no Fargate task size has ${cpus} vCPU and ${memoryMb} MiB (at most 16 vCPU and 120 GiB)`);
}

// ---------------------------------------------------------------------------- secrets

/** Secrets Manager secret or SSM parameter ARNs in env are passed as `secrets` (valueFrom) as they are. */
const SECRET_REF = /^arn:aws[a-z-]*:(secretsmanager|ssm):/;

/** Code-point order (not the locale's): the same on every machine. */
const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The env entries of a spec, sorted by name, split into what goes where. */
function splitEnv(spec: InstanceSpec) {
  const entries = Object.entries(spec.env).sort(([a], [b]) => compare(a, b));
  return {
    /** Values that already are references to a secret store. */
    refs: entries.filter(([, v]) => SECRET_REF.test(v)),
    /** The fleet's own secrets (SECRET_ENV): they go into the annotator's secret. */
    secret: entries.filter(([k, v]) => SECRET_ENV.has(k) && !SECRET_REF.test(v)),
    /** Everything else: plain task-definition environment. */
    plain: entries.filter(([k, v]) => !SECRET_ENV.has(k) && !SECRET_REF.test(v)),
  };
}

/** One version of an annotator's secret: what the task definition points at. */
export interface SecretVersion {
  /** The secret's full ARN (with Secrets Manager's random suffix). */
  arn: string;
  /** The version the task definition pins (32–64 characters). */
  versionId: string;
}

export interface SecretDocument {
  /** The SecretString: a JSON object of the secret env entries, keys sorted. */
  secretString: string;
  /**
   * The version's id (CreateSecret/PutSecretValue ClientRequestToken): sha256 of the document, 64
   * hex characters. The same secrets always give the same version, so a retried write adds nothing
   * and an unchanged secret never rolls the service. Seen in task definitions, it reveals nothing:
   * the document holds 256-bit keys derived from FLEET_SECRET_KEY, far beyond any guessing.
   */
  versionId: string;
}

/** The annotator's secret document: every SECRET_ENV entry of the spec's env. */
export function secretDocument(spec: InstanceSpec): SecretDocument {
  const secretString = JSON.stringify(Object.fromEntries(splitEnv(spec).secret));
  return { secretString, versionId: sha256(secretString) };
}

/**
 * ECS's reference to one JSON key of one version of a Secrets Manager secret:
 * `<arn>:<json-key>:<version-stage>:<version-id>`, the stage left empty when the id is given
 * (Fargate platform 1.4.0+, ECS agent 1.37+).
 */
export const secretValueFrom = (secret: SecretVersion, key: string) => `${secret.arn}:${key}::${secret.versionId}`;

/**
 * A task's stop reason, with the IAM action named when AWS denied the task execution role one
 * (ECS stops the task with e.g. "ResourceInitializationError: unable to pull secrets or registry
 * auth: ... AccessDeniedException: User: arn:aws:sts::…:assumed-role/<role>/… is not authorized to
 * perform: secretsmanager:GetSecretValue on resource: …"). Other reasons come back unchanged.
 */
export function explainStopReason(reason: string, executionRoleArn?: string): string {
  const action = /not authorized to perform:?\s*([a-z0-9-]+:[A-Za-z0-9*]+)/.exec(reason)?.[1];
  if (!action) return reason;
  const role = executionRoleArn ? ` ${executionRoleArn}` : '';
  return `AWS denied ${action} to the task execution role${role} (ECS_EXECUTION_ROLE_ARN): grant it (README "Running the fleet on ECS" lists the policy). ECS said: ${reason}`;
}

// ---------------------------------------------------------------------------- task definition

export interface TaskDefinitionSettings {
  launchType: 'FARGATE' | 'EC2';
  region: string;
  /** The role ECS reads the secrets (and pulls the image, ships logs) with. */
  executionRoleArn: string;
  taskRoleArn?: string;
  logGroup?: string;
}

/**
 * The RegisterTaskDefinition input (without tags) for a spec. Secret env entries become `secrets`
 * pointing at `secret` (the version secretDocument(spec) was written as); only non-secret settings
 * are `environment`. Throws when the spec has secrets and no secret version is given.
 */
export function taskDefinitionInput(spec: InstanceSpec, names: ResourceNames, s: TaskDefinitionSettings, secret?: SecretVersion) {
  const env = splitEnv(spec);
  if (env.secret.length && !secret) throw new Error(`annotator ${spec.annotatorId}: the task definition needs the secret's version`);
  const environment = env.plain.map(([name, value]) => ({ name, value }));
  const secrets = [
    ...env.refs.map(([name, valueFrom]) => ({ name, valueFrom })),
    ...env.secret.map(([name]) => ({ name, valueFrom: secretValueFrom(secret!, name) })),
  ].sort((a, b) => compare(a.name, b.name));
  const size = taskSize(s.launchType, spec.cpus, spec.memoryMb);
  return {
    family: names.family,
    networkMode: 'awsvpc' as const,
    requiresCompatibilities: [s.launchType],
    cpu: size.cpu,
    memory: size.memory,
    executionRoleArn: s.executionRoleArn,
    ...(s.taskRoleArn ? { taskRoleArn: s.taskRoleArn } : {}),
    containerDefinitions: [
      {
        name: CONTAINER_NAME,
        image: spec.image,
        essential: true,
        // The whole task's memory as the container's hard limit (the only container; moto's
        // RunTask also needs a container-level figure).
        memory: Number(size.memory),
        portMappings: [{ containerPort: spec.port, protocol: 'tcp' as const }],
        environment,
        ...(secrets.length ? { secrets } : {}),
        ...(s.logGroup
          ? {
              logConfiguration: {
                logDriver: 'awslogs' as const,
                options: {
                  'awslogs-group': s.logGroup,
                  'awslogs-region': s.region,
                  'awslogs-stream-prefix': names.family,
                },
              },
            }
          : {}),
      },
    ],
  };
}

export type TaskDefinitionInput = ReturnType<typeof taskDefinitionInput>;

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Hash of the whole task definition request: same spec and settings → same hash → no new revision. */
export function taskDefinitionHash(input: TaskDefinitionInput): string {
  return sha256(JSON.stringify(input));
}

/**
 * CreateService's clientToken (≤ 36 ASCII characters): the same cluster, service, task definition
 * revision and previous incarnation (the deleted service's createdAt, if AWS still shows it) give
 * the same token, so a retried create returns the service it made instead of a second one, while
 * a service recreated after a delete gets a token of its own.
 */
export function createServiceToken(cluster: string, service: string, taskDefinitionArn: string, previous = ''): string {
  return sha256(`${cluster}\n${service}\n${taskDefinitionArn}\n${previous}`).slice(0, 32);
}
