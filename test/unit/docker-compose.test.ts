/**
 * docker-compose.yml is read by `docker compose`, which CI machines may not have: this checks the
 * parts that matter — it parses, the three services exist, the fleet is built from this repo's
 * Dockerfile with the Docker socket mounted, and its environment is a valid LabelFleet config.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const compose = parse(readFileSync(`${root}docker-compose.yml`, 'utf8'));

/** Resolves ${VAR:-default} and ${VAR:?msg} the way compose does, with `vars` as the shell. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g, (_, name: string, op?: string, arg?: string) => {
    if (vars[name]) return vars[name]!;
    if (op === '?') throw new Error(`${name} is required: ${arg}`);
    return op === '-' ? (arg ?? '') : '';
  });
}

describe('docker-compose.yml', () => {
  it('declares postgres, traefik, the Label Studio image and the fleet service built from the repo', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['fleet', 'ls-image', 'postgres', 'traefik']);
    const fleet = compose.services.fleet;
    expect(fleet.build.context).toBe('.');
    expect(compose.services['ls-image'].build.context).toBe('./orchestrator/image');
    expect(fleet.depends_on['ls-image'].condition).toBe('service_completed_successfully');
    expect(existsSync(`${root}Dockerfile`)).toBe(true);
    expect(fleet.volumes).toContain('/var/run/docker.sock:/var/run/docker.sock');
    expect(fleet.depends_on.postgres.condition).toBe('service_healthy');
    for (const mount of compose.services.traefik.volumes as string[]) {
      const source = mount.split(':')[0]!;
      if (source.startsWith('./')) expect(existsSync(`${root}${source.slice(2)}`), source).toBe(true);
    }
  });

  it("gives the fleet a valid production configuration once the required secrets are set", () => {
    const vars = { FLEET_SECRET_KEY: 'x'.repeat(48), ADMIN_PASSWORD: 'a-real-password' };
    const env = Object.fromEntries(
      Object.entries(compose.services.fleet.environment as Record<string, string>).map(([k, v]) => [k, interpolate(String(v), vars)]),
    );
    const config = loadConfig(env);
    expect(config.NODE_ENV).toBe('production');
    expect(config.DATABASE_URL).toMatch(/@postgres:5432\//);
    expect(() =>
      Object.entries(compose.services.fleet.environment as Record<string, string>).map(([, v]) => interpolate(String(v), {})),
    ).toThrow(/FLEET_SECRET_KEY|ADMIN_PASSWORD/);
  });
});
