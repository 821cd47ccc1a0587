/**
 * The Backend contract: one suite every Backend (Docker, ECS) must pass, so the reconciler can
 * treat them alike. A test file calls `describeBackendContract(name, setup)` with a setup that
 * builds the backend against the real platform (Docker Engine, moto, ...).
 *
 * The suite never assumes instant convergence: whatever the platform does asynchronously is
 * awaited with the harness's `waitFor`. It reads the platform around the backend through
 * `inspect`, so "no duplicate" and "everything removed" are checked against what really exists,
 * not against the backend's own view.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, InstanceSpec, InstanceState, ObservedInstance } from '../../orchestrator/backends/types.ts';

export interface PlatformView {
  /** Instances that exist for the annotator (containers, live ECS services), stopped ones included. */
  instances: number;
  /** Routes that send `<subdomain>.<FLEET_DOMAIN>` to it (Traefik routers, listener rules). */
  routes: number;
  /** What changes when the instance is rolled to a new spec (container id, task definition ARN). */
  version?: string;
}

export interface BackendContractHarness {
  backend: Backend;
  /**
   * A complete spec for the annotator, the same every time for the same id (the suite compares
   * listed spec hashes with it); the suite overrides fields, and sets specHash itself when it changes env.
   */
  spec(annotatorId: number, overrides?: Partial<InstanceSpec>): InstanceSpec;
  /** A fresh annotator id no other test (or earlier run) uses. */
  newAnnotatorId(): number;
  /** Polls `fn` until it returns a truthy value; throws naming `what` on timeout. */
  waitFor<T>(what: string, fn: () => Promise<T | false | undefined | null>, opts?: { timeoutMs?: number }): Promise<T>;
  /**
   * Whether instances really run on this platform. Docker: true. ECS on moto: false (moto never
   * schedules a service's tasks), so the suite checks what ECS records instead of a live address.
   */
  runsInstances: boolean;
  /** The platform's own view of the annotator's resources, read without the backend. */
  inspect(annotatorId: number): Promise<PlatformView>;
  /** Makes something that looks like the fleet's (same name scheme) but carries no fleet label/tag. */
  createLookalike(annotatorId: number): Promise<void>;
  /** Deletes whatever the harness made (lookalikes, leftovers). */
  close?(): Promise<void>;
}

const LIVE: InstanceState[] = ['starting', 'running'];

export function describeBackendContract(name: string, setup: () => Promise<BackendContractHarness>): void {
  describe(`Backend contract: ${name}`, () => {
    let h: BackendContractHarness;
    const used: number[] = [];
    const id = () => {
      const v = h.newAnnotatorId();
      used.push(v);
      return v;
    };

    beforeAll(async () => {
      h = await setup();
    });

    afterAll(async () => {
      if (!h) return;
      for (const a of used) await h.backend.remove(a).catch(() => undefined);
      await h.close?.();
    });

    /** Running (with an address) where instances run; otherwise recorded as wanted-running. */
    async function expectUp(annotatorId: number, specHash: string): Promise<ObservedInstance> {
      if (h.runsInstances) {
        return h.waitFor(`annotator ${annotatorId} running`, async () => {
          const o = await h.backend.observe(annotatorId);
          return o.state === 'running' && o.address && o.specHash === specHash ? o : undefined;
        });
      }
      const o = await h.backend.observe(annotatorId);
      expect(LIVE).toContain(o.state);
      expect(o.specHash).toBe(specHash);
      return o;
    }

    it('ensure creates the instance and its route; a second ensure creates nothing more', async () => {
      const a = id();
      const spec = h.spec(a);
      const first = await h.backend.ensure(spec);
      expect(first.annotatorId).toBe(a);
      expect(LIVE).toContain(first.state);
      expect(first.instanceId).toEqual(expect.any(String));
      expect(first.specHash).toBe(spec.specHash);
      const before = await h.inspect(a);
      expect(before.instances).toBe(1);
      expect(before.routes).toBe(1);

      const second = await h.backend.ensure(spec);
      expect(second.instanceId).toBe(first.instanceId);
      expect(second.specHash).toBe(spec.specHash);
      const after = await h.inspect(a);
      expect(after).toEqual(before);
    });

    it('create (Docker offers it) makes the instance without running it; ensure then runs that very instance', async () => {
      if (!h.backend.create) {
        expect(h.backend.kind).not.toBe('docker');
        return;
      }
      const a = id();
      const spec = h.spec(a);
      await h.backend.create(spec);
      const made = await h.backend.observe(a);
      expect(made).toMatchObject({ state: 'stopped', specHash: spec.specHash });
      const ensured = await h.backend.ensure(spec);
      expect(ensured.instanceId).toBe(made.instanceId);
      await expectUp(a, spec.specHash);
      expect((await h.inspect(a)).instances).toBe(1);
    });

    it('observe reports state, address and health; an unknown annotator is missing', async () => {
      const a = id();
      const spec = h.spec(a);
      const ensured = await h.backend.ensure(spec);
      const o = await expectUp(a, spec.specHash);
      expect(o.annotatorId).toBe(a);
      expect(o.instanceId).toBe(ensured.instanceId);
      expect(['healthy', 'unhealthy', 'unknown']).toContain(o.health);
      if (h.runsInstances) {
        expect(o.address).toEqual({ host: expect.any(String), port: expect.any(Number) });
        await h.waitFor(`annotator ${a} healthy`, async () => (await h.backend.observe(a)).health === 'healthy');
      }

      const never = id();
      const missing = await h.backend.observe(never);
      expect(missing).toMatchObject({ annotatorId: never, state: 'missing', health: 'unknown' });
      expect(missing.instanceId).toBeUndefined();
      expect(missing.address).toBeUndefined();
    });

    it('stop keeps what a restart needs; ensure after stop restarts the same instance', async () => {
      const a = id();
      const spec = h.spec(a);
      const started = await h.backend.ensure(spec);
      await expectUp(a, spec.specHash);
      const running = await h.inspect(a);

      await h.backend.stop(a);
      const stopped = await h.waitFor(`annotator ${a} stopped`, async () => {
        const o = await h.backend.observe(a);
        return o.state === 'stopped' ? o : undefined;
      });
      expect(stopped.instanceId).toBe(started.instanceId);
      expect(await h.inspect(a)).toEqual(running); // instance and route kept, not rolled
      await h.backend.stop(a); // stopping a stopped instance is a no-op
      expect((await h.backend.observe(a)).state).toBe('stopped');

      const restarted = await h.backend.ensure(spec);
      expect(restarted.instanceId).toBe(started.instanceId);
      await expectUp(a, spec.specHash);
      expect(await h.inspect(a)).toEqual(running);
    });

    it('a changed spec hash rolls the instance to the new spec, keeping one instance and one route', async () => {
      const a = id();
      const spec = h.spec(a);
      await h.backend.ensure(spec);
      const v1 = await h.inspect(a);

      const changed = h.spec(a, { env: { ...spec.env, LABELFLEET_CONTRACT_ROLL: 'v2' }, specHash: `${spec.specHash}-v2` });
      const rolled = await h.backend.ensure(changed);
      expect(rolled.specHash).toBe(changed.specHash);
      await expectUp(a, changed.specHash);
      const v2 = await h.inspect(a);
      expect(v2.instances).toBe(1);
      expect(v2.routes).toBe(1);
      expect(v2.version).toBeDefined();
      expect(v2.version).not.toBe(v1.version);

      // The same changed spec again: no further roll.
      await h.backend.ensure(changed);
      expect((await h.inspect(a)).version).toBe(v2.version);
    });

    it("routeLoaded (where the backend can tell) follows the router: loaded after ensure, not for another port, not after remove", async () => {
      if (!h.backend.routeLoaded) return;
      const a = id();
      const spec = h.spec(a);
      expect(await h.backend.routeLoaded(spec)).toBe(false);
      await h.backend.ensure(spec);
      await h.waitFor(`annotator ${a}'s route loaded`, async () => (await h.backend.routeLoaded!(spec)) === true);
      expect(await h.backend.routeLoaded({ ...spec, port: spec.port + 1 })).toBe(false);
      await h.backend.remove(a);
      await h.waitFor(`annotator ${a}'s route unloaded`, async () => (await h.backend.routeLoaded!(spec)) === false);
    });

    it('remove deletes the instance and its route, and is idempotent', async () => {
      const a = id();
      await h.backend.ensure(h.spec(a));
      await h.backend.remove(a);
      await h.waitFor(`annotator ${a} removed`, async () => {
        const v = await h.inspect(a);
        return v.instances === 0 && v.routes === 0;
      });
      expect(await h.backend.observe(a)).toMatchObject({ annotatorId: a, state: 'missing' });
      await h.backend.remove(a); // gone already is success
      await h.backend.stop(a); // so is stopping what does not exist

      const never = id();
      await h.backend.remove(never);
      expect(await h.inspect(never)).toMatchObject({ instances: 0, routes: 0 });
    });

    it("list finds every instance carrying the fleet's label or tag, and only those", async () => {
      const a = id();
      const b = id();
      const stranger = id();
      await h.backend.ensure(h.spec(a));
      await h.backend.ensure(h.spec(b));
      await h.backend.stop(b); // stopped instances are listed too
      await h.createLookalike(stranger);

      const listed = await h.backend.list();
      const ids = listed.map((o) => o.annotatorId);
      expect(ids).toContain(a);
      expect(ids).toContain(b);
      expect(ids).not.toContain(stranger);
      expect(new Set(ids).size).toBe(ids.length); // one entry per annotator
      for (const o of listed.filter((x) => x.annotatorId === a || x.annotatorId === b)) {
        expect(o.instanceId).toEqual(expect.any(String));
        expect(o.specHash).toBe(h.spec(o.annotatorId).specHash);
      }

      await h.backend.remove(a);
      await h.waitFor(`annotator ${a} gone from list`, async () => !(await h.backend.list()).some((o) => o.annotatorId === a));
      expect((await h.backend.list()).map((o) => o.annotatorId)).toContain(b);
    });
  });
}

/** A polling waitFor for harnesses: every `intervalMs` until truthy or `timeoutMs`. */
export function pollingWaitFor(defaults: { timeoutMs: number; intervalMs: number }): BackendContractHarness['waitFor'] {
  return async (what, fn, opts) => {
    const deadline = Date.now() + (opts?.timeoutMs ?? defaults.timeoutMs);
    let last: unknown;
    for (;;) {
      try {
        const v = await fn();
        if (v) return v;
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
      }
      await new Promise((r) => setTimeout(r, defaults.intervalMs));
    }
  };
}
