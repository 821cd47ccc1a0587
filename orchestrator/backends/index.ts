/**
 * createBackend(config): the Backend for ORCHESTRATOR_BACKEND, built once by the composition root.
 * Nothing here connects anywhere: the clients connect on first use, so `fleet migrate` and the
 * tests that never touch containers build it for free.
 */
import { ConfigError, type Config } from '../../src/config.ts';
import type { Logger } from '../../src/logger.ts';
import { fleetNames } from '../instance-spec.ts';
import { dockerLabelRoutes } from '../routing/docker-labels.ts';
import { fileRoutes } from '../routing/file-provider.ts';
import type { RouteProvider } from '../routing/types.ts';
import { DockerBackend } from './docker.ts';
import { createEcsBackend } from './ecs.ts';
import type { Backend } from './types.ts';

/** The Traefik route provider of the Docker backend (TRAEFIK_PROVIDER). */
export function createRouteProvider(config: Config): RouteProvider {
  if (config.TRAEFIK_PROVIDER === 'file') {
    if (!config.TRAEFIK_DYNAMIC_DIR) throw new ConfigError([{ variable: 'TRAEFIK_DYNAMIC_DIR', message: 'is required when TRAEFIK_PROVIDER=file' }]);
    const names = fleetNames(config);
    return fileRoutes({ dir: config.TRAEFIK_DYNAMIC_DIR, entrypoint: config.TRAEFIK_ENTRYPOINT, parseName: names.parseInstance });
  }
  return dockerLabelRoutes({
    entrypoint: config.TRAEFIK_ENTRYPOINT,
    network: config.DOCKER_NETWORK_MODE === 'bridge' ? config.DOCKER_NETWORK : undefined,
  });
}

export function createBackend(config: Config, logger?: Logger): Backend {
  if (config.ORCHESTRATOR_BACKEND === 'ecs') return createEcsBackend(config, logger);
  return new DockerBackend(config, createRouteProvider(config));
}
