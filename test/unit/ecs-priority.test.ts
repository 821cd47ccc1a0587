import { describe, expect, it } from 'vitest';
import { choosePriority, MAX_PRIORITY, preferredPriority, priorityCandidates } from '../../orchestrator/backends/ecs-priority.ts';
import {
  annotatorIdFromName,
  createServiceToken,
  familyOfTaskDefinitionArn,
  resourceNames,
  taskDefinitionHash,
  taskDefinitionInput,
  taskSize,
} from '../../orchestrator/backends/ecs-plan.ts';
import type { InstanceSpec } from '../../orchestrator/backends/types.ts';

describe('listener rule priorities', () => {
  it('gives each annotator offset + id, so distinct annotators never share a slot', () => {
    expect(preferredPriority(1)).toBe(1);
    expect(preferredPriority(42, 1000)).toBe(1042);
    expect(preferredPriority(50_000)).toBe(50_000);
    const seen = new Set<number>();
    for (let id = 1; id <= 5000; id++) seen.add(preferredPriority(id, 100)!);
    expect(seen.size).toBe(5000);
  });

  it('has no own slot beyond 50000', () => {
    expect(preferredPriority(50_001)).toBeUndefined();
    expect(preferredPriority(11, 49_990)).toBeUndefined();
    expect(preferredPriority(10, 49_990)).toBe(50_000);
  });

  it('rejects ids and offsets outside the ranges', () => {
    expect(() => preferredPriority(0)).toThrow(RangeError);
    expect(() => preferredPriority(1.5)).toThrow(RangeError);
    expect(() => preferredPriority(1, -1)).toThrow(RangeError);
    expect(() => preferredPriority(1, MAX_PRIORITY)).toThrow(RangeError);
  });

  it('takes the own slot when free, else the next free candidate above the offset', () => {
    expect(choosePriority(7, new Set())).toBe(7);
    expect(choosePriority(7, new Set([1, 2, 3]))).toBe(7);
    // Slot 7 held by an operator's rule: probing starts at the id's position and moves up.
    expect(choosePriority(7, new Set([7]))).toBe(8);
    expect(choosePriority(7, new Set([7, 8, 9]))).toBe(10);
    expect(choosePriority(3, new Set([3]), 10)).toBe(13);
    expect(choosePriority(3, new Set([13]), 10)).toBe(14);
  });

  it('spreads annotators beyond the range and wraps around inside offset+1..50000', () => {
    // Offset 49990: 10 slots. Id 25 starts probing at slot 49990 + 1 + (24 % 10) = 49995.
    expect(choosePriority(25, new Set(), 49_990)).toBe(49_995);
    expect(choosePriority(20, new Set(), 49_990)).toBe(50_000);
    expect(choosePriority(20, new Set([50_000]), 49_990)).toBe(49_991);
    const all = new Set<number>();
    for (let p = 49_991; p <= 50_000; p++) all.add(p);
    expect(choosePriority(20, all, 49_990)).toBeUndefined();
  });

  it('visits every slot above the offset exactly once', () => {
    const c = [...priorityCandidates(4, 49_990)];
    expect(c[0]).toBe(49_994);
    expect(c).toHaveLength(10);
    expect(new Set(c).size).toBe(10);
    expect(Math.min(...c)).toBe(49_991);
    expect(Math.max(...c)).toBe(50_000);
  });
});

describe('ECS plan', () => {
  const spec: InstanceSpec = {
    annotatorId: 12,
    subdomain: 'alice',
    image: 'ls:1',
    env: { B: '2', A: '1', DB: 'arn:aws:ssm:eu-west-1:123456789012:parameter/ls/db' },
    port: 8080,
    memoryMb: 2048,
    cpus: 1,
    specHash: 'h1',
  };
  const settings = { launchType: 'FARGATE' as const, region: 'eu-west-1', executionRoleArn: 'arn:aws:iam::123456789012:role/exec' };

  it('names resources <prefix>-<id> and reads the id back only from its own names', () => {
    expect(resourceNames('fleet-ls', 12)).toEqual({ family: 'fleet-ls-12', service: 'fleet-ls-12', targetGroup: 'fleet-ls-12', secret: 'fleet-ls-12/secrets' });
    expect(() => resourceNames('a-very-long-prefix-12345678', 1234567)).toThrow(/longer than 32/);
    expect(annotatorIdFromName('fleet-ls', 'fleet-ls-12')).toBe(12);
    expect(annotatorIdFromName('fleet-ls', 'fleet-ls-012')).toBeUndefined();
    expect(annotatorIdFromName('fleet-ls', 'fleet-ls-12-old')).toBeUndefined();
    expect(annotatorIdFromName('fleet-ls', 'fleet-lsx-12')).toBeUndefined();
    expect(annotatorIdFromName('fleet-ls', 'fleet-ls-')).toBeUndefined();
    expect(familyOfTaskDefinitionArn('arn:aws:ecs:us-east-1:1:task-definition/fleet-ls-1:3')).toBe('fleet-ls-1');
  });

  it('rounds a request up to the smallest Fargate size that holds it', () => {
    expect(taskSize('FARGATE', 0.25, 512)).toEqual({ cpu: '256', memory: '512' });
    expect(taskSize('FARGATE', 0.25, 3000)).toEqual({ cpu: '512', memory: '3072' });
    expect(taskSize('FARGATE', 0.5, 1536)).toEqual({ cpu: '512', memory: '2048' });
    expect(taskSize('FARGATE', 1, 1024)).toEqual({ cpu: '1024', memory: '2048' });
    expect(taskSize('FARGATE', 1, 9000)).toEqual({ cpu: '2048', memory: '9216' });
    expect(taskSize('FARGATE', 3, 8192)).toEqual({ cpu: '4096', memory: '8192' });
    expect(taskSize('FARGATE', 8, 20_000)).toEqual({ cpu: '8192', memory: '20480' });
    expect(() => taskSize('FARGATE', 32, 1024)).toThrow(/no Fargate task size/);
    expect(() => taskSize('FARGATE', 1, 0)).toThrow(RangeError);
    expect(taskSize('EC2', 1.5, 3000)).toEqual({ cpu: '1536', memory: '3000' });
  });

  it('builds the task definition: sorted env, ARN values as secrets, awslogs only with a log group', () => {
    const names = resourceNames('fleet-ls', 12);
    const plain = taskDefinitionInput(spec, names, settings);
    const c = plain.containerDefinitions[0]!;
    expect(c.environment).toEqual([
      { name: 'A', value: '1' },
      { name: 'B', value: '2' },
    ]);
    expect(c.secrets).toEqual([{ name: 'DB', valueFrom: spec.env.DB }]);
    expect(c).not.toHaveProperty('logConfiguration');
    expect(plain.executionRoleArn).toBe(settings.executionRoleArn);
    const logged = taskDefinitionInput(spec, names, { ...settings, logGroup: '/lf' });
    expect(logged.containerDefinitions[0]!.logConfiguration?.options).toEqual({
      'awslogs-group': '/lf',
      'awslogs-region': 'eu-west-1',
      'awslogs-stream-prefix': 'fleet-ls-12',
    });
  });

  it('hashes the request so that only a real change registers a new revision', () => {
    const names = resourceNames('fleet-ls', 12);
    const h = (s: InstanceSpec, extra = {}) => taskDefinitionHash(taskDefinitionInput(s, names, { ...settings, ...extra }));
    expect(h({ ...spec, env: { A: '1', DB: spec.env.DB!, B: '2' } })).toBe(h(spec)); // env order does not matter
    expect(h({ ...spec, specHash: 'other' })).toBe(h(spec)); // the request, not the label, decides
    expect(h({ ...spec, image: 'ls:2' })).not.toBe(h(spec));
    expect(h(spec, { taskRoleArn: 'arn:t' })).not.toBe(h(spec)); // settings count too
  });

  it('derives a stable, bounded CreateService token per service incarnation', () => {
    const t = createServiceToken('c', 'fleet-ls-1', 'arn:td:1');
    expect(t).toMatch(/^[0-9a-f]{32}$/);
    expect(createServiceToken('c', 'fleet-ls-1', 'arn:td:1')).toBe(t);
    expect(createServiceToken('c', 'fleet-ls-1', 'arn:td:2')).not.toBe(t);
    expect(createServiceToken('d', 'fleet-ls-1', 'arn:td:1')).not.toBe(t);
    // Recreated after a delete (the INACTIVE service's createdAt): a token of its own.
    expect(createServiceToken('c', 'fleet-ls-1', 'arn:td:1', '2026-01-01T00:00:00.000Z')).not.toBe(t);
  });
});
