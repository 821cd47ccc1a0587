/**
 * What the ECS backend asks AWS for, computed from a spec and the backend's settings (pure: no
 * I/O). Names, tags, Fargate sizing, the task definition and the idempotency token all come from
 * here, so the same spec always yields byte-for-byte the same request.
 */
import { createHash } from 'node:crypto';
import type { InstanceSpec } from './types.ts';

export const TAG = {
  managed: 'labelfleet.managed',
  annotatorId: 'labelfleet.annotator-id',
  specHash: 'labelfleet.spec-hash',
  /** On task definitions: hash of the whole RegisterTaskDefinition input (spec + settings). */
  taskDefHash: 'labelfleet.taskdef-hash',
} as const;

/** The container's name inside the task definition (the service's load balancer points at it). */
export const CONTAINER_NAME = 'label-studio';
/** Label Studio's health endpoint, used by the target group's health check. */
export const HEALTH_CHECK_PATH = '/health/';

export interface ResourceNames {
  family: string;
  service: string;
  targetGroup: string;
}

/** `<prefix>-<id>` for the family, the service and the target group (a target group name is ≤ 32). */
export function resourceNames(prefix: string, annotatorId: number): ResourceNames {
  const name = `${prefix}-${annotatorId}`;
  if (name.length > 32) throw new RangeError(`resource name ${name} is longer than 32 characters`);
  return { family: name, service: name, targetGroup: name };
}

/** The annotator id in a `<prefix>-<id>` name, or undefined when the name is not one of ours. */
export function annotatorIdFromName(prefix: string, name: string): number | undefined {
  if (!name.startsWith(`${prefix}-`)) return undefined;
  const rest = name.slice(prefix.length + 1);
  if (!/^[1-9][0-9]{0,15}$/.test(rest)) return undefined;
  const id = Number(rest);
  return Number.isSafeInteger(id) ? id : undefined;
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

/** ECS spells tags `{key, value}`. */
export const ecsTags = (tags: Record<string, string>) => Object.entries(tags).map(([key, value]) => ({ key, value }));
/** ELBv2 spells tags `{Key, Value}`. */
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

// ---------------------------------------------------------------------------- task definition

/** Secrets Manager secret or SSM parameter ARNs in env are passed as `secrets` (valueFrom). */
const SECRET_REF = /^arn:aws[a-z-]*:(secretsmanager|ssm):/;

export interface TaskDefinitionSettings {
  launchType: 'FARGATE' | 'EC2';
  region: string;
  executionRoleArn?: string;
  taskRoleArn?: string;
  logGroup?: string;
}

/** The RegisterTaskDefinition input (without tags) for a spec. */
export function taskDefinitionInput(spec: InstanceSpec, names: ResourceNames, s: TaskDefinitionSettings) {
  const entries = Object.entries(spec.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const environment = entries.filter(([, v]) => !SECRET_REF.test(v)).map(([name, value]) => ({ name, value }));
  const secrets = entries.filter(([, v]) => SECRET_REF.test(v)).map(([name, valueFrom]) => ({ name, valueFrom }));
  const size = taskSize(s.launchType, spec.cpus, spec.memoryMb);
  return {
    family: names.family,
    networkMode: 'awsvpc' as const,
    requiresCompatibilities: [s.launchType],
    cpu: size.cpu,
    memory: size.memory,
    ...(s.executionRoleArn ? { executionRoleArn: s.executionRoleArn } : {}),
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
