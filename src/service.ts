/**
 * The service's explicit lifecycle: create(config) → start() → stop(). `fleet serve`, the smoke
 * test and the benchmarks all go through here, so they run the same wiring.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Server } from 'node:http';
import { serve, type ServerType } from '@hono/node-server';
import { continueOnFirstRead } from './api/body-limits.ts';
import type { Config } from './config.ts';
import type { AppContext } from './context.ts';
import { randomToken, SecretBox } from './crypto.ts';
import { openDatabase } from './db/index.ts';
import { migrate } from './db/migrate.ts';
import { ensureFirstAdmin } from './auth/admins.ts';
import { createApp } from './api/app.ts';
import { createLogger, type Logger } from './logger.ts';
import { closeLiveStreams } from './live/index.ts';
import { webhookInbox } from './workflows/inbox.ts';
import { Reconciler } from '../orchestrator/reconciler.ts';
import { reconcileSteps } from '../orchestrator/steps.ts';
import { createBackend } from '../orchestrator/backends/index.ts';
import { InstanceDatabases } from '../orchestrator/databases.ts';
import { readInstallation } from '../orchestrator/ownership.ts';

/**
 * FLEET_SECRET_KEY, or in development a key generated once into DATA_DIR/secret.key so that
 * sessions and sealed secrets survive restarts. Production requires the variable (config.ts).
 */
export function resolveSecretKey(config: Config, log: Logger): string {
  if (config.FLEET_SECRET_KEY) return config.FLEET_SECRET_KEY;
  const file = path.join(config.DATA_DIR, 'secret.key');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(config.DATA_DIR, { recursive: true });
  const key = randomToken(32);
  writeFileSync(file, key, { mode: 0o600 });
  chmodSync(file, 0o600);
  log.warn({ file }, 'FLEET_SECRET_KEY is not set: generated a development key');
  return key;
}

export interface Service {
  ctx: AppContext;
  reconciler: Reconciler;
  app: ReturnType<typeof createApp>;
  /** Listens for HTTP and starts the reconciler loop. Resolves with the bound port. */
  start(opts?: { reconcile?: boolean }): Promise<number>;
  /** Stops taking requests, lets in-flight ones and the current pass finish, closes the pool. */
  stop(): Promise<void>;
}

export async function createService(config: Config, overrides: Partial<AppContext> = {}): Promise<Service> {
  const logger = overrides.logger ?? createLogger(config.LOG_LEVEL);
  const database =
    overrides.database ??
    (await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: config.DATABASE_POOL_SIZE }));
  const applied = await migrate(database);
  if (applied.length) logger.info({ applied }, 'migrations applied');
  await ensureFirstAdmin(database.db, config.ADMIN_EMAIL, config.ADMIN_PASSWORD, logger);
  const owner = await readInstallation(database.db);

  let reconciler: Reconciler | undefined;
  const ctx: AppContext = {
    config,
    database,
    logger,
    secrets: overrides.secrets ?? new SecretBox(resolveSecretKey(config, logger)),
    wake: (reason) => reconciler?.wake(reason),
    backend: overrides.backend ?? createBackend(config, logger),
    instanceDatabases: overrides.instanceDatabases ?? new InstanceDatabases(config),
    ...overrides,
  };
  // Every resource made for an annotator is marked with this installation; others' are left alone.
  ctx.backend.setOwner?.(owner);
  ctx.instanceDatabases.setOwner?.(owner);
  reconciler = new Reconciler(ctx, reconcileSteps(ctx), config.RECONCILE_INTERVAL_MS);
  const app = createApp(ctx);
  let server: ServerType | undefined;

  return {
    ctx,
    reconciler,
    app,
    async start({ reconcile = true } = {}) {
      const port = await new Promise<number>((resolve, reject) => {
        // Unread request bodies are cleaned up by api/body-limits.ts lingerOnUnreadBody.
        server = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST, autoCleanupIncoming: false }, (info) => resolve(info.port));
        server.once('error', reject);
        continueOnFirstRead(server as Server);
      });
      if (reconcile) reconciler!.start();
      logger.info({ port, host: config.HOST, database: database.kind }, 'LabelFleet listening');
      return port;
    },
    async stop() {
      // Open event streams would keep their connections, and so the server, open forever.
      closeLiveStreams(ctx);
      const closed = server
        ? new Promise<void>((resolve) => server!.close(() => resolve()))
        : Promise.resolve();
      await reconciler!.stop();
      webhookInbox(ctx).close();
      await closed;
      await ctx.instanceDatabases.close();
      await database.close();
      logger.info('LabelFleet stopped');
    },
  };
}
