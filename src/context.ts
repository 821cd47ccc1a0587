/**
 * The typed context built once by the composition root (cli.ts) and handed to routes and the
 * reconciler. Tests build their own with overrides; nothing is monkey-patched.
 */
import type { Config } from './config.ts';
import type { DbHandle } from './db/index.ts';
import type { SecretBox } from './crypto.ts';
import type { Logger } from './logger.ts';
import type { Backend } from '../orchestrator/backends/types.ts';
import type { InstanceDatabases } from '../orchestrator/databases.ts';

export interface AppContext {
  config: Config;
  database: DbHandle;
  logger: Logger;
  secrets: SecretBox;
  /** Asks the reconciler for a pass soon (after the caller's transaction has committed). */
  wake(reason: string): void;
  /** Where annotators' Label Studio instances run (ORCHESTRATOR_BACKEND; orchestrator/backends). */
  backend: Backend;
  /** Per-annotator PostgreSQL roles and databases (orchestrator/databases.ts). */
  instanceDatabases: InstanceDatabases;
}
