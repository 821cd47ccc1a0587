/**
 * The fleet on AWS ECS (ORCHESTRATOR_BACKEND=ecs). Per annotator, all named `<prefix>-<id>`
 * (ECS_NAME_PREFIX, default `fleet-ls`) and tagged labelfleet.managed / annotator-id / spec-hash:
 *   - a Secrets Manager secret `<prefix>-<id>/secrets`: the instance's secret environment as one
 *     JSON document, a new version whenever it changes (each start generation),
 *   - a task definition family (one revision per distinct spec + settings), whose container gets
 *     the secrets as `secrets` pinned to that version and only non-secret settings as `environment`;
 *     earlier revisions are deregistered and deleted,
 *   - a service in ECS_CLUSTER (awsvpc on Fargate or EC2; 0 or 1 task),
 *   - an ELBv2 target group (target type ip) and a listener rule
 *     `host-header <subdomain>.<FLEET_DOMAIN>` → that target group on ALB_LISTENER_ARN.
 * Every method reads what exists and does only what is missing, so it can be re-run at any point
 * (after a crash, a retry, or someone deleting a rule or target group by hand). "Not found" from
 * AWS means gone, not an error. Credentials and region come from the SDK's standard chain
 * (region from AWS_REGION); AWS_ENDPOINT_URL points the clients at an AWS-compatible endpoint.
 */
import {
  CreateServiceCommand,
  DeleteServiceCommand,
  DeleteTaskDefinitionsCommand,
  DeregisterTaskDefinitionCommand,
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  DescribeTasksCommand,
  ECSClient,
  ListServicesCommand,
  ListTaskDefinitionFamiliesCommand,
  ListTaskDefinitionsCommand,
  ListTasksCommand,
  RegisterTaskDefinitionCommand,
  TagResourceCommand,
  UpdateServiceCommand,
  type Service,
  type Task,
} from '@aws-sdk/client-ecs';
import {
  AddTagsCommand,
  CreateRuleCommand,
  CreateTargetGroupCommand,
  DeleteRuleCommand,
  DeleteTargetGroupCommand,
  DescribeRulesCommand,
  DescribeTagsCommand,
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  ModifyRuleCommand,
  type Rule,
  type TargetGroup,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  ListSecretsCommand,
  PutSecretValueCommand,
  RestoreSecretCommand,
  SecretsManagerClient,
  TagResourceCommand as TagSecretCommand,
} from '@aws-sdk/client-secrets-manager';
import { ConfigError, ecsNamePrefix, type Config } from '../../src/config.ts';
import type { Logger } from '../../src/logger.ts';
import { ForeignResourceError, foreignMessage, isOurs, type Owner } from '../ownership.ts';
import {
  annotatorIdFromName,
  CONTAINER_NAME,
  createServiceToken,
  ecsTags,
  elbTags,
  explainStopReason,
  familyOfTaskDefinitionArn,
  fleetTags,
  HEALTH_CHECK_PATH,
  reportedSpecHash,
  resourceNames,
  secretDocument,
  secretOwnerName,
  serviceTags,
  TAG,
  taskDefinitionHash,
  taskDefinitionInput,
  type ResourceNames,
  type SecretVersion,
} from './ecs-plan.ts';
import { choosePriority, PRIORITY_RETRIES } from './ecs-priority.ts';
import type { Backend, InstanceSpec, InstanceState, ObservedInstance } from './types.ts';

export interface EcsBackendOptions {
  cluster: string;
  launchType: 'FARGATE' | 'EC2';
  subnets: string[];
  securityGroups: string[];
  /** Fargate only: give tasks a public IP (needed to pull images without a NAT or endpoints). */
  assignPublicIp: boolean;
  /** The task execution role: ECS reads the annotator's secret with it (and pulls the image, ships logs). */
  executionRoleArn: string;
  taskRoleArn?: string;
  /** CloudWatch Logs group for awslogs; unset → no log configuration. */
  logGroup?: string;
  listenerArn: string;
  vpcId: string;
  fleetDomain: string;
  region: string;
  /** AWS-compatible endpoint (moto in tests); unset → AWS. */
  endpoint?: string;
  /** Names are `<namePrefix>-<annotatorId>`. */
  namePrefix: string;
  /** Rule priority = priorityOffset + annotator id (ecs-priority.ts). */
  priorityOffset: number;
  /** Seconds ECS ignores failing ALB health checks of a new task (LS's first boot migrates). */
  healthCheckGraceSeconds?: number;
  /** Explicit credentials (tests); unset → the SDK's standard chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  logger?: Pick<Logger, 'info' | 'warn' | 'debug'>;
}

/**
 * Builds the ECS settings from config. Which settings ECS needs, and which combinations could
 * never start a task, are rules of src/config.ts: loadConfig has refused such a config before.
 */
export function ecsOptionsFromConfig(config: Config): EcsBackendOptions {
  const need = <T>(name: string, value: T | undefined): T => {
    if (value === undefined) throw new ConfigError([{ variable: name, message: 'is required when ORCHESTRATOR_BACKEND=ecs' }]);
    return value;
  };
  return {
    cluster: need('ECS_CLUSTER', config.ECS_CLUSTER),
    launchType: config.ECS_LAUNCH_TYPE,
    subnets: need('ECS_SUBNETS', config.ECS_SUBNETS),
    securityGroups: need('ECS_SECURITY_GROUPS', config.ECS_SECURITY_GROUPS),
    assignPublicIp: config.ECS_ASSIGN_PUBLIC_IP,
    // Every task definition takes its secrets from Secrets Manager, which ECS reads with this role.
    executionRoleArn: need('ECS_EXECUTION_ROLE_ARN', config.ECS_EXECUTION_ROLE_ARN),
    taskRoleArn: config.ECS_TASK_ROLE_ARN,
    logGroup: config.ECS_LOG_GROUP,
    listenerArn: need('ALB_LISTENER_ARN', config.ALB_LISTENER_ARN),
    vpcId: need('ECS_VPC_ID', config.ECS_VPC_ID),
    fleetDomain: config.FLEET_DOMAIN,
    region: config.AWS_REGION,
    endpoint: config.AWS_ENDPOINT_URL,
    // Same scheme as the Docker fleet: `fleet-ls-[<FLEET_NAMESPACE>-]<id>`.
    namePrefix: ecsNamePrefix(config),
    priorityOffset: config.ALB_RULE_PRIORITY_OFFSET,
  };
}

/** An AWS call failed. `code` is AWS's error name (e.g. PriorityInUseException). */
export class EcsBackendError extends Error {
  constructor(
    message: string,
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EcsBackendError';
  }
}

/** AWS refused a call for lack of a permission; the message names the IAM action. */
export class EcsPermissionError extends EcsBackendError {
  constructor(
    readonly action: string,
    awsMessage: string,
    options?: { cause?: unknown },
  ) {
    super(
      `AWS denied ${action}: grant it to the fleet's IAM identity (README "Running the fleet on ECS" lists the policy). AWS said: ${awsMessage}`,
      'AccessDenied',
      options,
    );
    this.name = 'EcsPermissionError';
  }
}

const ACCESS_DENIED = new Set(['AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'UnauthorizedException']);
const BAD_CREDENTIALS = new Set([
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'InvalidSignatureException',
  'ExpiredToken',
  'ExpiredTokenException',
  'CredentialsProviderError',
]);

/**
 * HTTP 403 whose body the SDK could not parse (a proxy, or an endpoint answering a JSON-protocol
 * call with an XML error, as moto does for IAM denials): AWS's message if one can be found.
 */
function forbiddenBody(err: unknown): string | undefined {
  const e = err as { name?: string; $response?: { statusCode?: number }; $responseBodyText?: string } | null;
  if (e?.$response?.statusCode !== 403 || (e.name !== 'SyntaxError' && e.$responseBodyText === undefined)) return undefined;
  const text = e.$responseBodyText ?? '';
  return /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? (text.slice(0, 300) || 'HTTP 403');
}

function errorCode(err: unknown): string | undefined {
  if (err instanceof EcsBackendError) return err.code;
  const e = err as { name?: unknown; Code?: unknown; code?: unknown } | null;
  for (const v of [e?.name, e?.Code, e?.code]) if (typeof v === 'string' && v !== 'Error') return v;
  return undefined;
}

/** True when the error is AWS's `code`, spelled with or without the `Exception` suffix. */
export function isAwsError(err: unknown, ...codes: string[]): boolean {
  const code = errorCode(err);
  if (!code) return false;
  const bare = code.replace(/Exception$/, '');
  return codes.some((c) => c === code || c.replace(/Exception$/, '') === bare);
}

const chunks = <T>(items: T[], size: number): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
};

const ruleHosts = (rule: Rule): string[] =>
  (rule.Conditions ?? [])
    .filter((c) => c.Field === 'host-header')
    .flatMap((c) => c.HostHeaderConfig?.Values ?? c.Values ?? []);

const ruleTargets = (rule: Rule): string[] =>
  (rule.Actions ?? [])
    .filter((a) => a.Type === 'forward')
    .flatMap((a) => [a.TargetGroupArn, ...(a.ForwardConfig?.TargetGroups ?? []).map((t) => t.TargetGroupArn)])
    .filter((arn): arn is string => !!arn);

const ecsTagMap = (tags: Array<{ key?: string; value?: string }> | undefined): Record<string, string | undefined> =>
  Object.fromEntries((tags ?? []).map((t) => [t.key ?? '', t.value]));
/** Secrets Manager's `{Key, Value}` tags as a map. */
const secretTagMap = (tags: Array<{ Key?: string; Value?: string }> | undefined): Record<string, string | undefined> =>
  Object.fromEntries((tags ?? []).map((t) => [t.Key ?? '', t.Value]));

/** How often ensure tries to create a secret whose name Secrets Manager has not yet freed (1 s, 2 s, … apart). */
const SECRET_CREATE_ATTEMPTS = 5;

/** Same subnets, security groups (in any order) and public IP choice. */
function sameNetwork(
  a: { subnets?: string[]; securityGroups?: string[]; assignPublicIp?: string } | undefined,
  b: { subnets: string[]; securityGroups: string[]; assignPublicIp?: string },
): boolean {
  const same = (x: string[] | undefined, y: string[]) => JSON.stringify([...(x ?? [])].sort()) === JSON.stringify([...y].sort());
  return !!a && same(a.subnets, b.subnets) && same(a.securityGroups, b.securityGroups) && (a.assignPublicIp ?? 'DISABLED') === (b.assignPublicIp ?? 'DISABLED');
}

const isLive = (svc: Service | undefined): svc is Service => !!svc && (svc.status === 'ACTIVE' || svc.status === 'DRAINING');

export class EcsBackend implements Backend {
  readonly kind = 'ecs' as const;
  readonly ecs: ECSClient;
  readonly elb: ElasticLoadBalancingV2Client;
  readonly sm: SecretsManagerClient;
  readonly #o: EcsBackendOptions;
  /** This installation (setOwner): marks what the backend creates; what another installation made is never touched. */
  #owner: Owner | undefined;

  constructor(options: EcsBackendOptions, clients: { ecs?: ECSClient; elb?: ElasticLoadBalancingV2Client; sm?: SecretsManagerClient } = {}) {
    this.#o = options;
    const common = {
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      maxAttempts: 5,
    };
    this.ecs = clients.ecs ?? new ECSClient(common);
    this.elb = clients.elb ?? new ElasticLoadBalancingV2Client(common);
    this.sm = clients.sm ?? new SecretsManagerClient(common);
  }

  /** From now on every resource created or re-tagged carries the installation id (orchestrator/ownership.ts). */
  setOwner(owner: Owner): void {
    this.#owner = owner;
  }

  names(annotatorId: number): ResourceNames {
    return resourceNames(this.#o.namePrefix, annotatorId);
  }

  host(subdomain: string): string {
    return `${subdomain}.${this.#o.fleetDomain}`;
  }

  // ------------------------------------------------------------------------------ Backend API

  async ensure(spec: InstanceSpec): Promise<ObservedInstance> {
    if (!Number.isSafeInteger(spec.annotatorId) || spec.annotatorId < 1) {
      throw new EcsBackendError(`annotator id must be a positive integer, got ${spec.annotatorId}`);
    }
    const names = this.names(spec.annotatorId);
    // The secret first: without it no task can start, so nothing else is built until it is written.
    const secret = await this.#ensureSecret(spec, names);
    const tg = await this.#ensureTargetGroup(spec, names);
    await this.#ensureRule(spec, tg.TargetGroupArn!);
    const taskDefinitionArn = await this.#ensureTaskDefinition(spec, names, secret);
    const service = await this.#ensureService(spec, names, taskDefinitionArn, tg.TargetGroupArn!);
    if (service?.taskDefinition === taskDefinitionArn) await this.#retireRevisions(names.family, spec.annotatorId, taskDefinitionArn);
    return this.observe(spec.annotatorId);
  }

  async stop(annotatorId: number): Promise<void> {
    const names = this.names(annotatorId);
    const svc = await this.#ownService(annotatorId);
    if (svc?.status !== 'ACTIVE' || svc.desiredCount === 0) return;
    await this.#call('ecs:UpdateService', () =>
      this.ecs.send(new UpdateServiceCommand({ cluster: this.#o.cluster, service: names.service, desiredCount: 0 })),
    );
    this.#o.logger?.info({ annotatorId, service: names.service }, 'ecs: service scaled to 0');
  }

  /** `purgeData` changes nothing here: an ECS instance keeps no data of its own (its database is elsewhere). */
  async remove(annotatorId: number, _opts?: { purgeData?: boolean }): Promise<void> {
    const names = this.names(annotatorId);
    // Only what carries the fleet's tags is removed: a same-named stranger is left alone.
    const svc = await this.#ownService(annotatorId);
    if (svc?.status === 'ACTIVE') {
      await this.#call(
        'ecs:DeleteService',
        () => this.ecs.send(new DeleteServiceCommand({ cluster: this.#o.cluster, service: names.service, force: true })),
        ['ServiceNotFoundException', 'ServiceNotActiveException'],
      );
      this.#o.logger?.info({ annotatorId, service: names.service }, 'ecs: service deleted');
    }
    let tg = await this.#findTargetGroup(names.targetGroup);
    if (tg && this.#ownedId(tg.TargetGroupName, (await this.#elbTagsOf([tg.TargetGroupArn!])).get(tg.TargetGroupArn!) ?? {}) !== annotatorId) {
      tg = undefined;
    }
    // Rules go before the target group (a target group in use by a rule cannot be deleted).
    const rules = await this.#listRules();
    const tagged = await this.#elbTagsOf(rules.filter((r) => !r.IsDefault).map((r) => r.RuleArn!));
    for (const rule of rules) {
      const tags = tagged.get(rule.RuleArn!) ?? {};
      const ours =
        (tg && ruleTargets(rule).includes(tg.TargetGroupArn!)) ||
        (tags[TAG.managed] === 'true' && tags[TAG.annotatorId] === String(annotatorId) && isOurs(this.#owner, tags[TAG.installation]));
      if (!ours || rule.IsDefault) continue;
      await this.#call('elasticloadbalancing:DeleteRule', () => this.elb.send(new DeleteRuleCommand({ RuleArn: rule.RuleArn })), [
        'RuleNotFoundException',
      ]);
    }
    if (tg) {
      await this.#call(
        'elasticloadbalancing:DeleteTargetGroup',
        () => this.elb.send(new DeleteTargetGroupCommand({ TargetGroupArn: tg.TargetGroupArn })),
        ['TargetGroupNotFoundException'],
      );
    }
    await this.#retireRevisions(names.family, annotatorId);
    // Last: until the service is gone, a task it starts still reads the secret.
    await this.#removeSecret(annotatorId, names);
    this.#o.logger?.info({ annotatorId }, 'ecs: annotator resources removed');
  }

  async observe(annotatorId: number): Promise<ObservedInstance> {
    const names = this.names(annotatorId);
    const svc = await this.#ownService(annotatorId);
    if (!svc) return { annotatorId, state: 'missing', health: 'unknown' };
    const tags = ecsTagMap(svc.tags);
    const base: ObservedInstance = {
      annotatorId,
      state: 'starting',
      instanceId: svc.serviceArn,
      health: 'unknown',
      specHash: reportedSpecHash(tags),
    };
    const primary = (svc.deployments ?? []).find((d) => d.status === 'PRIMARY');
    if (primary?.failedTasks) base.restartCount = primary.failedTasks;
    if (svc.status === 'DRAINING') return { ...base, state: 'stopped', message: 'service is being deleted (DRAINING)' };

    const lb = (svc.loadBalancers ?? [])[0];
    const port = lb?.containerPort;
    const tasks = await this.#serviceTasks(names.service, 'RUNNING');
    const running = tasks.find((t) => t.lastStatus === 'RUNNING');
    const withIp = running ?? tasks[0];
    const ip = withIp && taskPrivateIp(withIp);
    if (ip) base.ip = ip;
    if (ip && port) base.address = { host: ip, port };
    if (ip && port && lb?.targetGroupArn) base.health = await this.#targetHealth(lb.targetGroupArn, ip, port);

    let state: InstanceState;
    if (svc.desiredCount === 0) {
      state = 'stopped';
      const left = tasks.length || svc.runningCount || 0;
      if (left) base.message = `scaled to 0; ${left} task(s) still stopping`;
    } else if (running || (svc.runningCount ?? 0) > 0) {
      state = 'running';
    } else if (primary?.rolloutState === 'FAILED') {
      state = 'failed';
      base.message = primary.rolloutStateReason ?? 'deployment failed';
    } else {
      state = 'starting';
      if (primary?.failedTasks) base.message = (await this.#lastStopReason(names.service)) ?? `${primary.failedTasks} task(s) failed to start`;
    }
    return { ...base, state };
  }

  async list(): Promise<ObservedInstance[]> {
    const found = new Map<number, ObservedInstance>();
    const add = (o: ObservedInstance) => {
      if (!found.has(o.annotatorId)) found.set(o.annotatorId, o);
    };

    // Services in the cluster carrying the fleet's tag.
    const serviceArns: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.#call('ecs:ListServices', () =>
        this.ecs.send(new ListServicesCommand({ cluster: this.#o.cluster, nextToken, maxResults: 100 })),
      );
      serviceArns.push(...(page.serviceArns ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
    for (const batch of chunks(serviceArns, 10)) {
      const res = await this.#call('ecs:DescribeServices', () =>
        this.ecs.send(new DescribeServicesCommand({ cluster: this.#o.cluster, services: batch, include: ['TAGS'] })),
      );
      for (const svc of res.services ?? []) {
        if (!isLive(svc)) continue;
        const tags = ecsTagMap(svc.tags);
        const id = this.#ownedId(svc.serviceName, tags);
        if (id === undefined) continue;
        add({
          annotatorId: id,
          state: svc.desiredCount === 0 || svc.status === 'DRAINING' ? 'stopped' : (svc.runningCount ?? 0) > 0 ? 'running' : 'starting',
          instanceId: svc.serviceArn,
          health: 'unknown',
          specHash: reportedSpecHash(tags),
        });
      }
    }

    // Target groups carrying the tag (a service may be gone while its target group is left).
    const groups: TargetGroup[] = [];
    let marker: string | undefined;
    do {
      const page = await this.#call('elasticloadbalancing:DescribeTargetGroups', () =>
        this.elb.send(new DescribeTargetGroupsCommand({ Marker: marker, PageSize: 400 })),
      );
      groups.push(...(page.TargetGroups ?? []));
      marker = page.NextMarker;
    } while (marker);
    const ours = groups.filter((g) => annotatorIdFromName(this.#o.namePrefix, g.TargetGroupName ?? '') !== undefined);
    const groupTags = await this.#elbTagsOf(ours.map((g) => g.TargetGroupArn!));
    for (const g of ours) {
      const id = this.#ownedId(g.TargetGroupName, groupTags.get(g.TargetGroupArn!) ?? {});
      if (id !== undefined) add({ annotatorId: id, state: 'missing', health: 'unknown', message: 'target group without a service' });
    }

    // Task definition families with ACTIVE revisions tagged as ours (left by a half-done remove).
    const families: string[] = [];
    nextToken = undefined;
    do {
      const page = await this.#call('ecs:ListTaskDefinitionFamilies', () =>
        this.ecs.send(new ListTaskDefinitionFamiliesCommand({ familyPrefix: `${this.#o.namePrefix}-`, status: 'ACTIVE', nextToken })),
      );
      families.push(...(page.families ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
    for (const family of families) {
      const id = annotatorIdFromName(this.#o.namePrefix, family);
      if (id === undefined || found.has(id)) continue;
      const arns = await this.#revisions(family, 'ACTIVE');
      if (!arns.length) continue;
      const td = await this.#call('ecs:DescribeTaskDefinition', () =>
        this.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: arns[arns.length - 1], include: ['TAGS'] })),
      );
      const tags = ecsTagMap(td.tags);
      if (this.#ownedId(family, tags) !== undefined) {
        add({ annotatorId: id, state: 'missing', health: 'unknown', message: 'task definition without a service' });
      }
    }

    // Secrets carrying the tag (the last thing remove deletes).
    nextToken = undefined;
    do {
      const page = await this.#call('secretsmanager:ListSecrets', () =>
        this.sm.send(
          new ListSecretsCommand({
            Filters: [
              { Key: 'name', Values: [`${this.#o.namePrefix}-`] },
              { Key: 'tag-key', Values: [TAG.managed] },
            ],
            MaxResults: 100,
            NextToken: nextToken,
          }),
        ),
      );
      for (const secret of page.SecretList ?? []) {
        const id = this.#ownedId(secretOwnerName(secret.Name ?? ''), secretTagMap(secret.Tags));
        if (id !== undefined) add({ annotatorId: id, state: 'missing', health: 'unknown', message: 'secret without a service' });
      }
      nextToken = page.NextToken;
    } while (nextToken);
    return [...found.values()].sort((a, b) => a.annotatorId - b.annotatorId);
  }

  // ---------------------------------------------------------------------------- target group

  async #findTargetGroup(name: string): Promise<TargetGroup | undefined> {
    const res = await this.#call(
      'elasticloadbalancing:DescribeTargetGroups',
      () => this.elb.send(new DescribeTargetGroupsCommand({ Names: [name] })),
      ['TargetGroupNotFoundException'],
    );
    return res?.TargetGroups?.[0];
  }

  async #ensureTargetGroup(spec: InstanceSpec, names: ResourceNames): Promise<TargetGroup> {
    let tg = await this.#findTargetGroup(names.targetGroup);
    if (!tg) {
      const res = await this.#call(
        'elasticloadbalancing:CreateTargetGroup',
        () =>
          this.elb.send(
            new CreateTargetGroupCommand({
              Name: names.targetGroup,
              Protocol: 'HTTP',
              Port: spec.port,
              VpcId: this.#o.vpcId,
              TargetType: 'ip',
              HealthCheckProtocol: 'HTTP',
              HealthCheckPath: HEALTH_CHECK_PATH,
              HealthCheckIntervalSeconds: 15,
              HealthyThresholdCount: 2,
              UnhealthyThresholdCount: 5,
              Matcher: { HttpCode: '200' },
              Tags: elbTags(this.#tags(spec)),
            }),
          ),
        // Created by a concurrent call between our describe and create: use that one.
        ['DuplicateTargetGroupNameException'],
      );
      tg = res?.TargetGroups?.[0] ?? (await this.#findTargetGroup(names.targetGroup));
      if (!tg) throw new EcsBackendError(`target group ${names.targetGroup} vanished right after it was created`);
      this.#o.logger?.info({ annotatorId: spec.annotatorId, targetGroup: names.targetGroup }, 'ecs: target group created');
      return tg;
    }
    const tags = (await this.#elbTagsOf([tg.TargetGroupArn!])).get(tg.TargetGroupArn!) ?? {};
    if (tags[TAG.managed] !== 'true') {
      throw new EcsBackendError(
        `target group ${names.targetGroup} exists but is not LabelFleet's (no ${TAG.managed} tag): rename it or set ECS_NAME_PREFIX`,
      );
    }
    this.#refuseForeign(`target group ${names.targetGroup}`, tags);
    if (Object.entries(this.#tags(spec)).some(([k, v]) => tags[k] !== v)) {
      await this.#call('elasticloadbalancing:AddTags', () =>
        this.elb.send(new AddTagsCommand({ ResourceArns: [tg.TargetGroupArn!], Tags: elbTags(this.#tags(spec)) })),
      );
    }
    return tg;
  }

  // ---------------------------------------------------------------------------- listener rule

  async #listRules(): Promise<Rule[]> {
    const rules: Rule[] = [];
    let marker: string | undefined;
    do {
      const page = await this.#call('elasticloadbalancing:DescribeRules', () =>
        this.elb.send(new DescribeRulesCommand({ ListenerArn: this.#o.listenerArn, Marker: marker, PageSize: 400 })),
      );
      rules.push(...(page.Rules ?? []));
      marker = page.NextMarker;
    } while (marker);
    return rules;
  }

  async #ensureRule(spec: InstanceSpec, targetGroupArn: string): Promise<void> {
    const host = this.host(spec.subdomain);
    const tags = this.#tags(spec);
    for (let attempt = 0; ; attempt++) {
      const rules = await this.#listRules();
      const ours = rules
        .filter((r) => !r.IsDefault && ruleTargets(r).includes(targetGroupArn))
        .sort((a, b) => Number(a.Priority) - Number(b.Priority));
      if (ours.length) {
        const [keep, ...extra] = ours;
        // Two rules for one target group (two ensure calls raced past each other): keep one.
        for (const rule of extra) {
          await this.#call('elasticloadbalancing:DeleteRule', () => this.elb.send(new DeleteRuleCommand({ RuleArn: rule.RuleArn })), [
            'RuleNotFoundException',
          ]);
        }
        const hosts = ruleHosts(keep!);
        if (hosts.length !== 1 || hosts[0] !== host) {
          // The subdomain changed: route the new host name.
          await this.#call('elasticloadbalancing:ModifyRule', () =>
            this.elb.send(
              new ModifyRuleCommand({ RuleArn: keep!.RuleArn, Conditions: [{ Field: 'host-header', HostHeaderConfig: { Values: [host] } }] }),
            ),
          );
        }
        const current = (await this.#elbTagsOf([keep!.RuleArn!])).get(keep!.RuleArn!) ?? {};
        if (Object.entries(tags).some(([k, v]) => current[k] !== v)) {
          await this.#call('elasticloadbalancing:AddTags', () =>
            this.elb.send(new AddTagsCommand({ ResourceArns: [keep!.RuleArn!], Tags: elbTags(tags) })),
          );
        }
        return;
      }
      const taken = new Set(rules.filter((r) => !r.IsDefault).map((r) => Number(r.Priority)));
      const priority = choosePriority(spec.annotatorId, taken, this.#o.priorityOffset);
      if (priority === undefined) {
        throw new EcsBackendError(`listener ${this.#o.listenerArn} has no free rule priority above ${this.#o.priorityOffset}`);
      }
      try {
        await this.#call('elasticloadbalancing:CreateRule', () =>
          this.elb.send(
            new CreateRuleCommand({
              ListenerArn: this.#o.listenerArn,
              Priority: priority,
              Conditions: [{ Field: 'host-header', HostHeaderConfig: { Values: [host] } }],
              Actions: [{ Type: 'forward', TargetGroupArn: targetGroupArn }],
              Tags: elbTags(tags),
            }),
          ),
        );
        this.#o.logger?.info({ annotatorId: spec.annotatorId, host, priority }, 'ecs: listener rule created');
        return;
      } catch (err) {
        // Someone took the slot between our read and our create: read again and take another.
        if (isAwsError(err, 'PriorityInUseException') && attempt < PRIORITY_RETRIES) continue;
        throw err;
      }
    }
  }

  // ------------------------------------------------------------------------- task definition

  async #ensureTaskDefinition(spec: InstanceSpec, names: ResourceNames, secret: SecretVersion): Promise<string> {
    const input = taskDefinitionInput(spec, names, this.#o, secret);
    const hash = taskDefinitionHash(input);
    const latest = await this.#call(
      'ecs:DescribeTaskDefinition',
      () => this.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: names.family, include: ['TAGS'] })),
      ['ClientException'],
    );
    const td = latest?.taskDefinition;
    const tags = ecsTagMap(latest?.tags);
    if (td?.status === 'ACTIVE' && td.taskDefinitionArn && tags[TAG.taskDefHash] === hash) {
      // Made before installation ids (and adopted): marked in place, not registered again (no roll).
      const want = this.#tags(spec);
      if (Object.entries(want).some(([k, v]) => tags[k] !== v)) {
        const arn = td.taskDefinitionArn;
        await this.#call('ecs:TagResource', () => this.ecs.send(new TagResourceCommand({ resourceArn: arn, tags: ecsTags(want) })));
      }
      return td.taskDefinitionArn;
    }
    const res = await this.#call('ecs:RegisterTaskDefinition', () =>
      this.ecs.send(new RegisterTaskDefinitionCommand({ ...input, tags: ecsTags({ ...this.#tags(spec), [TAG.taskDefHash]: hash }) })),
    );
    const arn = res.taskDefinition?.taskDefinitionArn;
    if (!arn) throw new EcsBackendError(`RegisterTaskDefinition returned no ARN for ${names.family}`);
    this.#o.logger?.info({ annotatorId: spec.annotatorId, taskDefinition: arn }, 'ecs: task definition registered');
    return arn;
  }

  async #revisions(family: string, status: 'ACTIVE' | 'INACTIVE'): Promise<string[]> {
    const arns: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.#call('ecs:ListTaskDefinitions', () =>
        this.ecs.send(new ListTaskDefinitionsCommand({ familyPrefix: family, status, nextToken, sort: 'ASC' })),
      );
      // familyPrefix is a prefix: fleet-ls-1 also lists fleet-ls-12. Keep the exact family only.
      arns.push(...(page.taskDefinitionArns ?? []).filter((arn) => familyOfTaskDefinitionArn(arn) === family));
      nextToken = page.nextToken;
    } while (nextToken);
    return arns;
  }

  /**
   * Deregisters every ACTIVE revision of the family except `keep`, then deletes every INACTIVE one
   * (DeleteTaskDefinitions; tasks still running on one keep running), so no earlier spec — nor a
   * secret written by a LabelFleet that still put secrets in the environment — stays readable.
   * Only revisions tagged as the annotator's: a stranger's revision in the family is left alone.
   */
  async #retireRevisions(family: string, annotatorId: number, keep?: string): Promise<void> {
    const ownership = new Map<string, boolean>(); // a revision deregistered here is listed again as INACTIVE
    const owned = async (arn: string) => {
      if (!ownership.has(arn)) {
        const td = await this.#call(
          'ecs:DescribeTaskDefinition',
          () => this.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: arn, include: ['TAGS'] })),
          ['ClientException'],
        );
        ownership.set(arn, this.#ownedId(family, ecsTagMap(td?.tags)) === annotatorId);
      }
      return ownership.get(arn)!;
    };
    for (const arn of await this.#revisions(family, 'ACTIVE')) {
      if (arn === keep || !(await owned(arn))) continue;
      await this.#call(
        'ecs:DeregisterTaskDefinition',
        () => this.ecs.send(new DeregisterTaskDefinitionCommand({ taskDefinition: arn })),
        ['ClientException'],
      );
    }
    const inactive: string[] = [];
    for (const arn of await this.#revisions(family, 'INACTIVE')) if (await owned(arn)) inactive.push(arn);
    for (const batch of chunks(inactive, 10)) {
      const res = await this.#call('ecs:DeleteTaskDefinitions', () => this.ecs.send(new DeleteTaskDefinitionsCommand({ taskDefinitions: batch })));
      // Left for the next ensure or remove to try again.
      for (const f of res.failures ?? []) this.#o.logger?.warn({ family, taskDefinition: f.arn, reason: f.reason }, 'ecs: revision not deleted');
    }
  }

  // ---------------------------------------------------------------------------------- secret

  async #describeSecret(name: string) {
    return this.#call('secretsmanager:DescribeSecret', () => this.sm.send(new DescribeSecretCommand({ SecretId: name })), [
      'ResourceNotFoundException',
    ]);
  }

  /**
   * Makes the annotator's secret hold the spec's secret environment and returns the version the
   * task definition pins. Creates the secret (tagged) when missing, restores it when someone
   * scheduled it for deletion, and writes a new version only when the secrets changed (a new start
   * generation, a new password); the same document is always the same version.
   */
  async #ensureSecret(spec: InstanceSpec, names: ResourceNames): Promise<SecretVersion> {
    const doc = secretDocument(spec);
    const tags = this.#tags(spec);
    for (let attempt = 1; attempt <= SECRET_CREATE_ATTEMPTS; attempt++) {
      const found = await this.#describeSecret(names.secret);
      if (!found) {
        let created;
        try {
          created = await this.#call(
            'secretsmanager:CreateSecret',
            () =>
              this.sm.send(
                new CreateSecretCommand({
                  Name: names.secret,
                  Description: `LabelFleet: the secret environment of annotator ${spec.annotatorId}'s Label Studio`,
                  SecretString: doc.secretString,
                  ClientRequestToken: doc.versionId,
                  Tags: elbTags(tags),
                }),
              ),
            // Created by a concurrent call between our describe and create: describe again.
            ['ResourceExistsException'],
          );
        } catch (err) {
          // Force-deleted a moment ago (remove, then ensure): Secrets Manager frees the name
          // asynchronously and asks callers to back off and retry.
          if (isAwsError(err, 'InvalidRequestException') && /deletion/i.test((err as Error).message) && attempt < SECRET_CREATE_ATTEMPTS) {
            await new Promise((r) => setTimeout(r, attempt * 1000));
            continue;
          }
          throw err;
        }
        if (!created?.ARN) continue;
        this.#o.logger?.info({ annotatorId: spec.annotatorId, secret: names.secret }, 'ecs: secret created');
        return { arn: created.ARN, versionId: doc.versionId };
      }

      const current = secretTagMap(found.Tags);
      if (current[TAG.managed] !== 'true') {
        throw new EcsBackendError(`secret ${names.secret} exists but is not LabelFleet's (no ${TAG.managed} tag): rename it or set ECS_NAME_PREFIX`);
      }
      this.#refuseForeign(`secret ${names.secret}`, current);
      const arn = found.ARN!;
      if (found.DeletedDate) {
        await this.#call('secretsmanager:RestoreSecret', () => this.sm.send(new RestoreSecretCommand({ SecretId: arn })));
        this.#o.logger?.warn({ annotatorId: spec.annotatorId, secret: names.secret }, 'ecs: secret was scheduled for deletion; restored');
      }
      if (Object.entries(tags).some(([k, v]) => current[k] !== v)) {
        await this.#call('secretsmanager:TagResource', () => this.sm.send(new TagSecretCommand({ SecretId: arn, Tags: elbTags(tags) })));
      }
      // A version is immutable and pinned by id: once written, nothing to do.
      if (!found.VersionIdsToStages?.[doc.versionId]) {
        await this.#call('secretsmanager:PutSecretValue', () =>
          this.sm.send(new PutSecretValueCommand({ SecretId: arn, SecretString: doc.secretString, ClientRequestToken: doc.versionId })),
        );
        this.#o.logger?.info({ annotatorId: spec.annotatorId, secret: names.secret }, 'ecs: secret rotated (new version)');
      }
      return { arn, versionId: doc.versionId };
    }
    throw new EcsBackendError(`secret ${names.secret} could not be created after ${SECRET_CREATE_ATTEMPTS} attempts (its name was still being freed)`);
  }

  /** Deletes the annotator's secret at once, all versions, without a recovery window; only when it is the fleet's. */
  async #removeSecret(annotatorId: number, names: ResourceNames): Promise<void> {
    const found = await this.#describeSecret(names.secret);
    if (!found || this.#ownedId(secretOwnerName(found.Name ?? ''), secretTagMap(found.Tags)) !== annotatorId) return;
    await this.#call(
      'secretsmanager:DeleteSecret',
      () => this.sm.send(new DeleteSecretCommand({ SecretId: found.ARN, ForceDeleteWithoutRecovery: true })),
      ['ResourceNotFoundException'],
    );
    this.#o.logger?.info({ annotatorId, secret: names.secret }, 'ecs: secret deleted');
  }

  // --------------------------------------------------------------------------------- service

  async #describeService(name: string): Promise<Service | undefined> {
    const res = await this.#call('ecs:DescribeServices', () =>
      this.ecs.send(new DescribeServicesCommand({ cluster: this.#o.cluster, services: [name], include: ['TAGS'] })),
    );
    const failure = (res.failures ?? []).find((f) => f.reason !== 'MISSING');
    if (failure) throw new EcsBackendError(`ecs:DescribeServices ${name}: ${failure.reason} ${failure.detail ?? ''}`.trim());
    return res.services?.[0];
  }

  /** The annotator's service when it is live (ACTIVE or DRAINING) and tagged as the fleet's. */
  async #ownService(annotatorId: number): Promise<Service | undefined> {
    const svc = await this.#describeService(this.names(annotatorId).service);
    return isLive(svc) && this.#ownedId(svc.serviceName, ecsTagMap(svc.tags)) === annotatorId ? svc : undefined;
  }

  #networkConfiguration() {
    return {
      awsvpcConfiguration: {
        subnets: this.#o.subnets,
        securityGroups: this.#o.securityGroups,
        ...(this.#o.launchType === 'FARGATE' ? { assignPublicIp: this.#o.assignPublicIp ? ('ENABLED' as const) : ('DISABLED' as const) } : {}),
      },
    };
  }

  async #ensureService(spec: InstanceSpec, names: ResourceNames, taskDefinition: string, targetGroupArn: string): Promise<Service | undefined> {
    const loadBalancers = [{ targetGroupArn, containerName: CONTAINER_NAME, containerPort: spec.port }];
    const svc = await this.#describeService(names.service);
    if (svc?.status === 'DRAINING') return undefined; // the old service is still going away; a later pass creates it
    if (svc?.status === 'ACTIVE') {
      const tags = ecsTagMap(svc.tags);
      if (tags[TAG.managed] !== 'true') {
        throw new EcsBackendError(
          `service ${names.service} exists but is not LabelFleet's (no ${TAG.managed} tag): rename it or set ECS_NAME_PREFIX`,
        );
      }
      this.#refuseForeign(`service ${names.service}`, tags);
      const lb = (svc.loadBalancers ?? [])[0];
      const lbChanged = !lb || lb.targetGroupArn !== targetGroupArn || lb.containerPort !== spec.port || lb.containerName !== CONTAINER_NAME;
      const rolled = svc.taskDefinition !== taskDefinition;
      const netChanged = !sameNetwork(svc.networkConfiguration?.awsvpcConfiguration, this.#networkConfiguration().awsvpcConfiguration);
      if (rolled || lbChanged || netChanged || svc.desiredCount !== 1) {
        const res = await this.#call('ecs:UpdateService', () =>
          this.ecs.send(
            new UpdateServiceCommand({
              cluster: this.#o.cluster,
              service: names.service,
              desiredCount: 1,
              taskDefinition,
              ...(lbChanged ? { loadBalancers } : {}),
              ...(rolled || netChanged ? { networkConfiguration: this.#networkConfiguration() } : {}),
            }),
          ),
        );
        this.#o.logger?.info(
          { annotatorId: spec.annotatorId, service: names.service, rolled, lbChanged, netChanged },
          rolled ? 'ecs: service rolled to a new task definition' : 'ecs: service updated',
        );
        if (res.service) Object.assign(svc, { taskDefinition: res.service.taskDefinition ?? taskDefinition });
      }
      const want = { ...serviceTags(spec), ...this.#tags(spec) };
      if (Object.entries(want).some(([k, v]) => tags[k] !== v)) {
        await this.#call('ecs:TagResource', () => this.ecs.send(new TagResourceCommand({ resourceArn: svc.serviceArn, tags: ecsTags(want) })));
      }
      return { ...svc, taskDefinition };
    }
    const res = await this.#call('ecs:CreateService', () =>
      this.ecs.send(
        new CreateServiceCommand({
          cluster: this.#o.cluster,
          serviceName: names.service,
          taskDefinition,
          desiredCount: 1,
          launchType: this.#o.launchType,
          networkConfiguration: this.#networkConfiguration(),
          loadBalancers,
          healthCheckGracePeriodSeconds: this.#o.healthCheckGraceSeconds ?? 600,
          // One Label Studio per annotator database: never run old and new side by side.
          deploymentConfiguration: {
            minimumHealthyPercent: 0,
            maximumPercent: 100,
            deploymentCircuitBreaker: { enable: true, rollback: false },
          },
          propagateTags: 'SERVICE',
          enableECSManagedTags: true,
          tags: ecsTags({ ...serviceTags(spec), ...this.#tags(spec) }),
          clientToken: createServiceToken(this.#o.cluster, names.service, taskDefinition, svc?.createdAt?.toISOString()),
        }),
      ),
    );
    this.#o.logger?.info({ annotatorId: spec.annotatorId, service: names.service }, 'ecs: service created');
    return res.service;
  }

  /** The service's tasks (ListTasks by service, then only those whose group is this service). */
  async #serviceTasks(service: string, desiredStatus: 'RUNNING' | 'STOPPED'): Promise<Task[]> {
    const list = await this.#call('ecs:ListTasks', () =>
      this.ecs.send(new ListTasksCommand({ cluster: this.#o.cluster, serviceName: service, desiredStatus })),
    );
    const arns = list.taskArns ?? [];
    if (!arns.length) return [];
    const tasks: Task[] = [];
    for (const batch of chunks(arns, 100)) {
      const res = await this.#call('ecs:DescribeTasks', () => this.ecs.send(new DescribeTasksCommand({ cluster: this.#o.cluster, tasks: batch })));
      tasks.push(...(res.tasks ?? []));
    }
    return tasks.filter((t) => t.group === `service:${service}`);
  }

  async #lastStopReason(service: string): Promise<string | undefined> {
    const stopped = await this.#serviceTasks(service, 'STOPPED');
    stopped.sort((a, b) => (b.stoppedAt?.getTime() ?? 0) - (a.stoppedAt?.getTime() ?? 0));
    const t = stopped[0];
    if (!t) return undefined;
    const exit = t.containers?.find((c) => c.name === CONTAINER_NAME);
    const reason = [t.stoppedReason, exit?.reason, exit?.exitCode !== undefined ? `exit code ${exit.exitCode}` : undefined].filter(Boolean).join('; ');
    return reason ? explainStopReason(reason, this.#o.executionRoleArn) : undefined;
  }

  async #targetHealth(targetGroupArn: string, ip: string, port: number): Promise<ObservedInstance['health']> {
    const res = await this.#call(
      'elasticloadbalancing:DescribeTargetHealth',
      () => this.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn, Targets: [{ Id: ip, Port: port }] })),
      ['TargetGroupNotFoundException'],
    );
    const state = res?.TargetHealthDescriptions?.[0]?.TargetHealth?.State;
    return state === 'healthy' ? 'healthy' : state === 'unhealthy' ? 'unhealthy' : 'unknown';
  }

  // ---------------------------------------------------------------------------------- helpers

  /** The fleet's tags for the annotator's resources, with this installation's id when set. */
  #tags(spec: Pick<InstanceSpec, 'annotatorId' | 'specHash'>): Record<string, string> {
    return { ...fleetTags(spec), ...(this.#owner ? { [TAG.installation]: this.#owner.installationId } : {}) };
  }

  /** Refuses (ForeignResourceError) a fleet-tagged resource that another installation made. */
  #refuseForeign(what: string, tags: Record<string, string | undefined>): void {
    const installation = tags[TAG.installation];
    if (isOurs(this.#owner, installation)) return;
    throw new ForeignResourceError(
      foreignMessage(what, installation, 'Give this fleet its own ECS_NAME_PREFIX or FLEET_NAMESPACE, or remove the resource if it is no longer used.'),
    );
  }

  /**
   * The annotator id when a resource is the fleet's: tagged managed, named `<prefix>-<id>` with a
   * matching id tag, and made by this installation (or unmarked, when this installation adopts those).
   */
  #ownedId(name: string | undefined, tags: Record<string, string | undefined>): number | undefined {
    if (tags[TAG.managed] !== 'true' || !name) return undefined;
    if (!isOurs(this.#owner, tags[TAG.installation])) return undefined;
    const id = annotatorIdFromName(this.#o.namePrefix, name);
    return id !== undefined && tags[TAG.annotatorId] === String(id) ? id : undefined;
  }

  async #elbTagsOf(arns: string[]): Promise<Map<string, Record<string, string>>> {
    const out = new Map<string, Record<string, string>>();
    for (const batch of chunks(arns, 20)) {
      const res = await this.#call('elasticloadbalancing:DescribeTags', () => this.elb.send(new DescribeTagsCommand({ ResourceArns: batch })), [
        'TargetGroupNotFoundException',
        'RuleNotFoundException',
      ]);
      for (const d of res?.TagDescriptions ?? []) {
        out.set(d.ResourceArn!, Object.fromEntries((d.Tags ?? []).map((t) => [t.Key!, t.Value ?? ''])));
      }
    }
    return out;
  }

  /**
   * Runs one AWS call. AccessDenied becomes an EcsPermissionError naming the IAM action; a
   * missing cluster or listener names its setting; codes in `absent` mean "not there" and give
   * undefined; anything else is an EcsBackendError carrying AWS's code.
   */
  async #call<R>(action: string, fn: () => Promise<R>): Promise<R>;
  async #call<R>(action: string, fn: () => Promise<R>, absent: string[]): Promise<R | undefined>;
  async #call<R>(action: string, fn: () => Promise<R>, absent: string[] = []): Promise<R | undefined> {
    try {
      return await fn();
    } catch (err) {
      if (absent.length && isAwsError(err, ...absent)) return undefined;
      const code = errorCode(err);
      const message = (err as Error)?.message ?? String(err);
      if (code && ACCESS_DENIED.has(code)) throw new EcsPermissionError(action, message, { cause: err });
      const forbidden = forbiddenBody(err);
      if (forbidden !== undefined) throw new EcsPermissionError(action, forbidden, { cause: err });
      if (code && BAD_CREDENTIALS.has(code)) {
        throw new EcsBackendError(
          `AWS rejected the credentials for ${action} (${code}): check the SDK credential chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, the task or instance role). AWS said: ${message}`,
          code,
          { cause: err },
        );
      }
      if (isAwsError(err, 'ClusterNotFoundException')) {
        throw new EcsBackendError(`ECS cluster "${this.#o.cluster}" not found (ECS_CLUSTER): ${message}`, code, { cause: err });
      }
      if (isAwsError(err, 'ListenerNotFoundException')) {
        throw new EcsBackendError(`ALB listener not found (ALB_LISTENER_ARN=${this.#o.listenerArn}): ${message}`, code, { cause: err });
      }
      throw new EcsBackendError(`${action} failed: ${code ?? 'error'}: ${message}`, code, { cause: err });
    }
  }
}

/** The private IPv4 address of a task's ENI (awsvpc). */
export function taskPrivateIp(task: Task): string | undefined {
  for (const att of task.attachments ?? []) {
    if (att.type !== 'ElasticNetworkInterface') continue;
    const ip = att.details?.find((d) => d.name === 'privateIPv4Address')?.value;
    if (ip) return ip;
  }
  return task.containers?.flatMap((c) => c.networkInterfaces ?? []).find((n) => n.privateIpv4Address)?.privateIpv4Address;
}

/** The composition root's entry: settings from config (ConfigError when incomplete). */
export function createEcsBackend(config: Config, logger?: EcsBackendOptions['logger']): EcsBackend {
  return new EcsBackend({ ...ecsOptionsFromConfig(config), logger });
}
