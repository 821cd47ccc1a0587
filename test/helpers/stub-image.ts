/**
 * Stand-in instance images for tests of the fleet's container handling (drift, ownership, chaos of
 * the start): the fleet image (FLEET_IMAGE, so its HEALTHCHECK helper is there) with a static HTTP
 * server instead of Label Studio — /health/ answers {"status": "UP"} on LS_PORT at 127.0.0.1 —
 * or, as `crash`, an entrypoint that exits with code 3 at once (a container that cannot start).
 * Built once per Docker host and tag; building is a few seconds (one layer on the fleet image).
 */
import { execFileSync } from 'node:child_process';
import Docker from 'dockerode';
import { testEnv } from './env.ts';

export async function stubImage(kind: 'http' | 'crash' = 'http'): Promise<string> {
  const fleetImage = testEnv('FLEET_IMAGE');
  const socket = testEnv('DOCKER_SOCKET', '/var/run/docker.sock');
  const docker = new Docker({ socketPath: socket });
  const tag = `labelfleet/fault-stub-${kind}:${fleetImage.replace(/[^a-zA-Z0-9_.-]/g, '-')}`.slice(0, 120);
  if ((await docker.listImages({ filters: JSON.stringify({ reference: [tag] }) })).length) return tag;
  const entrypoint =
    kind === 'http'
      ? 'ENTRYPOINT ["sh", "-c", "exec python3 -m http.server \\"${LS_PORT:-8080}\\" --bind 127.0.0.1"]'
      : 'ENTRYPOINT ["sh", "-c", "echo cannot start >&2; exit 3"]';
  const dockerfile = [
    `FROM ${fleetImage}`,
    'USER root',
    'RUN mkdir -p /opt/stub/health && echo \'{"status": "UP"}\' > /opt/stub/health/index.html',
    'USER 1001',
    'WORKDIR /opt/stub',
    entrypoint,
    '',
  ].join('\n');
  execFileSync('docker', ['build', '-q', '-t', tag, '-'], { input: dockerfile, env: { ...process.env, DOCKER_BUILDKIT: '0', DOCKER_HOST: `unix://${socket}` } });
  return tag;
}
