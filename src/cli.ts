/**
 * `fleet`: the composition root. serve | migrate | reconcile | admin create|passwd.
 * Usage errors and bad settings print one line and exit 2; runtime failures exit 1.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { openDatabase } from './db/index.ts';
import { migrate } from './db/migrate.ts';
import { upsertAdmin, findAdminByEmail } from './auth/admins.ts';
import { createLogger } from './logger.ts';
import { createService } from './service.ts';

class UsageError extends Error {}

const HELP: Record<string, string> = {
  fleet: `Usage: fleet <command> [options]

Commands:
  serve               Run the admin API and the reconciler loop (graceful on SIGTERM/SIGINT)
  migrate             Apply pending database migrations and exit
  reconcile           Run one reconciler pass, print what it did, and exit
  admin create        Create an admin account
  admin passwd        Change an admin's password

Run \`fleet <command> --help\` for a command's options. Settings come from the environment (see README).`,
  serve: `Usage: fleet serve [--port N] [--no-reconcile]

  --port N          Listen on port N (default: PORT or 3000)
  --no-reconcile    Serve the API without running the reconciler loop`,
  migrate: `Usage: fleet migrate

Applies every pending migration in migrations/ under an advisory lock, then exits.`,
  reconcile: `Usage: fleet reconcile [--json]

Runs one reconciler pass (waiting for a pass already running elsewhere) and prints what it did.
  --json            Print the pass report as JSON`,
  'admin create': `Usage: fleet admin create --email EMAIL --password PASSWORD

Creates an admin account (fails if the email exists).`,
  'admin passwd': `Usage: fleet admin passwd --email EMAIL --password PASSWORD

Sets a new password for an existing admin and revokes their sessions.`,
};

const OPTIONS: Record<string, ParseArgsConfig['options']> = {
  serve: { port: { type: 'string' }, 'no-reconcile': { type: 'boolean' } },
  migrate: {},
  reconcile: { json: { type: 'boolean' } },
  'admin create': { email: { type: 'string' }, password: { type: 'string' } },
  'admin passwd': { email: { type: 'string' }, password: { type: 'string' } },
};

function parse(command: string, args: string[]) {
  try {
    return parseArgs({ args, options: { ...OPTIONS[command], help: { type: 'boolean', short: 'h' } }, strict: true })
      .values as Record<string, string | boolean | undefined>;
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]} (see \`fleet ${command} --help\`)`);
  }
}

function required(values: Record<string, unknown>, name: string, command: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required (see \`fleet ${command} --help\`)`);
  return v;
}

async function withDatabase<T>(config: Config, fn: (h: Awaited<ReturnType<typeof openDatabase>>) => Promise<T>) {
  const handle = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: 4 });
  try {
    await migrate(handle);
    return await fn(handle);
  } finally {
    await handle.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (!first || first === '--help' || first === '-h' || first === 'help') {
    console.log(HELP.fleet);
    return first ? 0 : 2;
  }
  let command = first;
  let args = rest;
  if (first === 'admin') {
    const sub = rest[0];
    if (!sub || sub === '--help' || sub === '-h') {
      console.log(`${HELP['admin create']}\n\n${HELP['admin passwd']}`);
      return sub ? 0 : 2;
    }
    command = `admin ${sub}`;
    args = rest.slice(1);
  }
  if (!(command in OPTIONS)) throw new UsageError(`unknown command "${command}" (see \`fleet --help\`)`);
  const values = parse(command, args);
  if (values.help) {
    console.log(HELP[command]);
    return 0;
  }

  const env = { ...process.env };
  if (command === 'serve' && typeof values.port === 'string') env.PORT = values.port;
  const config = loadConfig(env);

  switch (command) {
    case 'serve': {
      const service = await createService(config);
      await service.start({ reconcile: !values['no-reconcile'] });
      await new Promise<void>((resolve) => {
        const shutdown = (signal: string) => {
          service.ctx.logger.info({ signal }, 'shutting down');
          resolve();
        };
        process.once('SIGTERM', shutdown);
        process.once('SIGINT', shutdown);
      });
      await service.stop();
      return 0;
    }
    case 'migrate': {
      const handle = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: 4 });
      try {
        const applied = await migrate(handle);
        console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
      } finally {
        await handle.close();
      }
      return 0;
    }
    case 'reconcile': {
      const service = await createService({ ...config, LOG_LEVEL: values.json ? 'silent' : config.LOG_LEVEL });
      try {
        const report = await service.reconciler.runOnce({ wait: true });
        if (report === 'busy') throw new Error('another reconcile pass holds the lock');
        if (values.json) console.log(JSON.stringify(report, null, 2));
        else {
          for (const [name, step] of Object.entries(report.steps)) {
            for (const a of step.actions) console.log(`${name}: ${a}`);
            for (const e of step.errors) console.log(`${name}: ERROR ${e}`);
          }
          const acted = Object.values(report.steps).reduce((n, s) => n + s.actions.length, 0);
          const failed = Object.values(report.steps).reduce((n, s) => n + s.errors.length, 0);
          console.log(`reconcile pass: ${acted} action(s), ${failed} error(s) in ${report.durationMs} ms`);
        }
        return Object.values(report.steps).some((s) => s.errors.length) ? 1 : 0;
      } finally {
        await service.stop();
      }
    }
    case 'admin create':
    case 'admin passwd': {
      const email = required(values, 'email', command);
      const password = required(values, 'password', command);
      if (config.NODE_ENV === 'production' && password.length < 8) {
        throw new UsageError('--password must be at least 8 characters in production');
      }
      return withDatabase(config, async ({ db }) => {
        const existing = await findAdminByEmail(db, email);
        if (command === 'admin create' && existing) throw new UsageError(`admin ${email} already exists`);
        if (command === 'admin passwd' && !existing) throw new UsageError(`no admin with email ${email}`);
        await upsertAdmin(db, email, password);
        if (existing) await db.updateTable('sessions').set({ revokedAt: new Date() }).where('adminUserId', '=', existing.id).where('revokedAt', 'is', null).execute();
        console.log(command === 'admin create' ? `created admin ${email}` : `password changed for ${email}`);
        return 0;
      });
    }
  }
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof UsageError || err instanceof ConfigError) {
      console.error(`fleet: ${err.message}`);
      process.exit(2);
    }
    createLogger('error').error({ err }, 'fleet failed');
    console.error(`fleet: ${(err as Error).message}`);
    process.exit(1);
  },
);
