/**
 * The instances' Docker health check (orchestrator/backends/docker.ts HEALTHCHECK) on the real
 * Docker Engine, in the fleet image (FLEET_IMAGE): Traefik routes a container only once Docker
 * reports it healthy, so a booted Label Studio must not wait for Docker's next probe.
 *
 * The container serves /health/ as Label Studio does (the stand-in of test/helpers/stub-image.ts),
 * but only some seconds after it started, and records when it began serving; PID 1 is a shell, so
 * the server can be stopped and started again without ending the container. Needs Docker: run
 * under `flock /tmp/lf-docker.lock`.
 */
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEALTHCHECK } from '../../orchestrator/backends/docker.ts';
import { testEnv } from '../helpers/env.ts';
import { freePortBase, sleep, waitUntil } from '../helpers/process.ts';
import { stubImage } from '../helpers/stub-image.ts';

const docker = new Docker({ socketPath: testEnv('DOCKER_SOCKET', '/var/run/docker.sock') });
const NAME = `lf-health-${process.pid}`;
/** The server starts this long after the container: later than Docker's first probe (Interval 2 s). */
const SERVER_DELAY_S = 10;
let container: Docker.Container;
let port = 0;

const health = async () => (await container.inspect()).State.Health!;
const exec = async (cmd: string): Promise<string> => {
  const e = await container.exec({ Cmd: ['bash', '-c', cmd], AttachStdout: true, AttachStderr: true });
  const stream = await e.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve) => {
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => resolve());
  });
  // Docker's multiplexed stream: 8-byte frame headers before each chunk.
  const raw = Buffer.concat(chunks);
  const out: Buffer[] = [];
  for (let i = 0; i + 8 <= raw.length; ) {
    const len = raw.readUInt32BE(i + 4);
    out.push(raw.subarray(i + 8, i + 8 + len));
    i += 8 + len;
  }
  return Buffer.concat(out).toString().trim();
};
/** PID 1's start time (field 22 of /proc/1/stat): the identity of the container's current boot. */
const bootId = () => exec('s=$(</proc/1/stat); s=${s##*) }; set -- $s; echo ${20}');
const serve = `cd /opt/stub && (python3 -m http.server "$LS_PORT" --bind 127.0.0.1 >/dev/null 2>&1 & echo $! >/tmp/server.pid; date -u +%Y-%m-%dT%H:%M:%S.%NZ >/tmp/serving-since)`;

beforeAll(async () => {
  const image = await stubImage('http');
  port = await freePortBase(28_500, 1).then((b) => b + 1);
  await docker.getContainer(NAME).remove({ force: true }).catch(() => {});
  container = await docker.createContainer({
    name: NAME,
    Image: image,
    Env: [`LS_PORT=${port}`],
    Entrypoint: ['bash', '-c', `sleep ${SERVER_DELAY_S}; ${serve}; exec sleep infinity`],
    Healthcheck: HEALTHCHECK,
    HostConfig: { NetworkMode: 'host' },
  });
  await container.start();
}, 120_000);

afterAll(async () => {
  await container?.remove({ force: true }).catch(() => {});
});

describe('instance health check', () => {
  it('a probe begun while Label Studio boots succeeds as soon as it answers, and records the boot', async () => {
    await waitUntil('Docker reports the container healthy', async () => (await health()).Status === 'healthy', 120_000, 250);
    const servingSince = Date.parse(await exec('cat /tmp/serving-since'));
    const first = (await health()).Log.find((l) => l.ExitCode === 0)!;
    // The successful probe was already running before the server answered: it waited for it
    // instead of failing and leaving the container unhealthy until Docker's next probe.
    expect(Date.parse(first.Start)).toBeLessThan(servingSince);
    expect(await exec('cat /tmp/.labelfleet-healthy')).toBe(await bootId());
  });

  it('once healthy, a probe fails when Label Studio stops answering, and Docker counts it', async () => {
    await exec('kill "$(cat /tmp/server.pid)"');
    await waitUntil('a failed probe', async () => (await health()).FailingStreak >= 2, 120_000, 250);
    expect((await health()).Log.at(-1)!.ExitCode).not.toBe(0);
    await exec(serve);
    await waitUntil('healthy again', async () => (await health()).FailingStreak === 0, 120_000, 250);
    expect((await health()).Status).toBe('healthy');
  });

  it('after Docker restarts the container, the new boot is waited for and recorded afresh', async () => {
    const before = await bootId();
    await container.restart({ t: 1 });
    await sleep(500);
    const after = await bootId();
    expect(after).not.toBe(before);
    await waitUntil('the new boot recorded', async () => (await exec('cat /tmp/.labelfleet-healthy 2>/dev/null || true')) === after, 120_000, 250);
    const servingSince = Date.parse(await exec('cat /tmp/serving-since'));
    const recorded = (await health()).Log.filter((l) => l.ExitCode === 0 && Date.parse(l.End) >= servingSince);
    expect(Date.parse(recorded[0]!.Start)).toBeLessThan(servingSince);
  });
});
