/**
 * The in-memory test backend (test/helpers/memory-backend.ts) held to the unchanged Backend
 * contract, as Docker (test/e2e/fleet-docker.test.ts) and ECS (test/e2e/backend-ecs.test.ts) are:
 * the reconciler's fault-path tests built on it (reconciler-faults.test.ts) then see what a real
 * backend may show. Its instances really listen on 127.0.0.1, so the suite checks live addresses
 * and health (runsInstances: true).
 */
import { randomBytes } from 'node:crypto';
import type { InstanceSpec } from '../../orchestrator/backends/types.ts';
import { describeBackendContract, pollingWaitFor } from '../helpers/backend-contract.ts';
import { MemoryBackend } from '../helpers/memory-backend.ts';

const NAMESPACE = `mem${randomBytes(3).toString('hex')}`;

describeBackendContract('memory', async () => {
  const backend = await new MemoryBackend({ namespace: NAMESPACE, domain: 'fleet.localhost' }).start();
  let next = 100;
  const spec = (annotatorId: number, overrides: Partial<InstanceSpec> = {}): InstanceSpec => ({
    annotatorId,
    subdomain: `contract-${annotatorId}`,
    image: 'labelfleet/memory:contract',
    env: { ANNOTATOR_ID: String(annotatorId) },
    port: 8080,
    memoryMb: 512,
    cpus: 0.5,
    specHash: `contract-${annotatorId}-v1`,
    ...overrides,
  });
  return {
    backend,
    spec,
    newAnnotatorId: () => next++,
    waitFor: pollingWaitFor({ timeoutMs: 5000, intervalMs: 20 }),
    runsInstances: true,
    async inspect(annotatorId) {
      const inst = backend.platform.instances.get(backend.name(annotatorId));
      const routes = [...backend.platform.routes.values()].filter((r) => r.annotatorId === annotatorId).length;
      return { instances: inst ? 1 : 0, routes, ...(inst ? { version: String(inst.incarnation) } : {}) };
    },
    async createLookalike(annotatorId) {
      // Same name scheme, no fleet label: not the fleet's.
      backend.platform.instances.set(backend.name(annotatorId), {
        name: backend.name(annotatorId),
        labels: { managed: false, namespace: NAMESPACE, annotatorId, specHash: 'lookalike' },
        state: 'running',
        incarnation: -1,
        spec: spec(annotatorId),
        ready: false,
        timers: [],
      });
    },
    close: () => backend.close(),
  };
});
