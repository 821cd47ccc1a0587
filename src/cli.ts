/**
 * `fleet`: the composition root. serve | migrate | reconcile | admin create|passwd.
 *
 * Only argument parsing is loaded up front: `--help` and `--version` answer without importing
 * the service (measured by `npm run bench -- cli`). Each command imports what it needs when it
 * runs. Usage errors, bad settings and a migration edited after it was applied print one line
 * (every bad setting, each on its line) and exit 2; a runtime failure prints one line and exits 1
 * (a busy port, an unreachable database), or logs the error when it is not one we can explain.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import helpTexts from './cli-help.json' with { type: 'json' };

class UsageError extends Error {}
/** A failure the operator can fix from its one-line message (exit 1). */
class FleetError extends Error {}

/** Usage texts, shared with bin/fleet.mjs (which prints the top-level ones without loading TypeScript). */
const HELP: Record<string, string> = helpTexts;

// `password` is declared only to refuse it with a reason (it would show in ps and shell history).
const ADMIN_OPTIONS: ParseArgsConfig['options'] = { email: { type: 'string' }, 'password-stdin': { type: 'boolean' }, password: { type: 'string' } };
const OPTIONS: Record<string, ParseArgsConfig['options']> = {
  serve: { port: { type: 'string' }, 'no-reconcile': { type: 'boolean' } },
  migrate: {},
  reconcile: { json: { type: 'boolean' } },
  'admin create': ADMIN_OPTIONS,
  'admin passwd': ADMIN_OPTIONS,
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

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--version' || first === '-v' || first === 'version') {
    const { VERSION } = await import('./version.ts');
    console.log(`fleet ${VERSION}`);
    return 0;
  }
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
  if (values.password !== undefined) {
    throw new UsageError('--password is not accepted: a password on the command line shows in `ps` and shell history; answer the prompt, or pipe it with --password-stdin');
  }
  // Every setting is checked, and every problem reported, before the database is touched.
  const { loadConfig } = await import('./config.ts');
  const env = { ...process.env };
  if (command === 'serve' && typeof values.port === 'string') env.PORT = values.port;
  const config = loadConfig(env);
  const email = command.startsWith('admin ') ? await emailOption(required(values, 'email', command), command) : undefined;
  const password = email ? await readPassword(command, values['password-stdin'] === true) : undefined;
  const explain = await databaseErrors(config.DATABASE_URL);

  switch (command) {
    case 'serve': {
      const { createService } = await import('./service.ts');
      const service = await explain(() => createService(config));
      try {
        await service.start({ reconcile: !values['no-reconcile'] });
      } catch (err) {
        await service.stop().catch(() => {});
        if ((err as { code?: string }).code === 'EADDRINUSE') {
          throw new FleetError(`port ${config.PORT} on ${config.HOST} is already in use: stop the process using it, or choose another with --port N or PORT`);
        }
        throw err;
      }
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
      const { openDatabase } = await import('./db/index.ts');
      const { migrate } = await import('./db/migrate.ts');
      const handle = await explain(() => openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: 4 }));
      try {
        const applied = await explain(() => migrate(handle));
        console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
      } finally {
        await handle.close();
      }
      return 0;
    }
    case 'reconcile': {
      const { createService } = await import('./service.ts');
      const service = await explain(() => createService({ ...config, LOG_LEVEL: values.json ? 'silent' : config.LOG_LEVEL }));
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
      if (config.NODE_ENV === 'production' && password!.length < 8) {
        throw new UsageError('the password must be at least 8 characters in production');
      }
      const { openDatabase } = await import('./db/index.ts');
      const { migrate } = await import('./db/migrate.ts');
      const { upsertAdmin, findAdminByEmail } = await import('./auth/admins.ts');
      const handle = await explain(() => openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: 4 }));
      try {
        await explain(() => migrate(handle));
        const { db } = handle;
        const existing = await findAdminByEmail(db, email!);
        if (command === 'admin create' && existing) throw new UsageError(`admin ${email} already exists`);
        if (command === 'admin passwd' && !existing) throw new UsageError(`no admin with email ${email}`);
        await upsertAdmin(db, email!, password!);
        if (existing) await db.updateTable('sessions').set({ revokedAt: new Date() }).where('adminUserId', '=', existing.id).where('revokedAt', 'is', null).execute();
        console.log(command === 'admin create' ? `created admin ${email}` : `password changed for ${email}`);
        return 0;
      } finally {
        await handle.close();
      }
    }
  }
  return 2;
}

/** `--email` by the rule ADMIN_EMAIL follows (config.ts adminEmail), trimmed as sign-in trims it. */
async function emailOption(raw: string, command: string): Promise<string> {
  const { adminEmail } = await import('./config.ts');
  const parsed = adminEmail.safeParse(raw);
  if (!parsed.success) throw new UsageError(`--email ${parsed.error.issues[0]!.message} (see \`fleet ${command} --help\`)`);
  return parsed.data;
}

/** Runs `fn`; a failure to reach the database becomes a one-line FleetError (db/connect-errors.ts). */
async function databaseErrors(url: string | undefined) {
  const { describeConnectError } = await import('./db/connect-errors.ts');
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      const line = describeConnectError(err, url);
      throw line ? new FleetError(line) : err;
    }
  };
}

/**
 * The password for `admin create|passwd`: the first line of standard input with --password-stdin,
 * else asked twice at the terminal without echo. Never from argv.
 */
async function readPassword(command: string, fromStdin: boolean): Promise<string> {
  let password: string;
  if (fromStdin) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    password = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  } else {
    if (!process.stdin.isTTY) {
      throw new UsageError(`no terminal to ask for the password: pipe it with --password-stdin (see \`fleet ${command} --help\`)`);
    }
    password = await promptHidden('Password: ');
    if ((await promptHidden('Repeat password: ')) !== password) throw new UsageError('the two passwords differ');
  }
  if (password === '') throw new UsageError('the password is empty');
  return password;
}

/** Reads one line from the terminal with echo off (raw mode), writing the question to stderr. */
function promptHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    let line = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (data: Buffer) => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') return done(new UsageError('interrupted'));
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
    };
    stdin.on('data', onData);
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  async (err) => {
    const { ConfigError } = await import('./config.ts');
    const { MigrationEditedError } = await import('./db/migrate.ts');
    // Refused at start: settings, or a migration edited after it was applied (db/migrate.ts).
    if (err instanceof UsageError || err instanceof ConfigError || err instanceof MigrationEditedError) {
      console.error(`fleet: ${err.message}`);
      process.exit(2);
    }
    if (err instanceof FleetError) {
      console.error(`fleet: ${err.message}`);
      process.exit(1);
    }
    const { createLogger } = await import('./logger.ts');
    createLogger('error').error({ err }, 'fleet failed');
    console.error(`fleet: ${(err as Error).message}`);
    process.exit(1);
  },
);
