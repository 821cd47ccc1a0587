/**
 * The ECS backend against moto's server mode (a real HTTP endpoint the AWS SDK talks to; started
 * by `npm run env:up`, address in AWS_ENDPOINT_URL). Each describe block gets its own VPC, ALB,
 * listener, cluster and name prefix, unique to this run, so runs and files never collide.
 *
 * What moto does not do, and how these tests deal with it (README "Running the fleet on ECS"):
 * - it never schedules a service's tasks, so no task, ENI or target exists until the test places
 *   one the way ECS's scheduler would (RunTask with the service's group + RegisterTargets);
 * - ListTasks ignores `serviceName` (the backend filters on the task's group, which AWS sets too);
 * - CreateService ignores clientToken (the backend's describe-before-create keeps it idempotent);
 * - target health is "healthy" for any registered target (no health checks run);
 * - Secrets Manager (moto too) is never read by a task: the tests resolve each `secrets` reference
 *   with GetSecretValue, as ECS would with the execution role.
 */
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateClusterCommand,
  DeleteClusterCommand,
  DeleteServiceCommand,
  DeregisterTaskDefinitionCommand,
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  ECSClient,
  ListTaskDefinitionsCommand,
  ListTagsForResourceCommand,
  CreateServiceCommand,
  RegisterTaskDefinitionCommand,
  RunTaskCommand,
  StopTaskCommand,
  UpdateServiceCommand,
  type TaskDefinition,
} from '@aws-sdk/client-ecs';
import {
  CreateListenerCommand,
  CreateLoadBalancerCommand,
  CreateRuleCommand,
  CreateTargetGroupCommand,
  DeleteListenerCommand,
  DeleteLoadBalancerCommand,
  DeleteRuleCommand,
  DeleteTargetGroupCommand,
  DeregisterTargetsCommand,
  DescribeRulesCommand,
  DescribeTagsCommand,
  DescribeTargetGroupsCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
  type Rule,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { CreateSecurityGroupCommand, CreateSubnetCommand, CreateVpcCommand, EC2Client, ModifyVpcAttributeCommand } from '@aws-sdk/client-ec2';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  ListSecretVersionIdsCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { ConfigError } from '../../src/config.ts';
import { SecretBox } from '../../src/crypto.ts';
import { buildInstanceSpec, SECRET_ENV, webhookSecret } from '../../orchestrator/instance-spec.ts';
import {
  EcsBackend,
  EcsPermissionError,
  ecsOptionsFromConfig,
  taskPrivateIp,
  type EcsBackendOptions,
} from '../../orchestrator/backends/ecs.ts';
import type { InstanceSpec } from '../../orchestrator/backends/types.ts';
import { ForeignResourceError, readInstallation } from '../../orchestrator/ownership.ts';
import { describeBackendContract, pollingWaitFor, type BackendContractHarness } from '../helpers/backend-contract.ts';
import { startTestService, testConfig, type TestService } from '../helpers/service.ts';
import { testEnv, TEST_DATABASE_URL } from '../helpers/env.ts';
import { readFleetSettings, specFor as fleetSpecOf } from '../../orchestrator/annotators-step.ts';
import { freePort } from '../helpers/process.ts';

const ENDPOINT = testEnv('AWS_ENDPOINT_URL');
const REGION = testEnv('AWS_REGION', 'us-east-1');
const CREDENTIALS = {
  accessKeyId: testEnv('AWS_ACCESS_KEY_ID', 'test'),
  secretAccessKey: testEnv('AWS_SECRET_ACCESS_KEY', 'test'),
};
const RUN = randomBytes(3).toString('hex');
const DOMAIN = 'fleet.test';
const clientConfig = { region: REGION, endpoint: ENDPOINT, credentials: CREDENTIALS };

/** One isolated ECS fleet on moto: VPC, two subnets, a security group, an ALB + listener, a cluster. */
interface MotoFleet {
  options: EcsBackendOptions;
  ecs: ECSClient;
  elb: ElasticLoadBalancingV2Client;
  sm: SecretsManagerClient;
  backend: EcsBackend;
  close(): Promise<void>;
}

async function createMotoFleet(tag: string, extra: Partial<EcsBackendOptions> = {}): Promise<MotoFleet> {
  const ec2 = new EC2Client(clientConfig);
  const ecs = new ECSClient(clientConfig);
  const elb = new ElasticLoadBalancingV2Client(clientConfig);
  const name = `lf-${tag}-${RUN}`;
  const vpc = await ec2.send(new CreateVpcCommand({ CidrBlock: '10.20.0.0/16' }));
  const vpcId = vpc.Vpc!.VpcId!;
  // As ECS VPCs usually have it; moto's awsvpc RunTask also fails without it.
  await ec2.send(new ModifyVpcAttributeCommand({ VpcId: vpcId, EnableDnsHostnames: { Value: true } }));
  const subnets: string[] = [];
  for (const [i, az] of [`${REGION}a`, `${REGION}b`].entries()) {
    const s = await ec2.send(new CreateSubnetCommand({ VpcId: vpcId, CidrBlock: `10.20.${i}.0/24`, AvailabilityZone: az }));
    subnets.push(s.Subnet!.SubnetId!);
  }
  const sg = await ec2.send(new CreateSecurityGroupCommand({ GroupName: name, Description: 'LabelFleet test', VpcId: vpcId }));
  const lb = await elb.send(new CreateLoadBalancerCommand({ Name: name, Subnets: subnets, SecurityGroups: [sg.GroupId!], Type: 'application' }));
  const lbArn = lb.LoadBalancers![0]!.LoadBalancerArn!;
  const listener = await elb.send(
    new CreateListenerCommand({
      LoadBalancerArn: lbArn,
      Protocol: 'HTTP',
      Port: 80,
      DefaultActions: [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '404', ContentType: 'text/plain', MessageBody: 'no such annotator' } }],
    }),
  );
  const listenerArn = listener.Listeners![0]!.ListenerArn!;
  await ecs.send(new CreateClusterCommand({ clusterName: name }));
  const options: EcsBackendOptions = {
    cluster: name,
    launchType: 'FARGATE',
    subnets,
    securityGroups: [sg.GroupId!],
    assignPublicIp: false,
    executionRoleArn: 'arn:aws:iam::123456789012:role/labelfleet-execution',
    taskRoleArn: 'arn:aws:iam::123456789012:role/labelfleet-task',
    logGroup: '/labelfleet/test',
    listenerArn,
    vpcId,
    fleetDomain: DOMAIN,
    region: REGION,
    endpoint: ENDPOINT,
    credentials: CREDENTIALS,
    namePrefix: `${tag}${RUN}`,
    priorityOffset: 0,
    ...extra,
  };
  return {
    options,
    ecs,
    elb,
    sm: new SecretsManagerClient(clientConfig),
    backend: new EcsBackend(options),
    async close() {
      await elb.send(new DeleteListenerCommand({ ListenerArn: listenerArn })).catch(() => undefined);
      await elb.send(new DeleteLoadBalancerCommand({ LoadBalancerArn: lbArn })).catch(() => undefined);
      await ecs.send(new DeleteClusterCommand({ cluster: name })).catch(() => undefined);
    },
  };
}

/** Every secret value this file hands to a backend: none may ever show up in a task definition. */
const handedOut = new Set<string>();
const secretValue = (value: string) => (handedOut.add(value), value);

function specFor(annotatorId: number, overrides: Partial<InstanceSpec> = {}): InstanceSpec {
  return {
    annotatorId,
    subdomain: `ann${annotatorId}`,
    image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/labelfleet-ls:1.23.2',
    env: { LS_PORT: '8080', LABEL_STUDIO_USERNAME: 'admin@fleet.local', POSTGRE_PASSWORD: secretValue(`pw-${annotatorId}-${RUN}`) },
    port: 8080,
    memoryMb: 1536,
    cpus: 0.5,
    specHash: `hash-${annotatorId}`,
    ...overrides,
  };
}

const secretBox = new SecretBox(`ecs-e2e-${RUN}-fleet-secret-key-for-this-run`);

/**
 * The spec the fleet itself builds for an annotator at a start generation (instance-spec.ts):
 * every secret Label Studio gets (database password, SECRET_KEY, admin password, API token,
 * webhook secret, the annotator's own password).
 */
function fleetSpecFor(annotatorId: number, generation: number, overrides: Partial<InstanceSpec> = {}): InstanceSpec {
  const spec = buildInstanceSpec(
    testConfig({ FLEET_DOMAIN: DOMAIN }),
    secretBox,
    { id: annotatorId, email: `ann${annotatorId}@example.com`, subdomain: `ann${annotatorId}`, startGeneration: generation, lsPasswordEnc: secretBox.encrypt(`own-password-${annotatorId}-${RUN}`) },
    { image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/labelfleet-ls:1.23.2', memoryMb: 1536, cpus: 0.5 },
    { host: 'db.internal', port: 5432, name: `ls_annotator_${annotatorId}`, user: `ls_annotator_${annotatorId}` },
  );
  for (const key of SECRET_ENV) if (spec.env[key]) secretValue(spec.env[key]);
  return { ...spec, ...overrides };
}

const tagMap = (tags: Array<{ key?: string; value?: string }> | undefined) => Object.fromEntries((tags ?? []).map((t) => [t.key, t.value]));
const secretTags = (tags: Array<{ Key?: string; Value?: string }> | undefined) => Object.fromEntries((tags ?? []).map((t) => [t.Key, t.Value]));

/** The annotator's secret as Secrets Manager describes it, or undefined when there is none. */
async function secretOf(f: MotoFleet, annotatorId: number) {
  return f.sm
    .send(new DescribeSecretCommand({ SecretId: `${f.options.namePrefix}-${annotatorId}/secrets` }))
    .catch((err) => (err.name === 'ResourceNotFoundException' ? undefined : Promise.reject(err)));
}

/** What a task would get for one `secrets` entry: `<arn>:<json-key>::<version-id>` resolved. */
async function resolveValueFrom(f: MotoFleet, valueFrom: string): Promise<string | undefined> {
  const parts = valueFrom.split(':');
  const [arn, key, stage, versionId] = [parts.slice(0, 7).join(':'), parts[7]!, parts[8], parts[9]];
  expect(stage).toBe('');
  const res = await f.sm.send(new GetSecretValueCommand({ SecretId: arn, VersionId: versionId }));
  return (JSON.parse(res.SecretString!) as Record<string, string>)[key];
}

/**
 * Every revision of the annotator's family AWS still returns (any status), read one by one up to
 * the newest; revisions deleted with DeleteTaskDefinitions are no longer returned.
 */
async function readableRevisions(f: MotoFleet, annotatorId: number): Promise<TaskDefinition[]> {
  const family = `${f.options.namePrefix}-${annotatorId}`;
  const describe = (taskDefinition: string) =>
    f.ecs
      .send(new DescribeTaskDefinitionCommand({ taskDefinition }))
      .then((r) => r.taskDefinition)
      .catch((err) => (err.name === 'ClientException' ? undefined : Promise.reject(err)));
  const newest = await describe(family);
  const found: TaskDefinition[] = [];
  for (let revision = 1; newest && revision <= newest.revision!; revision++) {
    const td = await describe(`${family}:${revision}`);
    if (td) found.push(td);
  }
  return found;
}

/** No readable revision of the annotator's family contains any secret value handed out so far. */
async function expectNoSecretInRevisions(f: MotoFleet, annotatorId: number): Promise<void> {
  const text = JSON.stringify(await readableRevisions(f, annotatorId));
  for (const value of handedOut) expect(text, `a revision of annotator ${annotatorId} holds a secret value`).not.toContain(value);
}

async function rulesOf(f: MotoFleet): Promise<Rule[]> {
  const res = await f.elb.send(new DescribeRulesCommand({ ListenerArn: f.options.listenerArn }));
  return (res.Rules ?? []).filter((r) => !r.IsDefault);
}

const hostOf = (r: Rule) => r.Conditions?.find((c) => c.Field === 'host-header')?.HostHeaderConfig?.Values?.[0];
const forwardOf = (r: Rule) => r.Actions?.find((a) => a.Type === 'forward')?.TargetGroupArn;

async function serviceOf(f: MotoFleet, annotatorId: number) {
  const res = await f.ecs.send(
    new DescribeServicesCommand({ cluster: f.options.cluster, services: [`${f.options.namePrefix}-${annotatorId}`], include: ['TAGS'] }),
  );
  const svc = res.services?.[0];
  return svc && (svc.status === 'ACTIVE' || svc.status === 'DRAINING') ? svc : undefined;
}

async function targetGroupOf(f: MotoFleet, annotatorId: number) {
  const res = await f.elb
    .send(new DescribeTargetGroupsCommand({ Names: [`${f.options.namePrefix}-${annotatorId}`] }))
    .catch((err) => (err.name === 'TargetGroupNotFoundException' ? undefined : Promise.reject(err)));
  return res?.TargetGroups?.[0];
}

async function elbTags(f: MotoFleet, arn: string) {
  const res = await f.elb.send(new DescribeTagsCommand({ ResourceArns: [arn] }));
  return Object.fromEntries((res.TagDescriptions?.[0]?.Tags ?? []).map((t) => [t.Key, t.Value]));
}

async function activeRevisions(f: MotoFleet, annotatorId: number): Promise<string[]> {
  const family = `${f.options.namePrefix}-${annotatorId}`;
  const res = await f.ecs.send(new ListTaskDefinitionsCommand({ familyPrefix: family, status: 'ACTIVE' }));
  return (res.taskDefinitionArns ?? []).filter((a) => a.split('/').pop()!.split(':')[0] === family);
}

/** Moto's own knob: keep tasks RUNNING while observed (by default each DescribeTasks advances them toward STOPPED). */
async function setTaskTransition(transition: object | undefined): Promise<void> {
  const path = transition ? 'set-transition' : 'unset-transition';
  const res = await fetch(`${ENDPOINT}/moto-api/state-manager/${path}`, {
    method: 'POST',
    body: JSON.stringify({ model_name: 'ecs::task', ...(transition ? { transition } : {}) }),
  });
  expect(res.status).toBe(201);
}

/**
 * Does what ECS's scheduler does for a service and moto does not: starts one task of the
 * service's task definition in its group and registers its ENI address in the target group.
 */
async function placeServiceTask(f: MotoFleet, annotatorId: number) {
  const svc = (await serviceOf(f, annotatorId))!;
  const run = await f.ecs.send(
    new RunTaskCommand({
      cluster: f.options.cluster,
      taskDefinition: svc.taskDefinition,
      group: `service:${svc.serviceName}`,
      startedBy: 'ecs-svc/labelfleet-test',
      launchType: 'FARGATE',
      networkConfiguration: { awsvpcConfiguration: { subnets: f.options.subnets, securityGroups: f.options.securityGroups } },
    }),
  );
  const task = run.tasks![0]!;
  const ip = taskPrivateIp(task)!;
  const lb = svc.loadBalancers![0]!;
  await f.elb.send(new RegisterTargetsCommand({ TargetGroupArn: lb.targetGroupArn, Targets: [{ Id: ip, Port: lb.containerPort }] }));
  return { taskArn: task.taskArn!, ip, targetGroupArn: lb.targetGroupArn!, port: lb.containerPort! };
}

// ------------------------------------------------------------------------------- the contract

let nextContractId = 1;
describeBackendContract('ECS on moto', async () => {
  const f = await createMotoFleet('c');
  const lookalikes: number[] = [];
  const harness: BackendContractHarness = {
    backend: f.backend,
    spec: specFor,
    newAnnotatorId: () => nextContractId++,
    waitFor: pollingWaitFor({ timeoutMs: 30_000, intervalMs: 200 }),
    runsInstances: false,
    async inspect(annotatorId) {
      // Wherever the contract looks, no revision of the annotator holds a secret.
      await expectNoSecretInRevisions(f, annotatorId);
      const svc = await serviceOf(f, annotatorId);
      const host = `${specFor(annotatorId).subdomain}.${DOMAIN}`;
      const routes = (await rulesOf(f)).filter((r) => hostOf(r) === host).length;
      return { instances: svc ? 1 : 0, routes, version: svc?.taskDefinition };
    },
    async createLookalike(annotatorId) {
      // Same names as the fleet's, no labelfleet tags: list() must not report them.
      const name = `${f.options.namePrefix}-${annotatorId}`;
      await f.elb.send(new CreateTargetGroupCommand({ Name: name, Protocol: 'HTTP', Port: 8080, VpcId: f.options.vpcId, TargetType: 'ip' }));
      const td = await f.ecs.send(
        new RegisterTaskDefinitionCommand({
          family: name,
          networkMode: 'awsvpc',
          requiresCompatibilities: ['FARGATE'],
          cpu: '256',
          memory: '512',
          containerDefinitions: [{ name: 'other', image: 'busybox' }],
        }),
      );
      await f.ecs.send(
        new CreateServiceCommand({
          cluster: f.options.cluster,
          serviceName: name,
          taskDefinition: td.taskDefinition!.taskDefinitionArn,
          desiredCount: 0,
          launchType: 'FARGATE',
          networkConfiguration: { awsvpcConfiguration: { subnets: f.options.subnets, securityGroups: f.options.securityGroups } },
        }),
      );
      lookalikes.push(annotatorId);
    },
    async close() {
      for (const id of lookalikes) {
        const name = `${f.options.namePrefix}-${id}`;
        await f.ecs.send(new DeleteServiceCommand({ cluster: f.options.cluster, service: name, force: true })).catch(() => undefined);
        const tg = await targetGroupOf(f, id);
        if (tg) await f.elb.send(new DeleteTargetGroupCommand({ TargetGroupArn: tg.TargetGroupArn }));
        for (const arn of (await f.ecs.send(new ListTaskDefinitionsCommand({ familyPrefix: name }))).taskDefinitionArns ?? []) {
          await f.ecs.send(new DeregisterTaskDefinitionCommand({ taskDefinition: arn }));
        }
      }
      await f.close();
    },
  };
  return harness;
});


// ------------------------------------------------------------------------- ECS-specific tests

describe('ECS backend on moto', () => {
  let f: MotoFleet;
  let next = 1;
  const newId = () => next++;

  beforeAll(async () => {
    f = await createMotoFleet('e');
  });
  afterAll(async () => {
    if (!f) return;
    for (let id = 1; id < next; id++) await f.backend.remove(id).catch(() => undefined);
    await f.close();
  });

  it('ensure creates a tagged task definition, service, target group and host rule', async () => {
    const id = newId();
    const spec = specFor(id, {
      env: {
        LS_PORT: '8080',
        POSTGRE_PASSWORD: secretValue(`plain-password-${RUN}`),
        DB_SECRET: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:ls-db-AbCdEf',
      },
    });
    const observed = await f.backend.ensure(spec);
    const name = `${f.options.namePrefix}-${id}`;
    const wantTags = { 'labelfleet.managed': 'true', 'labelfleet.annotator-id': String(id), 'labelfleet.spec-hash': spec.specHash };

    const tg = (await targetGroupOf(f, id))!;
    expect(tg).toMatchObject({ TargetGroupName: name, TargetType: 'ip', Protocol: 'HTTP', Port: 8080, VpcId: f.options.vpcId, HealthCheckPath: '/health/' });
    expect(await elbTags(f, tg.TargetGroupArn!)).toEqual(wantTags);

    const rules = (await rulesOf(f)).filter((r) => forwardOf(r) === tg.TargetGroupArn);
    expect(rules).toHaveLength(1);
    expect(hostOf(rules[0]!)).toBe(`ann${id}.${DOMAIN}`);
    expect(rules[0]!.Priority).toBe(String(id)); // offset 0 + annotator id
    expect(await elbTags(f, rules[0]!.RuleArn!)).toEqual(wantTags);

    const svc = (await serviceOf(f, id))!;
    expect(observed).toMatchObject({ annotatorId: id, state: 'starting', instanceId: svc.serviceArn, specHash: spec.specHash, health: 'unknown' });
    expect(svc).toMatchObject({ serviceName: name, desiredCount: 1, launchType: 'FARGATE' });
    expect(svc.loadBalancers).toEqual([{ targetGroupArn: tg.TargetGroupArn, containerName: 'label-studio', containerPort: 8080 }]);
    expect(svc.networkConfiguration?.awsvpcConfiguration).toMatchObject({
      subnets: f.options.subnets,
      securityGroups: f.options.securityGroups,
      assignPublicIp: 'DISABLED',
    });
    expect(tagMap(svc.tags)).toEqual({ ...wantTags, 'labelfleet.secret-store': 'secretsmanager' });

    const td = await f.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: svc.taskDefinition, include: ['TAGS'] }));
    const def = td.taskDefinition!;
    expect(def).toMatchObject({
      family: name,
      networkMode: 'awsvpc',
      requiresCompatibilities: ['FARGATE'],
      cpu: '512', // 0.5 vCPU
      memory: '2048', // 1536 MiB rounded up to the nearest Fargate size for 512 CPU units
      executionRoleArn: f.options.executionRoleArn,
      taskRoleArn: f.options.taskRoleArn,
    });
    const c = def.containerDefinitions![0]!;
    expect(c).toMatchObject({ name: 'label-studio', image: spec.image, essential: true });
    expect(c.portMappings).toEqual([expect.objectContaining({ containerPort: 8080, protocol: 'tcp' })]);
    // The password reaches the container through the annotator's secret, pinned to its version;
    // an ARN value passes through as it is; only the plain setting is environment.
    const secret = (await secretOf(f, id))!;
    expect(secret).toMatchObject({ Name: `${name}/secrets` });
    expect(secretTags(secret.Tags)).toEqual(wantTags);
    const [versionId] = Object.keys(secret.VersionIdsToStages!);
    expect(secret.VersionIdsToStages).toEqual({ [versionId!]: ['AWSCURRENT'] });
    expect(c.environment).toEqual([{ name: 'LS_PORT', value: '8080' }]);
    expect(c.secrets).toEqual([
      { name: 'DB_SECRET', valueFrom: spec.env.DB_SECRET },
      { name: 'POSTGRE_PASSWORD', valueFrom: `${secret.ARN}:POSTGRE_PASSWORD::${versionId}` },
    ]);
    expect(await resolveValueFrom(f, c.secrets![1]!.valueFrom!)).toBe(spec.env.POSTGRE_PASSWORD);
    expect(JSON.stringify(def)).not.toContain(spec.env.POSTGRE_PASSWORD);
    expect(c.logConfiguration).toEqual({
      logDriver: 'awslogs',
      options: { 'awslogs-group': '/labelfleet/test', 'awslogs-region': REGION, 'awslogs-stream-prefix': name },
    });
    expect(tagMap(td.tags)).toMatchObject(wantTags);
  });

  it("keeps every secret Label Studio gets in the annotator's tagged secret while the annotator exists, and deletes it with the annotator", async () => {
    const id = newId();
    const spec = fleetSpecFor(id, 1);
    await f.backend.ensure(spec);
    const wantTags = { 'labelfleet.managed': 'true', 'labelfleet.annotator-id': String(id), 'labelfleet.spec-hash': spec.specHash };

    const svc = (await serviceOf(f, id))!;
    const c = (await f.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: svc.taskDefinition }))).taskDefinition!.containerDefinitions![0]!;
    const secretNames = [...SECRET_ENV].sort();
    expect(c.secrets!.map((x) => x.name)).toEqual(secretNames);
    expect(c.environment!.map((e) => e.name).filter((n) => SECRET_ENV.has(n!))).toEqual([]);
    // What the task gets is exactly what the fleet derived, read through the references.
    for (const entry of c.secrets!) expect(await resolveValueFrom(f, entry.valueFrom!), entry.name).toBe(spec.env[entry.name!]);
    for (const entry of c.environment!) expect(entry.value).toBe(spec.env[entry.name!]);
    await expectNoSecretInRevisions(f, id);

    const secret = (await secretOf(f, id))!;
    expect(secretTags(secret.Tags)).toEqual(wantTags);
    await f.backend.stop(id);
    expect((await secretOf(f, id))?.VersionIdsToStages).toEqual(secret.VersionIdsToStages); // kept while stopped

    await f.backend.remove(id);
    expect(await secretOf(f, id)).toBeUndefined();
    // Deleted at once, not scheduled for deletion: no recovery window keeps the values around.
    const listed = await f.sm.send(
      new ListSecretsCommand({ IncludePlannedDeletion: true, Filters: [{ Key: 'name', Values: [`${f.options.namePrefix}-${id}/`] }] }),
    );
    expect(listed.SecretList ?? []).toEqual([]);
    await f.backend.remove(id); // gone already: success

    // Started again: a new secret under the same name.
    await f.backend.ensure(spec);
    expect(secretTags((await secretOf(f, id))!.Tags)).toEqual(wantTags);
  });

  it('a new start generation writes a new secret version and rolls the service; no earlier revision stays readable', async () => {
    const id = newId();
    const g1 = fleetSpecFor(id, 1);
    await f.backend.ensure(g1);
    const rev1 = (await serviceOf(f, id))!.taskDefinition!;
    const pinned = async (taskDefinition: string) => {
      const c = (await f.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition }))).taskDefinition!.containerDefinitions![0]!;
      return new Set(c.secrets!.map((x) => x.valueFrom!.split(':').pop()));
    };
    const v1 = [...(await pinned(rev1))];
    expect(v1).toHaveLength(1); // every secret entry pins the same version

    const g2 = fleetSpecFor(id, 2);
    expect(g2.env.WEBHOOK_SECRET).not.toBe(g1.env.WEBHOOK_SECRET);
    await f.backend.ensure(g2);
    const svc = (await serviceOf(f, id))!;
    const rev2 = svc.taskDefinition!;
    expect(rev2).not.toBe(rev1); // rolled
    expect(svc.desiredCount).toBe(1);
    expect(tagMap(svc.tags)['labelfleet.spec-hash']).toBe(g2.specHash);
    const v2 = [...(await pinned(rev2))];
    expect(v2).toHaveLength(1);
    expect(v2[0]).not.toBe(v1[0]);
    const secret = (await secretOf(f, id))!;
    expect(secret.VersionIdsToStages).toEqual({ [v1[0]!]: ['AWSPREVIOUS'], [v2[0]!]: ['AWSCURRENT'] });
    expect(secretTags(secret.Tags)['labelfleet.spec-hash']).toBe(g2.specHash);
    const c2 = (await f.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: rev2 }))).taskDefinition!.containerDefinitions![0]!;
    for (const entry of c2.secrets!) expect(await resolveValueFrom(f, entry.valueFrom!), entry.name).toBe(g2.env[entry.name!]);
    // The old revision is deregistered and deleted: only the one in use can be read.
    expect((await readableRevisions(f, id)).map((td) => td.taskDefinitionArn)).toEqual([rev2]);

    // A change that is not a secret (the image) rolls too, on the same secret version.
    const g2b = { ...g2, image: `${g2.image}-patched`, specHash: `${g2.specHash}-b` };
    await f.backend.ensure(g2b);
    await f.backend.ensure(g2b); // and again: nothing more
    const rev3 = (await serviceOf(f, id))!.taskDefinition!;
    expect(rev3).not.toBe(rev2);
    expect([...(await pinned(rev3))]).toEqual(v2);
    const versions = await f.sm.send(new ListSecretVersionIdsCommand({ SecretId: secret.ARN, IncludeDeprecated: true }));
    expect(versions.Versions!.map((v) => v.VersionId).sort()).toEqual([v1[0], v2[0]].sort());
    expect((await readableRevisions(f, id)).map((td) => td.taskDefinitionArn)).toEqual([rev3]);
    await expectNoSecretInRevisions(f, id);
  });

  it('upgrading: a service on revisions with secrets in their environment reports no spec hash; ensure moves the secrets out and deletes those revisions', async () => {
    const id = newId();
    const family = `${f.options.namePrefix}-${id}`;
    const spec = fleetSpecFor(id, 1);
    const oldTags = [
      { key: 'labelfleet.managed', value: 'true' },
      { key: 'labelfleet.annotator-id', value: String(id) },
      { key: 'labelfleet.spec-hash', value: spec.specHash },
    ];
    // What an earlier LabelFleet registered: every value, secrets included, as plain environment.
    const register = async () =>
      (
        await f.ecs.send(
          new RegisterTaskDefinitionCommand({
            family,
            networkMode: 'awsvpc',
            requiresCompatibilities: ['FARGATE'],
            cpu: '512',
            memory: '2048',
            containerDefinitions: [{ name: 'label-studio', image: spec.image, environment: Object.entries(spec.env).map(([name, value]) => ({ name, value })) }],
            tags: oldTags,
          }),
        )
      ).taskDefinition!.taskDefinitionArn!;
    await f.ecs.send(new DeregisterTaskDefinitionCommand({ taskDefinition: await register() }));
    await f.ecs.send(
      new CreateServiceCommand({
        cluster: f.options.cluster,
        serviceName: family,
        taskDefinition: await register(),
        desiredCount: 1,
        launchType: 'FARGATE',
        networkConfiguration: { awsvpcConfiguration: { subnets: f.options.subnets, securityGroups: f.options.securityGroups } },
        tags: oldTags,
      }),
    );
    // Someone else's revision in the family (no fleet tags): never deregistered nor deleted.
    const stranger = (
      await f.ecs.send(
        new RegisterTaskDefinitionCommand({ family, networkMode: 'awsvpc', requiresCompatibilities: ['FARGATE'], cpu: '256', memory: '512', containerDefinitions: [{ name: 'other', image: 'busybox' }] }),
      )
    ).taskDefinition!.taskDefinitionArn!;
    expect(JSON.stringify(await readableRevisions(f, id))).toContain(spec.env.WEBHOOK_SECRET);
    // Same spec, but its secrets are in the environment: no spec hash, so the reconciler recreates it.
    expect(await f.backend.observe(id)).toMatchObject({ state: 'starting', specHash: undefined });

    await f.backend.ensure(spec);
    expect((await f.backend.observe(id)).specHash).toBe(spec.specHash);
    const svc = (await serviceOf(f, id))!;
    expect(tagMap(svc.tags)['labelfleet.secret-store']).toBe('secretsmanager');
    expect((await readableRevisions(f, id)).map((td) => [td.taskDefinitionArn, td.status])).toEqual([
      [stranger, 'ACTIVE'],
      [svc.taskDefinition, 'ACTIVE'],
    ]);
    await expectNoSecretInRevisions(f, id);
    await f.backend.remove(id);
    expect((await readableRevisions(f, id)).map((td) => [td.taskDefinitionArn, td.status])).toEqual([[stranger, 'ACTIVE']]);
    await f.ecs.send(new DeregisterTaskDefinitionCommand({ taskDefinition: stranger }));
  });

  it('refuses a same-named secret that is not the fleet\'s, and restores its own when someone scheduled it for deletion', async () => {
    const id = newId();
    const name = `${f.options.namePrefix}-${id}/secrets`;
    await f.sm.send(new CreateSecretCommand({ Name: name, SecretString: '{"other":"value"}' }));
    await expect(f.backend.ensure(specFor(id))).rejects.toThrow(`secret ${name} exists but is not LabelFleet's`);
    await f.backend.remove(id);
    expect((await secretOf(f, id))?.Name).toBe(name); // left alone
    expect((await f.backend.list()).some((o) => o.annotatorId === id)).toBe(false);
    await f.sm.send(new DeleteSecretCommand({ SecretId: name, ForceDeleteWithoutRecovery: true }));

    const own = newId();
    const spec = specFor(own);
    await f.backend.ensure(spec);
    const before = (await secretOf(f, own))!;
    await f.sm.send(new DeleteSecretCommand({ SecretId: before.ARN, RecoveryWindowInDays: 7 }));
    expect((await secretOf(f, own))!.DeletedDate).toBeInstanceOf(Date);
    await f.backend.ensure(spec);
    const after = (await secretOf(f, own))!;
    expect(after.DeletedDate ?? undefined).toBeUndefined();
    expect(after.VersionIdsToStages).toEqual(before.VersionIdsToStages);
  });

  it('re-running ensure, stop and remove at any point creates nothing twice', async () => {
    const id = newId();
    const spec = specFor(id);
    await f.backend.ensure(spec);
    const tg = (await targetGroupOf(f, id))!;
    const rule = (await rulesOf(f)).find((r) => forwardOf(r) === tg.TargetGroupArn)!;
    const revisions = await activeRevisions(f, id);
    expect(revisions).toHaveLength(1);

    for (let i = 0; i < 3; i++) await f.backend.ensure(spec);
    expect(await activeRevisions(f, id)).toEqual(revisions);
    expect((await targetGroupOf(f, id))!.TargetGroupArn).toBe(tg.TargetGroupArn);
    expect((await rulesOf(f)).filter((r) => hostOf(r) === `ann${id}.${DOMAIN}`).map((r) => r.RuleArn)).toEqual([rule.RuleArn]);

    // stop: desired 0, target group and rule kept for a quick restart.
    await f.backend.stop(id);
    await f.backend.stop(id);
    expect((await serviceOf(f, id))!.desiredCount).toBe(0);
    expect((await targetGroupOf(f, id))!.TargetGroupArn).toBe(tg.TargetGroupArn);
    expect((await rulesOf(f)).some((r) => r.RuleArn === rule.RuleArn)).toBe(true);
    expect(await f.backend.observe(id)).toMatchObject({ state: 'stopped', specHash: spec.specHash });

    // start again: same service, target group, rule and revision.
    await f.backend.ensure(spec);
    const svc = (await serviceOf(f, id))!;
    expect(svc.desiredCount).toBe(1);
    expect(svc.taskDefinition).toBe(revisions[0]);
    expect((await rulesOf(f)).find((r) => forwardOf(r) === tg.TargetGroupArn)?.RuleArn).toBe(rule.RuleArn);
  });

  it('repairs drift: a deleted rule, or a deleted rule and target group, is recreated and the service follows', async () => {
    const id = newId();
    const spec = specFor(id);
    await f.backend.ensure(spec);
    const tg = (await targetGroupOf(f, id))!;
    const rule = (await rulesOf(f)).find((r) => forwardOf(r) === tg.TargetGroupArn)!;

    await f.elb.send(new DeleteRuleCommand({ RuleArn: rule.RuleArn }));
    await f.backend.ensure(spec);
    const again = (await rulesOf(f)).filter((r) => forwardOf(r) === tg.TargetGroupArn);
    expect(again).toHaveLength(1);
    expect(again[0]!.RuleArn).not.toBe(rule.RuleArn);
    expect(again[0]!.Priority).toBe(String(id));
    expect(hostOf(again[0]!)).toBe(`ann${id}.${DOMAIN}`);

    // A target group can only go once no rule uses it: delete both, as an operator would.
    await f.elb.send(new DeleteRuleCommand({ RuleArn: again[0]!.RuleArn }));
    await f.elb.send(new DeleteTargetGroupCommand({ TargetGroupArn: tg.TargetGroupArn }));
    await f.backend.ensure(spec);
    const tg2 = (await targetGroupOf(f, id))!;
    expect(tg2.TargetGroupArn).not.toBe(tg.TargetGroupArn);
    const rules = (await rulesOf(f)).filter((r) => hostOf(r) === `ann${id}.${DOMAIN}`);
    expect(rules.map(forwardOf)).toEqual([tg2.TargetGroupArn]);
    expect((await serviceOf(f, id))!.loadBalancers?.[0]?.targetGroupArn).toBe(tg2.TargetGroupArn);
    expect(await activeRevisions(f, id)).toHaveLength(1); // no roll for a routing repair
  });

  it('a changed spec registers a new revision, rolls the service and deregisters the old revision', async () => {
    const id = newId();
    const spec = specFor(id);
    await f.backend.ensure(spec);
    const [rev1] = await activeRevisions(f, id);
    const tg = (await targetGroupOf(f, id))!;

    const changed = specFor(id, { image: `${spec.image}-patched`, memoryMb: 4096, specHash: `hash-${id}-v2` });
    const observed = await f.backend.ensure(changed);
    expect(observed.specHash).toBe(changed.specHash);
    const revs = await activeRevisions(f, id);
    expect(revs).toHaveLength(1);
    expect(revs[0]).not.toBe(rev1);
    const svc = (await serviceOf(f, id))!;
    expect(svc.taskDefinition).toBe(revs[0]);
    expect(svc.desiredCount).toBe(1);
    expect(tagMap(svc.tags)['labelfleet.spec-hash']).toBe(changed.specHash);
    expect((await elbTags(f, tg.TargetGroupArn!))['labelfleet.spec-hash']).toBe(changed.specHash);
    const td = await f.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: revs[0] }));
    expect(td.taskDefinition).toMatchObject({ cpu: '512', memory: '4096' });
    expect(td.taskDefinition!.containerDefinitions![0]!.image).toBe(changed.image);

    // A stopped annotator whose spec changed comes back on the new revision.
    await f.backend.stop(id);
    const third = specFor(id, { env: { ...spec.env, EXTRA: '1' }, specHash: `hash-${id}-v3` });
    await f.backend.ensure(third);
    const svc3 = (await serviceOf(f, id))!;
    expect(svc3.desiredCount).toBe(1);
    expect(svc3.taskDefinition).not.toBe(revs[0]);
    expect(await activeRevisions(f, id)).toEqual([svc3.taskDefinition]);
  });

  it('changed subnets or security groups update the service without a new revision', async () => {
    const id = newId();
    await f.backend.ensure(specFor(id));
    const revs = await activeRevisions(f, id);
    const sg2 = await new EC2Client(clientConfig).send(
      new CreateSecurityGroupCommand({ GroupName: `lf-e2-${RUN}`, Description: 'second', VpcId: f.options.vpcId }),
    );
    const moved = new EcsBackend({ ...f.options, subnets: [f.options.subnets[1]!], securityGroups: [sg2.GroupId!] });
    await moved.ensure(specFor(id));
    expect((await serviceOf(f, id))!.networkConfiguration?.awsvpcConfiguration).toMatchObject({
      subnets: [f.options.subnets[1]],
      securityGroups: [sg2.GroupId],
    });
    expect(await activeRevisions(f, id)).toEqual(revs);
  });

  it('a changed subdomain moves the rule to the new host, keeping its priority', async () => {
    const id = newId();
    await f.backend.ensure(specFor(id));
    await f.backend.ensure(specFor(id, { subdomain: `renamed${id}` }));
    const tg = (await targetGroupOf(f, id))!;
    const rules = (await rulesOf(f)).filter((r) => forwardOf(r) === tg.TargetGroupArn);
    expect(rules.map(hostOf)).toEqual([`renamed${id}.${DOMAIN}`]);
    expect(rules[0]!.Priority).toBe(String(id));
  });

  it('two annotators started at once get distinct rule priorities', async () => {
    const a = newId();
    const b = newId();
    await Promise.all([f.backend.ensure(specFor(a)), f.backend.ensure(specFor(b))]);
    const rules = await rulesOf(f);
    const pa = rules.filter((r) => hostOf(r) === `ann${a}.${DOMAIN}`).map((r) => r.Priority);
    const pb = rules.filter((r) => hostOf(r) === `ann${b}.${DOMAIN}`).map((r) => r.Priority);
    expect(pa).toEqual([String(a)]);
    expect(pb).toEqual([String(b)]);
    const all = rules.map((r) => r.Priority);
    expect(new Set(all).size).toBe(all.length);
  });

  it('beyond the priority range, concurrent starts race for one slot and still end distinct', async () => {
    // Offset 49990 leaves slots 49991..50000: ids 20 and 30 have no own slot and both probe from 50000.
    const g = await createMotoFleet('p', { priorityOffset: 49_990 });
    try {
      await Promise.all([g.backend.ensure(specFor(20)), g.backend.ensure(specFor(30)), g.backend.ensure(specFor(5))]);
      const rules = await rulesOf(g);
      const byHost = Object.fromEntries(rules.map((r) => [hostOf(r), Number(r.Priority)]));
      expect(Object.keys(byHost).sort()).toEqual([`ann20.${DOMAIN}`, `ann30.${DOMAIN}`, `ann5.${DOMAIN}`]);
      expect(byHost[`ann5.${DOMAIN}`]).toBe(49_995);
      const ps = rules.map((r) => Number(r.Priority));
      expect(new Set(ps).size).toBe(3);
      for (const p of ps) expect(p).toBeGreaterThan(49_990);
      expect(ps).toContain(50_000);

      // An operator's rule in an annotator's own slot: that annotator takes another free slot.
      const tgOther = await g.elb.send(new CreateTargetGroupCommand({ Name: `other-${RUN}`, Protocol: 'HTTP', Port: 80, VpcId: g.options.vpcId, TargetType: 'ip' }));
      await g.elb.send(
        new CreateRuleCommand({
          ListenerArn: g.options.listenerArn,
          Priority: 49_996,
          Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/ops/*'] } }],
          Actions: [{ Type: 'forward', TargetGroupArn: tgOther.TargetGroups![0]!.TargetGroupArn }],
        }),
      );
      await g.backend.ensure(specFor(6));
      const p6 = (await rulesOf(g)).find((r) => hostOf(r) === `ann6.${DOMAIN}`)!.Priority;
      expect(Number(p6)).toBeGreaterThan(49_990);
      expect(new Set((await rulesOf(g)).map((r) => r.Priority)).size).toBe(5);
      for (const id of [20, 30, 5, 6]) await g.backend.remove(id);
      expect((await rulesOf(g)).map((r) => r.Priority)).toEqual(['49996']);
    } finally {
      for (const id of [20, 30, 5, 6]) await g.backend.remove(id).catch(() => undefined);
      await g.close();
    }
  });

  it('observe reads the task address from its ENI and the target health of that address', async () => {
    const id = newId();
    await f.backend.ensure(specFor(id));
    await setTaskTransition({ progression: 'manual', times: 1_000_000 });
    try {
      const placed = await placeServiceTask(f, id);
      expect(placed.ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      const o = await f.backend.observe(id);
      expect(o).toMatchObject({ annotatorId: id, state: 'running', address: { host: placed.ip, port: 8080 }, ip: placed.ip, health: 'healthy' });

      // Deregistered from the target group: the address stays, health is no longer known.
      await f.elb.send(new DeregisterTargetsCommand({ TargetGroupArn: placed.targetGroupArn, Targets: [{ Id: placed.ip, Port: 8080 }] }));
      expect(await f.backend.observe(id)).toMatchObject({ state: 'running', address: { host: placed.ip, port: 8080 }, health: 'unknown' });

      // A task of another service in the same cluster is never taken for this one.
      const other = newId();
      await f.backend.ensure(specFor(other));
      expect((await f.backend.observe(other)).address).toBeUndefined();

      await f.ecs.send(new StopTaskCommand({ cluster: f.options.cluster, task: placed.taskArn, reason: 'test' }));
    } finally {
      await setTaskTransition(undefined);
    }
  });

  it('remove deletes service, rule and target group, deregisters every revision, and leaves lookalikes alone', async () => {
    const id = newId();
    await f.backend.ensure(specFor(id));
    await f.backend.ensure(specFor(id, { specHash: 'x', env: { X: '1' } }));
    const tg = (await targetGroupOf(f, id))!;
    await f.backend.remove(id);
    expect(await serviceOf(f, id)).toBeUndefined();
    expect(await targetGroupOf(f, id)).toBeUndefined();
    expect((await rulesOf(f)).filter((r) => forwardOf(r) === tg.TargetGroupArn || hostOf(r) === `ann${id}.${DOMAIN}`)).toEqual([]);
    expect(await activeRevisions(f, id)).toEqual([]);
    await f.backend.remove(id);

    // Started again after a remove: everything comes back, on a fresh revision.
    const back = await f.backend.ensure(specFor(id));
    expect(back).toMatchObject({ state: 'starting', specHash: `hash-${id}` });
    const svcBack = (await serviceOf(f, id))!;
    expect(svcBack.status).toBe('ACTIVE');
    expect(await activeRevisions(f, id)).toEqual([svcBack.taskDefinition]);
    expect((await rulesOf(f)).filter((r) => hostOf(r) === `ann${id}.${DOMAIN}`)).toHaveLength(1);
    await f.backend.remove(id);

    // Half-removed by hand (service deleted, rule + target group left): remove finishes the job.
    const half = newId();
    await f.backend.ensure(specFor(half));
    await f.ecs.send(new DeleteServiceCommand({ cluster: f.options.cluster, service: `${f.options.namePrefix}-${half}`, force: true }));
    expect((await f.backend.list()).find((o) => o.annotatorId === half)).toMatchObject({ state: 'missing' });
    await f.backend.remove(half);
    expect(await targetGroupOf(f, half)).toBeUndefined();
    expect((await f.backend.list()).some((o) => o.annotatorId === half)).toBe(false);

    // Same names, no fleet tags: neither removed nor adopted.
    const stranger = newId();
    const name = `${f.options.namePrefix}-${stranger}`;
    await f.elb.send(new CreateTargetGroupCommand({ Name: name, Protocol: 'HTTP', Port: 8080, VpcId: f.options.vpcId, TargetType: 'ip' }));
    await f.backend.remove(stranger);
    const kept = (await targetGroupOf(f, stranger))!;
    expect(kept.TargetGroupName).toBe(name);
    await expect(f.backend.ensure(specFor(stranger))).rejects.toThrow(`target group ${name} exists but is not LabelFleet's`);
    await f.elb.send(new DeleteTargetGroupCommand({ TargetGroupArn: kept.TargetGroupArn }));
  });

  it('list reports orphans from any tagged resource, so the reconciler can remove them', async () => {
    const id = newId();
    await f.backend.ensure(specFor(id));
    const listed = (await f.backend.list()).find((o) => o.annotatorId === id);
    expect(listed).toMatchObject({ annotatorId: id, state: 'starting', specHash: `hash-${id}` });
    expect(listed!.instanceId).toMatch(/:service\//);

    // Only a registered task definition is left (a crash mid-remove): still listed.
    const svcName = `${f.options.namePrefix}-${id}`;
    const tg = (await targetGroupOf(f, id))!;
    await f.ecs.send(new DeleteServiceCommand({ cluster: f.options.cluster, service: svcName, force: true }));
    for (const r of (await rulesOf(f)).filter((x) => forwardOf(x) === tg.TargetGroupArn)) {
      await f.elb.send(new DeleteRuleCommand({ RuleArn: r.RuleArn }));
    }
    await f.elb.send(new DeleteTargetGroupCommand({ TargetGroupArn: tg.TargetGroupArn }));
    expect((await f.backend.list()).find((o) => o.annotatorId === id)).toMatchObject({ state: 'missing', message: 'task definition without a service' });

    // Only the secret is left (the last thing remove deletes): still listed, and remove deletes it.
    for (const arn of await activeRevisions(f, id)) await f.ecs.send(new DeregisterTaskDefinitionCommand({ taskDefinition: arn }));
    expect((await f.backend.list()).find((o) => o.annotatorId === id)).toMatchObject({ state: 'missing', message: 'secret without a service' });
    await f.backend.remove(id);
    expect(await secretOf(f, id)).toBeUndefined();
    expect((await f.backend.list()).some((o) => o.annotatorId === id)).toBe(false);
  });

  it('a service named like the fleet\'s but untagged is refused, not adopted', async () => {
    const id = newId();
    const name = `${f.options.namePrefix}-${id}`;
    const td = await f.ecs.send(
      new RegisterTaskDefinitionCommand({ family: `other-${RUN}`, networkMode: 'awsvpc', requiresCompatibilities: ['FARGATE'], cpu: '256', memory: '512', containerDefinitions: [{ name: 'x', image: 'busybox' }] }),
    );
    await f.ecs.send(
      new CreateServiceCommand({
        cluster: f.options.cluster,
        serviceName: name,
        taskDefinition: td.taskDefinition!.taskDefinitionArn,
        desiredCount: 1,
        launchType: 'FARGATE',
        networkConfiguration: { awsvpcConfiguration: { subnets: f.options.subnets, securityGroups: f.options.securityGroups } },
      }),
    );
    await expect(f.backend.ensure(specFor(id))).rejects.toThrow(`service ${name} exists but is not LabelFleet's`);
    await f.backend.stop(id);
    await f.backend.remove(id);
    const svc = (await serviceOf(f, id))!;
    expect(svc).toMatchObject({ serviceName: name, desiredCount: 1, status: 'ACTIVE' });
    expect(tagMap((await f.ecs.send(new ListTagsForResourceCommand({ resourceArn: svc.serviceArn }))).tags)).toEqual({});
    expect((await f.backend.list()).some((o) => o.annotatorId === id)).toBe(false);
    await f.ecs.send(new UpdateServiceCommand({ cluster: f.options.cluster, service: name, desiredCount: 0 }));
    await f.ecs.send(new DeleteServiceCommand({ cluster: f.options.cluster, service: name, force: true }));
  });

  it('names the setting when the cluster or listener does not exist', async () => {
    const noCluster = new EcsBackend({ ...f.options, cluster: `missing-${RUN}` });
    await expect(noCluster.observe(1)).rejects.toThrow(`ECS cluster "missing-${RUN}" not found (ECS_CLUSTER)`);
    const badListener = f.options.listenerArn.replace(/\/[0-9a-f]+$/, '/0000000000000000');
    const noListener = new EcsBackend({ ...f.options, listenerArn: badListener });
    await expect(noListener.ensure(specFor(newId()))).rejects.toThrow(`ALB listener not found (ALB_LISTENER_ARN=${badListener})`);
  });

  // Last: after every start, roll, stop, restart and remove above.
  it('no readable task-definition revision of any annotator holds a secret value', async () => {
    expect(handedOut.size).toBeGreaterThan(10);
    let read = 0;
    for (let id = 1; id < next; id++) {
      read += (await readableRevisions(f, id)).length;
      await expectNoSecretInRevisions(f, id);
    }
    expect(read).toBeGreaterThan(5); // the sweep did read revisions
  });
});

// ------------------------------------------------------------------ through the admin API

describe('the fleet on ECS, as an auditor sees it through the admin API', () => {
  let f: MotoFleet;
  let t: TestService;
  const annotators: number[] = [];

  beforeAll(async () => {
    f = await createMotoFleet('a');
    t = await startTestService({
      env: {
        ORCHESTRATOR_BACKEND: 'ecs',
        FLEET_NAMESPACE: `ecs${RUN}`,
        FLEET_DOMAIN: DOMAIN,
        LS_DATABASE_URL: TEST_DATABASE_URL(),
        // The config must name the same ECS setup the backend uses (checked when it is loaded).
        ECS_CLUSTER: f.options.cluster,
        ECS_SUBNETS: f.options.subnets.join(','),
        ECS_SECURITY_GROUPS: f.options.securityGroups.join(','),
        ECS_EXECUTION_ROLE_ARN: f.options.executionRoleArn,
        ALB_LISTENER_ARN: f.options.listenerArn,
        ECS_VPC_ID: f.options.vpcId,
      },
      overrides: { backend: f.backend },
    });
  });
  afterAll(async () => {
    for (const id of annotators) {
      await f?.backend.remove(id).catch(() => undefined);
      await t?.ctx.instanceDatabases.drop(id).catch(() => undefined);
    }
    await t?.ctx.instanceDatabases.close();
    await t?.close();
    await f?.close();
  });

  const pass = async () => expect(await t.service.reconciler.runOnce({ wait: true })).not.toBe('busy');
  const row = (id: number) => t.db.selectFrom('annotators').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  /** The spec the fleet builds for the annotator now; its secrets join the ones no revision may hold. */
  const currentSpec = async (id: number) => {
    const spec = fleetSpecOf(t.ctx, await row(id), await readFleetSettings(t.ctx));
    for (const key of SECRET_ENV) if (spec.env[key]) secretValue(spec.env[key]);
    return spec;
  };
  const containerOf = async (taskDefinition: string) =>
    (await f.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition }))).taskDefinition!.containerDefinitions![0]!;

  it('start, stop, start again and delete: secrets only in the tagged secret, a new generation rolls the service, delete removes it', async () => {
    const created = await t.json('POST', '/api/annotators', { name: 'Auditor Case', email: `auditor-${RUN}@example.com` });
    expect(created.status).toBe(201);
    const id = created.body.id as number;
    annotators.push(id);

    expect((await t.json('POST', `/api/annotators/${id}/start`)).status).toBe(200);
    await pass(); // database, then the ECS resources; Label Studio never answers on moto
    expect(await row(id)).toMatchObject({ status: 'starting', startPhase: 'healthy', startGeneration: 1 });
    const g1 = await currentSpec(id);
    const svc1 = (await serviceOf(f, id))!;
    const c1 = await containerOf(svc1.taskDefinition!);
    expect(c1.secrets!.map((x) => x.name)).toEqual([...SECRET_ENV].filter((k) => g1.env[k] !== undefined).sort());
    for (const entry of c1.secrets!) expect(await resolveValueFrom(f, entry.valueFrom!), entry.name).toBe(g1.env[entry.name!]);
    expect(await resolveValueFrom(f, c1.secrets!.find((x) => x.name === 'WEBHOOK_SECRET')!.valueFrom!)).toBe(webhookSecret(t.ctx.secrets, id, 1));
    await expectNoSecretInRevisions(f, id);
    // Every resource carries this installation's id (the fleet database's, migration 0016).
    const installation = (await readInstallation(t.db)).installationId;
    const wantTags = { 'labelfleet.managed': 'true', 'labelfleet.annotator-id': String(id), 'labelfleet.spec-hash': g1.specHash, 'labelfleet.installation': installation };
    expect(secretTags((await secretOf(f, id))!.Tags)).toEqual(wantTags);
    expect(tagMap(svc1.tags)).toMatchObject(wantTags);
    expect(await elbTags(f, (await targetGroupOf(f, id))!.TargetGroupArn!)).toEqual(wantTags);

    expect((await t.json('POST', `/api/annotators/${id}/stop`)).status).toBe(200);
    await pass();
    expect((await row(id)).status).toBe('stopped');
    expect((await serviceOf(f, id))!.desiredCount).toBe(0);
    expect(secretTags((await secretOf(f, id))!.Tags)).toEqual(wantTags); // kept while stopped

    expect((await t.json('POST', `/api/annotators/${id}/start`)).status).toBe(200);
    await pass();
    expect(await row(id)).toMatchObject({ status: 'starting', startPhase: 'healthy', startGeneration: 2 });
    const g2 = await currentSpec(id);
    const svc2 = (await serviceOf(f, id))!;
    expect(svc2.taskDefinition).not.toBe(svc1.taskDefinition); // the service rolled to the new secret version
    expect(svc2.desiredCount).toBe(1);
    const c2 = await containerOf(svc2.taskDefinition!);
    expect(await resolveValueFrom(f, c2.secrets!.find((x) => x.name === 'WEBHOOK_SECRET')!.valueFrom!)).toBe(webhookSecret(t.ctx.secrets, id, 2));
    expect(await resolveValueFrom(f, c2.secrets!.find((x) => x.name === 'POSTGRE_PASSWORD')!.valueFrom!)).toBe(g2.env.POSTGRE_PASSWORD);
    expect(g2.env.POSTGRE_PASSWORD).not.toBe(g1.env.POSTGRE_PASSWORD);
    expect((await readableRevisions(f, id)).map((td) => td.taskDefinitionArn)).toEqual([svc2.taskDefinition]);
    await expectNoSecretInRevisions(f, id);

    expect((await t.json('DELETE', `/api/annotators/${id}`)).status).toBe(200);
    await pass();
    expect((await row(id)).cleanedUpAt).not.toBeNull();
    expect(await secretOf(f, id)).toBeUndefined();
    expect(await serviceOf(f, id)).toBeUndefined();
    expect(await readableRevisions(f, id)).toEqual([]);
    expect((await f.backend.list()).some((o) => o.annotatorId === id)).toBe(false);
  });
});

describe('ECS ownership: two installations in one account, cluster and name prefix', () => {
  let f: MotoFleet;
  const ours = { installationId: randomBytes(16).toString('hex'), adoptsUnmarked: false };
  const theirs = { installationId: randomBytes(16).toString('hex'), adoptsUnmarked: false };
  /** The other installation's backend: same options and names, another installation id. */
  let other: EcsBackend;
  const made: number[] = [];

  beforeAll(async () => {
    f = await createMotoFleet('o');
    f.backend.setOwner(ours);
    other = new EcsBackend(f.options);
    other.setOwner(theirs);
  });
  afterAll(async () => {
    if (!f) return;
    for (const id of made) {
      await f.backend.remove(id).catch(() => undefined);
      await other.remove(id).catch(() => undefined);
    }
    await f.close();
  });

  /** Every resource of the annotator and its tags: service, target group, rule, latest revision, secret. */
  async function tagsOfAll(id: number) {
    const svc = (await serviceOf(f, id))!;
    const tg = (await targetGroupOf(f, id))!;
    const rule = (await rulesOf(f)).find((r) => forwardOf(r) === tg.TargetGroupArn)!;
    const td = await f.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: svc.taskDefinition, include: ['TAGS'] }));
    return {
      service: tagMap(svc.tags)['labelfleet.installation'],
      targetGroup: (await elbTags(f, tg.TargetGroupArn!))['labelfleet.installation'],
      rule: (await elbTags(f, rule.RuleArn!))['labelfleet.installation'],
      taskDefinition: tagMap(td.tags)['labelfleet.installation'],
      secret: secretTags((await secretOf(f, id))!.Tags)['labelfleet.installation'],
    };
  }

  it('every service, target group, rule, task definition and secret carries the installation id', async () => {
    made.push(1);
    await f.backend.ensure(specFor(1));
    const id = ours.installationId;
    expect(await tagsOfAll(1)).toEqual({ service: id, targetGroup: id, rule: id, taskDefinition: id, secret: id });
  });

  it("the other installation's sweep does not see them, its remove leaves them, its start is refused naming the owner", async () => {
    expect((await other.list()).map((o) => o.annotatorId)).not.toContain(1);
    expect(await other.observe(1)).toMatchObject({ state: 'missing' });
    await other.stop(1);
    await other.remove(1);
    const err = await other.ensure(specFor(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForeignResourceError);
    expect((err as Error).message).toContain(`belongs to another LabelFleet installation (${ours.installationId})`);
    // Untouched: still running as ours, tags unchanged.
    expect(await serviceOf(f, 1)).toMatchObject({ status: 'ACTIVE', desiredCount: 1 });
    expect((await tagsOfAll(1)).service).toBe(ours.installationId);
    expect((await f.backend.list()).map((o) => o.annotatorId)).toContain(1);
  });

  it('each installation lists and removes only what it made', async () => {
    made.push(2, 3);
    await f.backend.ensure(specFor(2));
    await other.ensure(specFor(3));
    expect((await f.backend.list()).map((o) => o.annotatorId)).toEqual([1, 2]);
    expect((await other.list()).map((o) => o.annotatorId)).toEqual([3]);
    await other.remove(2);
    expect(await serviceOf(f, 2)).toMatchObject({ status: 'ACTIVE' });
    await f.backend.remove(3);
    expect(await serviceOf(f, 3)).toMatchObject({ status: 'ACTIVE' });
    expect((await tagsOfAll(3)).targetGroup).toBe(theirs.installationId);
    await other.remove(3);
    expect(await targetGroupOf(f, 3)).toBeUndefined();
    expect(await secretOf(f, 3)).toBeUndefined();
  });

  it('unmarked resources (made before installation ids) are adopted and marked only by an installation that adopts them', async () => {
    made.push(4);
    const legacy = new EcsBackend(f.options); // no owner: marks nothing, as before installation ids
    await legacy.ensure(specFor(4));
    expect(await tagsOfAll(4)).toEqual({ service: undefined, targetGroup: undefined, rule: undefined, taskDefinition: undefined, secret: undefined });
    // An installation that did not make unmarked resources leaves them alone.
    expect((await f.backend.list()).map((o) => o.annotatorId)).not.toContain(4);
    await expect(f.backend.ensure(specFor(4))).rejects.toThrow(/no LabelFleet installation/);
    // The installation that started them before marks existed adopts and marks them.
    const upgraded = new EcsBackend(f.options);
    upgraded.setOwner({ installationId: theirs.installationId, adoptsUnmarked: true });
    expect((await upgraded.list()).map((o) => o.annotatorId)).toContain(4);
    await upgraded.ensure(specFor(4));
    const id = theirs.installationId;
    expect(await tagsOfAll(4)).toEqual({ service: id, targetGroup: id, rule: id, taskDefinition: id, secret: id });
    await upgraded.remove(4);
    expect(await targetGroupOf(f, 4)).toBeUndefined();
  });
});

describe('ECS configuration', () => {
  const base = {
    ORCHESTRATOR_BACKEND: 'ecs',
    ECS_CLUSTER: 'fleet',
    ECS_SUBNETS: 'subnet-1, subnet-2',
    ECS_SECURITY_GROUPS: 'sg-1',
    ALB_LISTENER_ARN: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/fleet/1/2',
    ECS_VPC_ID: 'vpc-1',
    ECS_EXECUTION_ROLE_ARN: 'arn:aws:iam::123456789012:role/labelfleet-execution',
  };

  it('reads every ECS setting', () => {
    const o = ecsOptionsFromConfig(
      testConfig({
        ...base,
        ECS_LAUNCH_TYPE: 'EC2',
        ECS_TASK_ROLE_ARN: 'arn:aws:iam::1:role/t',
        AWS_ENDPOINT_URL: 'http://127.0.0.1:5055',
        ECS_NAME_PREFIX: 'team-a',
        ALB_RULE_PRIORITY_OFFSET: '1000',
        FLEET_DOMAIN: 'labels.example.com',
      }),
    );
    expect(o).toMatchObject({
      cluster: 'fleet',
      launchType: 'EC2',
      subnets: ['subnet-1', 'subnet-2'],
      securityGroups: ['sg-1'],
      assignPublicIp: false,
      executionRoleArn: base.ECS_EXECUTION_ROLE_ARN,
      taskRoleArn: 'arn:aws:iam::1:role/t',
      listenerArn: base.ALB_LISTENER_ARN,
      vpcId: 'vpc-1',
      endpoint: 'http://127.0.0.1:5055',
      namePrefix: 'team-a',
      priorityOffset: 1000,
      fleetDomain: 'labels.example.com',
    });
  });

  it('puts FLEET_NAMESPACE into every name, as the Docker fleet does', () => {
    expect(ecsOptionsFromConfig(testConfig({ ...base, FLEET_NAMESPACE: 'blue' })).namePrefix).toBe('fleet-ls-blue');
    expect(ecsOptionsFromConfig(testConfig({ ...base })).namePrefix).toBe('fleet-ls');
    expect(() => testConfig({ ...base, ECS_NAME_PREFIX: 'labelfleet-ls', FLEET_NAMESPACE: 'abcdefghijklm' })).toThrow(
      new ConfigError([{ variable: 'ECS_NAME_PREFIX', message: 'plus FLEET_NAMESPACE ("labelfleet-ls-abcdefghijklm") must be at most 25 characters' }]),
    );
  });

  // The execution role too: ECS reads every annotator's secret with it, on Fargate and EC2 alike.
  it.each(['ECS_CLUSTER', 'ECS_SUBNETS', 'ECS_SECURITY_GROUPS', 'ECS_EXECUTION_ROLE_ARN', 'ALB_LISTENER_ARN', 'ECS_VPC_ID'])('a missing %s is a one-line error naming it', (key) => {
    const env: Record<string, string> = { ...base };
    delete env[key];
    // Checked when the environment is parsed, before anything connects (src/config.ts RULES).
    expect(() => testConfig(env)).toThrow(new ConfigError([{ variable: key, message: 'is required when ORCHESTRATOR_BACKEND=ecs' }]));
  });

  it('rejects combinations that could never start a task', () => {
    expect(() => testConfig({ ...base, ECS_LAUNCH_TYPE: 'EC2', ECS_ASSIGN_PUBLIC_IP: 'true' })).toThrow(
      'ECS_ASSIGN_PUBLIC_IP: true is only valid with ECS_LAUNCH_TYPE=FARGATE',
    );
    expect(() => testConfig({ ...base, ECS_NAME_PREFIX: 'a-very-long-prefix-over-20' })).toThrow(/ECS_NAME_PREFIX/);
    expect(() => testConfig({ ...base, ECS_LAUNCH_TYPE: 'K8S' })).toThrow(/ECS_LAUNCH_TYPE/);
  });
});

// --------------------------------------------------------------------------------- permissions

/** An unsigned IAM query call; moto routes it by the credential scope and does not check it while auth is off. */
async function iamCall(endpoint: string, params: Record<string, string>): Promise<string> {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: 'AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: new URLSearchParams({ ...params, Version: '2010-05-08' }).toString(),
  });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return text;
}

describe('ECS backend with IAM enforced (a private moto_server)', () => {
  let proc: ChildProcess | undefined;
  let endpoint = '';
  type Key = { accessKeyId: string; secretAccessKey: string };
  /** May write the annotator's secret, read target groups, and nothing more. */
  let key: Key;
  /** May only look secrets up. */
  let readOnlyKey: Key;

  beforeAll(async () => {
    // The project's venv (env:up) has moto[server]; MOTO_SERVER_BIN overrides.
    const bin = process.env.MOTO_SERVER_BIN ?? join(testEnv('LS_VENV'), 'bin', 'moto_server');
    const port = await freePort();
    endpoint = `http://127.0.0.1:${port}`;
    // The first 6 requests (the IAM set-up below) run unauthenticated; every later one is checked against IAM.
    proc = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], {
      env: { ...process.env, INITIAL_NO_AUTH_ACTION_COUNT: '6' },
      stdio: 'ignore',
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const up = await fetch(`${endpoint}/moto-api/data.json`).then((r) => r.ok, () => false);
      if (up) break;
      if (Date.now() > deadline) throw new Error(`moto_server (${bin}) did not start on ${endpoint}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const user = async (name: string, actions: string[]): Promise<Key> => {
      await iamCall(endpoint, { Action: 'CreateUser', UserName: name });
      const policy = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: actions, Resource: '*' }] };
      await iamCall(endpoint, { Action: 'PutUserPolicy', UserName: name, PolicyName: name, PolicyDocument: JSON.stringify(policy) });
      const created = await iamCall(endpoint, { Action: 'CreateAccessKey', UserName: name });
      return { accessKeyId: /<AccessKeyId>([^<]+)</.exec(created)![1]!, secretAccessKey: /<SecretAccessKey>([^<]+)</.exec(created)![1]! };
    };
    key = await user('fleet', [
      'secretsmanager:DescribeSecret',
      'secretsmanager:CreateSecret',
      'secretsmanager:TagResource',
      'elasticloadbalancing:DescribeTargetGroups',
      'elasticloadbalancing:DescribeTags',
    ]);
    readOnlyKey = await user('reader', ['secretsmanager:DescribeSecret']);
  });

  afterAll(() => {
    proc?.kill('SIGTERM');
  });

  it('an AccessDenied names the IAM action to grant', async () => {
    const options: EcsBackendOptions = {
      cluster: 'fleet',
      launchType: 'FARGATE',
      subnets: ['subnet-1'],
      securityGroups: ['sg-1'],
      assignPublicIp: false,
      executionRoleArn: 'arn:aws:iam::123456789012:role/labelfleet-execution',
      listenerArn: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/fleet/1/2',
      vpcId: 'vpc-1',
      fleetDomain: DOMAIN,
      region: REGION,
      endpoint,
      credentials: key,
      namePrefix: 'fleet-ls',
      priorityOffset: 0,
    };
    // The secret comes first: a fleet that may not write it builds nothing else.
    const noSecrets = await new EcsBackend({ ...options, credentials: readOnlyKey }).ensure(specFor(1)).catch((e: unknown) => e);
    expect(noSecrets).toBeInstanceOf(EcsPermissionError);
    expect((noSecrets as EcsPermissionError).action).toBe('secretsmanager:CreateSecret');
    expect((noSecrets as Error).message).toMatch(/^AWS denied secretsmanager:CreateSecret: grant it to the fleet's IAM identity/);

    const backend = new EcsBackend(options);
    // The secret is written; DescribeTargetGroups is allowed (nothing found), CreateTargetGroup is not.
    const denied = await backend.ensure(specFor(1)).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(EcsPermissionError);
    expect((denied as EcsPermissionError).action).toBe('elasticloadbalancing:CreateTargetGroup');
    expect((denied as Error).message).toMatch(/^AWS denied elasticloadbalancing:CreateTargetGroup: grant it to the fleet's IAM identity/);
    expect((denied as Error).message).toContain('is not authorized to perform: elasticloadbalancing:CreateTargetGroup');

    await expect(backend.observe(1)).rejects.toThrow(/^AWS denied ecs:DescribeServices: /);
    await expect(backend.list()).rejects.toThrow(/^AWS denied ecs:ListServices: /);

    // An access key IAM does not know is a credentials problem, not a missing permission. Asked on
    // ELB's query protocol: moto answers the JSON-protocol services (ECS, Secrets Manager) with XML
    // errors the SDK cannot read, where AWS sends UnrecognizedClientException.
    const unknownKey = { accessKeyId: 'AKIAUNKNOWN0000000', secretAccessKey: 'x' };
    const stranger = new EcsBackend(options, { elb: new ElasticLoadBalancingV2Client({ region: REGION, endpoint, credentials: unknownKey, maxAttempts: 1 }) });
    await expect(stranger.ensure(specFor(1))).rejects.toThrow(
      /^AWS rejected the credentials for elasticloadbalancing:DescribeTargetGroups \(InvalidClientTokenId\): check the SDK credential chain/,
    );
  });
});
