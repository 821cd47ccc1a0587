/**
 * What keeps annotator secrets out of ECS task definitions (pure parts): which environment entries
 * are secrets, the secret document and its version, the task definition's references, and the
 * stop reason that names the execution role's missing permission.
 */
import { describe, expect, it } from 'vitest';
import {
  explainStopReason,
  reportedSpecHash,
  resourceNames,
  secretDocument,
  secretOwnerName,
  secretValueFrom,
  serviceTags,
  taskDefinitionHash,
  taskDefinitionInput,
} from '../../orchestrator/backends/ecs-plan.ts';
import type { InstanceSpec } from '../../orchestrator/backends/types.ts';
import { buildInstanceSpec, ENV, SECRET_ENV, type AnnotatorForSpec } from '../../orchestrator/instance-spec.ts';
import { SecretBox } from '../../src/crypto.ts';

const config = {
  FLEET_NAMESPACE: undefined,
  FLEET_DOMAIN: 'fleet.example.com',
  FLEET_PUBLIC_SCHEME: 'https' as const,
  FLEET_CALLBACK_URL: 'http://fleet:3000',
  DOCKER_NETWORK_MODE: 'bridge' as const,
  DOCKER_NETWORK: 'labelfleet',
  LS_PORT_BASE: 20_000,
  TRAEFIK_PROVIDER: 'docker' as const,
  TRAEFIK_ENTRYPOINT: 'web',
};
const limits = { image: 'ls:1', memoryMb: 2048, cpus: 1 };
const database = { host: 'db', port: 5432, name: 'ls_annotator_7', user: 'ls_annotator_7' };

function specOf(box: SecretBox, overrides: Partial<AnnotatorForSpec> = {}, password?: string): InstanceSpec {
  const annotator: AnnotatorForSpec = {
    id: 7,
    email: 'ann@example.com',
    subdomain: 'ann',
    startGeneration: 3,
    lsPasswordEnc: password ? box.encrypt(password) : null,
    ...overrides,
  };
  return buildInstanceSpec(config as Parameters<typeof buildInstanceSpec>[0], box, annotator, limits, database);
}

const boxA = new SecretBox('key-a-key-a-key-a-key-a-key-a-key-a');
const boxB = new SecretBox('key-b-key-b-key-b-key-b-key-b-key-b');
const names = resourceNames('fleet-ls', 7);
const settings = { launchType: 'FARGATE' as const, region: 'eu-west-1', executionRoleArn: 'arn:aws:iam::123456789012:role/exec' };
const ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:fleet-ls-7/secrets-AbCdEf';

describe('SECRET_ENV', () => {
  it('is exactly the entries whose values depend on FLEET_SECRET_KEY or the annotator password', () => {
    // The same annotator under two fleet keys and two passwords: whatever differs is a secret.
    const a = specOf(boxA, {}, 'correct horse battery');
    const b = specOf(boxB, {}, 'another password here');
    const differing = Object.keys(a.env).filter((k) => a.env[k] !== b.env[k]).sort();
    expect(differing).toEqual([...SECRET_ENV].sort());
    expect(differing).toContain(ENV.annotatorPassword);
    expect(differing).toContain(ENV.webhookSecret);
  });
});

describe('the annotator secret document', () => {
  it('holds every secret entry and nothing else, keys sorted', () => {
    const spec = specOf(boxA, {}, 'pw-of-the-annotator');
    const doc = secretDocument(spec);
    const parsed = JSON.parse(doc.secretString) as Record<string, string>;
    expect(Object.keys(parsed)).toEqual([...SECRET_ENV].sort());
    for (const key of SECRET_ENV) expect(parsed[key]).toBe(spec.env[key]);
    expect(parsed[ENV.annotatorPassword]).toBe('pw-of-the-annotator');
    // Without an issued password there is one entry less.
    expect(Object.keys(JSON.parse(secretDocument(specOf(boxA)).secretString))).not.toContain(ENV.annotatorPassword);
  });

  it('gets a 64-character version id that changes with the start generation, not with plain settings', () => {
    const g3 = secretDocument(specOf(boxA));
    expect(g3.versionId).toMatch(/^[0-9a-f]{64}$/);
    expect(secretDocument(specOf(boxA)).versionId).toBe(g3.versionId); // deterministic: a retried write adds nothing
    expect(secretDocument(specOf(boxA, { startGeneration: 4 })).versionId).not.toBe(g3.versionId);
    expect(secretDocument(specOf(boxA, {}, 'new-password-1')).versionId).not.toBe(g3.versionId);
    // Email and subdomain are settings, not secrets: the secret stays the same version.
    expect(secretDocument(specOf(boxA, { email: 'other@example.com', subdomain: 'other' })).versionId).toBe(g3.versionId);
  });

  it('is named <prefix>-<id>/secrets, and only such names map back to their owner', () => {
    expect(names.secret).toBe('fleet-ls-7/secrets');
    expect(secretOwnerName('fleet-ls-7/secrets')).toBe('fleet-ls-7');
    expect(secretOwnerName('fleet-ls-7')).toBeUndefined();
    expect(secretOwnerName('fleet-ls-7/secrets/old')).toBeUndefined();
  });
});

describe('the task definition', () => {
  it('holds no secret value, only references pinned to the secret version, and keeps plain settings', () => {
    for (const password of [undefined, 'pw-of-the-annotator']) {
      const spec = specOf(boxA, {}, password);
      const doc = secretDocument(spec);
      const input = taskDefinitionInput(spec, names, settings, { arn: ARN, versionId: doc.versionId });
      const text = JSON.stringify(input);
      for (const key of SECRET_ENV) {
        if (spec.env[key] !== undefined) expect(text).not.toContain(spec.env[key]);
      }
      const c = input.containerDefinitions[0]!;
      const secretKeys = [...SECRET_ENV].filter((k) => spec.env[k] !== undefined).sort();
      expect(c.secrets).toEqual(secretKeys.map((name) => ({ name, valueFrom: `${ARN}:${name}::${doc.versionId}` })));
      expect(c.environment.map((e) => e.name)).toEqual(Object.keys(spec.env).filter((k) => !SECRET_ENV.has(k)).sort());
      expect(c.environment).toContainEqual({ name: ENV.annotatorEmail, value: 'ann@example.com' });
      expect(input.executionRoleArn).toBe(settings.executionRoleArn);
    }
  });

  it('refers to a new version, and so is a new revision, when the secrets rotate', () => {
    const hashOf = (spec: InstanceSpec) => taskDefinitionHash(taskDefinitionInput(spec, names, settings, { arn: ARN, versionId: secretDocument(spec).versionId }));
    expect(hashOf(specOf(boxA))).toBe(hashOf(specOf(boxA)));
    expect(hashOf(specOf(boxA, { startGeneration: 4 }))).not.toBe(hashOf(specOf(boxA)));
  });

  it('passes values that already are secret-store ARNs through, and needs the version when there are secrets', () => {
    const spec: InstanceSpec = {
      annotatorId: 7,
      subdomain: 'ann',
      image: 'ls:1',
      env: { LS_PORT: '8080', EXTERNAL: 'arn:aws:ssm:eu-west-1:123456789012:parameter/x', POSTGRE_PASSWORD: 'pw' },
      port: 8080,
      memoryMb: 1024,
      cpus: 0.5,
      specHash: 'h',
    };
    const c = taskDefinitionInput(spec, names, settings, { arn: ARN, versionId: 'v'.repeat(64) }).containerDefinitions[0]!;
    expect(c.secrets).toEqual([
      { name: 'EXTERNAL', valueFrom: spec.env.EXTERNAL },
      { name: 'POSTGRE_PASSWORD', valueFrom: secretValueFrom({ arn: ARN, versionId: 'v'.repeat(64) }, 'POSTGRE_PASSWORD') },
    ]);
    expect(c.environment).toEqual([{ name: 'LS_PORT', value: '8080' }]);
    expect(() => taskDefinitionInput(spec, names, settings)).toThrow(/needs the secret's version/);
    const plainOnly = { ...spec, env: { LS_PORT: '8080' } };
    expect(taskDefinitionInput(plainOnly, names, settings).containerDefinitions[0]!.secrets).toBeUndefined();
  });
});

describe('stop reasons', () => {
  const role = 'arn:aws:iam::123456789012:role/labelfleet-execution';

  it.each([
    [
      'ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret arn:aws:secretsmanager:us-east-1:123456789012:secret:fleet-ls-7/secrets-AbCdEf from secrets manager: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/labelfleet-execution/9f1c is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:fleet-ls-7/secrets-AbCdEf because no identity-based policy allows the secretsmanager:GetSecretValue action status code: 400',
      'secretsmanager:GetSecretValue',
    ],
    [
      'ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret arn:aws:secretsmanager:us-east-1:123456789012:secret:fleet-ls-7/secrets-AbCdEf from secrets manager: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/labelfleet-execution/9f1c is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:123456789012:key/1234',
      'kms:Decrypt',
    ],
    [
      'CannotPullContainerError: pull image manifest has been retried 1 time(s): AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/labelfleet-execution/9f1c is not authorized to perform: ecr:BatchGetImage on resource: arn:aws:ecr:us-east-1:123456789012:repository/labelfleet-ls',
      'ecr:BatchGetImage',
    ],
  ])('name the action AWS denied the execution role (%#)', (reason, action) => {
    const explained = explainStopReason(reason, role);
    expect(explained.startsWith(`AWS denied ${action} to the task execution role ${role} (ECS_EXECUTION_ROLE_ARN): grant it`)).toBe(true);
    expect(explained.endsWith(`ECS said: ${reason}`)).toBe(true);
  });

  it('leave every other reason as it is', () => {
    for (const reason of ['Essential container in task exited; exit code 1', 'Scaling activity initiated by (deployment ecs-svc/1)', 'Task failed ELB health checks']) {
      expect(explainStopReason(reason, role)).toBe(reason);
    }
  });
});

describe('service tags', () => {
  it('mark where secrets live, and only services so marked report their spec hash', () => {
    const tags = serviceTags({ annotatorId: 7, specHash: 'abc' });
    expect(tags).toEqual({ 'labelfleet.managed': 'true', 'labelfleet.annotator-id': '7', 'labelfleet.spec-hash': 'abc', 'labelfleet.secret-store': 'secretsmanager' });
    expect(reportedSpecHash(tags)).toBe('abc');
    // A service an earlier LabelFleet made (secrets in the environment): no hash, so it is recreated.
    expect(reportedSpecHash({ 'labelfleet.managed': 'true', 'labelfleet.spec-hash': 'abc' })).toBeUndefined();
    expect(reportedSpecHash({ ...tags, 'labelfleet.secret-store': 'environment' })).toBeUndefined();
  });
});
