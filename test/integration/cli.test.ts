import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/db.ts';
import { FLEET_BIN, freePort, runFleet, startFleet, waitUntil } from '../helpers/process.ts';

// Each case starts several `fleet` processes: bounded generously for a busy machine.
describe('fleet CLI', { timeout: 180_000 }, () => {
  it('prints help for every command, and its version', async () => {
    for (const args of [['--help'], ['-h'], ['serve', '--help'], ['migrate', '--help'], ['reconcile', '--help'], ['admin', 'create', '--help'], ['admin', 'passwd', '--help']]) {
      const r = await runFleet(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/Usage: fleet/);
    }
    const { version } = (await import('../../package.json', { with: { type: 'json' } })).default;
    for (const flag of ['--version', '-v']) {
      const r = await runFleet([flag]);
      expect([r.code, r.stdout]).toEqual([0, `fleet ${version}\n`]);
    }
  });

  it('exits 2 with one line for a wrong flag, an unknown command or a bad setting', async () => {
    const wrongFlag = await runFleet(['serve', '--bogus']);
    expect(wrongFlag.code).toBe(2);
    expect(wrongFlag.stderr.trim().split('\n')).toHaveLength(1);
    expect(wrongFlag.stderr).toMatch(/bogus/);

    const unknown = await runFleet(['launch']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "launch"/);

    const badSetting = await runFleet(['migrate'], { PORT: 'eighty' });
    expect(badSetting.code).toBe(2);
    expect(badSetting.stderr.trim()).toMatch(/^fleet: invalid setting PORT/);

    const prod = await runFleet(['migrate'], { NODE_ENV: 'production', ADMIN_PASSWORD: 'admin', FLEET_SECRET_KEY: 'k'.repeat(40) });
    expect(prod.code).toBe(2);
    expect(prod.stderr).toMatch(/ADMIN_PASSWORD/);

    const missing = await runFleet(['admin', 'create'], {}, undefined, 'a-password\n');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--email is required/);
  });

  it('reports every bad setting at once, ECS ones included, before touching the database', async () => {
    // DATABASE_URL points nowhere: had the database been touched first, the error would say so.
    const r = await runFleet(['serve'], {
      DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
      PORT: '70000',
      LOGIN_MAX_FAILURES: 'many',
      ORCHESTRATOR_BACKEND: 'ecs',
      ECS_CLUSTER: 'c',
      ECS_SUBNETS: 'subnet-1',
      ECS_LAUNCH_TYPE: 'EC2',
      ECS_ASSIGN_PUBLIC_IP: 'true',
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'fleet: 7 invalid settings:',
      expect.stringMatching(/^ {2}PORT: .*65535/),
      expect.stringMatching(/^ {2}LOGIN_MAX_FAILURES: /),
      '  ECS_SECURITY_GROUPS: is required when ORCHESTRATOR_BACKEND=ecs',
      '  ECS_EXECUTION_ROLE_ARN: is required when ORCHESTRATOR_BACKEND=ecs',
      '  ALB_LISTENER_ARN: is required when ORCHESTRATOR_BACKEND=ecs',
      '  ECS_VPC_ID: is required when ORCHESTRATOR_BACKEND=ecs',
      '  ECS_ASSIGN_PUBLIC_IP: true is only valid with ECS_LAUNCH_TYPE=FARGATE',
    ]);
  });

  it('never takes a password on the command line, and needs a terminal or --password-stdin', async () => {
    const argv = await runFleet(['admin', 'create', '--email', 'x@fleet.local', '--password', 'visible-in-ps']);
    expect(argv.code).toBe(2);
    expect(argv.stderr).toMatch(/^fleet: --password is not accepted: .*ps.*--password-stdin/);
    expect(argv.stderr).not.toContain('visible-in-ps');
    const noTerminal = await runFleet(['admin', 'create', '--email', 'x@fleet.local']);
    expect(noTerminal.code).toBe(2);
    expect(noTerminal.stderr).toMatch(/no terminal to ask for the password: pipe it with --password-stdin/);
    const empty = await runFleet(['admin', 'create', '--email', 'x@fleet.local', '--password-stdin'], {}, undefined, '\n');
    expect([empty.code, empty.stderr]).toEqual([2, 'fleet: the password is empty\n']);
  });

  it('migrates, creates an admin and changes its password against PostgreSQL (password from stdin)', async () => {
    const db = await createTestDatabase({ migrate: false });
    try {
      const env = { DATABASE_URL: db.url, LOG_LEVEL: 'silent', FLEET_SECRET_KEY: 'k'.repeat(40) };
      const first = await runFleet(['migrate'], env);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toMatch(/applied: 0001_init/);
      expect((await runFleet(['migrate'], env)).stdout).toMatch(/up to date/);

      const created = await runFleet(['admin', 'create', '--email', 'ops@fleet.local', '--password-stdin'], env, undefined, 'first pass\nignored line\n');
      expect(created.code, created.stderr).toBe(0);
      const again = await runFleet(['admin', 'create', '--email', 'OPS@fleet.local', '--password-stdin'], env, undefined, 'x\n');
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/already exists/);

      const { verifyPassword } = await import('../../src/crypto.ts');
      const hashOf = async () =>
        (await db.handle.db.selectFrom('adminUsers').select('passwordHash').where('email', '=', 'ops@fleet.local').executeTakeFirstOrThrow()).passwordHash;
      const row1 = await hashOf();
      expect(await verifyPassword('first pass', row1)).toBe(true);
      expect((await runFleet(['admin', 'passwd', '--email', 'ops@fleet.local', '--password-stdin'], env, undefined, 'second-pass')).code).toBe(0);
      expect(await verifyPassword('second-pass', await hashOf())).toBe(true);
      expect((await runFleet(['admin', 'passwd', '--email', 'nobody@fleet.local', '--password-stdin'], env, undefined, 'x\n')).code).toBe(2);

      // --email follows ADMIN_EMAIL's rule, trimmed as sign-in trims: a padded address is the
      // account sign-in finds; what no one could sign in with is refused in one line.
      const padded = await runFleet(['admin', 'create', '--email', '  Lead@Fleet.local\t', '--password-stdin'], env, undefined, 'lead pass\n');
      expect([padded.code, padded.stdout, padded.stderr]).toEqual([0, 'created admin Lead@Fleet.local\n', '']);
      const { findAdminByEmail } = await import('../../src/auth/admins.ts');
      expect((await findAdminByEmail(db.handle.db, 'lead@fleet.local'))?.email).toBe('Lead@Fleet.local');
      expect((await runFleet(['admin', 'passwd', '--email', ' lead@fleet.local ', '--password-stdin'], env, undefined, 'lead pass 2\n')).code).toBe(0);
      for (const [bad, message] of [
        ['not-an-email', 'must be an email address'],
        ['ops@', 'must be an email address'],
        [`${'a'.repeat(250)}@fleet.local`, 'must be at most 255 characters'],
      ] as const) {
        const r = await runFleet(['admin', 'create', '--email', bad, '--password-stdin'], env, undefined, 'x\n');
        expect([r.code, r.stderr], bad).toEqual([2, `fleet: --email ${message} (see \`fleet admin create --help\`)\n`]);
      }
      const admins = await db.handle.db.selectFrom('adminUsers').select('email').orderBy('email').execute();
      expect(admins.map((a) => a.email)).toEqual(['Lead@Fleet.local', 'ops@fleet.local']);

      // At a terminal: asked twice, never echoed.
      const tty = spawn('script', ['-qec', `${process.execPath} ${FLEET_BIN} admin passwd --email ops@fleet.local`, '/dev/null'], {
        env: { ...process.env, ...env },
      });
      let screen = '';
      tty.stdout.on('data', (d) => (screen += d));
      const exited = new Promise<number | null>((r) => tty.on('close', r));
      await waitUntil('the first prompt', async () => screen.includes('Password: '), 60_000, 100);
      tty.stdin.write('typed at the terminal\r');
      await waitUntil('the second prompt', async () => screen.includes('Repeat password: '), 60_000, 100);
      tty.stdin.write('typed at the terminal\r');
      expect(await exited, screen).toBe(0);
      expect(screen).toContain('password changed for ops@fleet.local');
      expect(screen).not.toContain('typed at the terminal');
      expect(await verifyPassword('typed at the terminal', await hashOf())).toBe(true);
    } finally {
      await db.drop();
    }
  });

  it('says in one line what to do about a busy port or a missing database', async () => {
    const db = await createTestDatabase();
    const port = await freePort();
    const blocker = createServer().listen(port, '127.0.0.1');
    try {
      const busy = await runFleet(['serve', '--no-reconcile'], { DATABASE_URL: db.url, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'silent', FLEET_SECRET_KEY: 'k'.repeat(40) });
      expect(busy.code).toBe(1);
      expect(busy.stderr).toBe(`fleet: port ${port} on 127.0.0.1 is already in use: stop the process using it, or choose another with --port N or PORT\n`);
    } finally {
      blocker.close();
      await db.drop();
    }
    const base = new URL(db.url);
    base.pathname = '/lf_no_such_database';
    base.password = 'hunter2';
    const noDatabase = await runFleet(['migrate'], { DATABASE_URL: base.toString(), LOG_LEVEL: 'silent' });
    expect(noDatabase.code).toBe(1);
    expect(noDatabase.stderr).toMatch(/^fleet: the database "lf_no_such_database" does not exist at postgres:\/\/[^:@]+@[^/]+\/lf_no_such_database: create it \(createdb lf_no_such_database\) or fix DATABASE_URL\n$/);
    expect(noDatabase.stderr).not.toContain('hunter2');
    const noServer = await runFleet(['migrate'], { DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/x`, LOG_LEVEL: 'silent' });
    expect(noServer.code).toBe(1);
    expect(noServer.stderr).toMatch(/^fleet: cannot connect to the database at postgres:\/\/postgres@127\.0\.0\.1:\d+\/x \(ECONNREFUSED\): start PostgreSQL there, or set DATABASE_URL to a server that runs\n$/);
  });

  it('lets one process at a time open the embedded database, and takes over the lock of a dead one', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'lf-pglite-lock-'));
    const env = { DATA_DIR: dataDir, DATABASE_URL: '', HOST: '127.0.0.1', LOG_LEVEL: 'silent', FLEET_SECRET_KEY: 'k'.repeat(40) };
    const serve = async () => {
      const port = await freePort();
      const server = startFleet(['serve', '--no-reconcile', '--port', String(port)], env);
      const base = `http://127.0.0.1:${port}`;
      await waitUntil('the service on the embedded database', async () => (await fetch(`${base}/api/health`)).ok, 120_000, 250);
      return { ...server, base };
    };
    const inUse = `the embedded database in ${path.join(dataDir, 'pglite')} is in use by another process`;
    try {
      const first = await serve();
      // While `npm start` runs: refused with the holder named, instead of "created" and a lost write.
      const create = await runFleet(['admin', 'create', '--email', 'ops@fleet.local', '--password-stdin'], env, undefined, 'ops password\n');
      expect([create.code, create.stdout]).toEqual([2, '']);
      expect(create.stderr).toBe(
        `fleet: ${inUse} (pid ${first.child.pid}: \`npm start\` or another fleet command): stop it first, or point DATABASE_URL at a PostgreSQL both can share (if no such process runs, delete ${path.join(dataDir, 'pglite')}.lock)\n`,
      );
      for (const [args, input] of [
        [['migrate']],
        [['serve', '--port', String(await freePort())]],
        [['reconcile']],
        [['admin', 'passwd', '--email', 'admin@fleet.local', '--password-stdin'], 'new password\n'],
      ] as [string[], string?][]) {
        const r = await runFleet(args, env, undefined, input);
        expect([r.code, r.stdout, r.stderr.startsWith(`fleet: ${inUse} (pid ${first.child.pid}:`), r.stderr.split('\n').length], args.join(' ')).toEqual([2, '', true, 2]);
      }

      // A holder killed outright leaves its lock file behind; the next command takes it over.
      first.child.kill('SIGKILL');
      await first.exited;
      expect(existsSync(path.join(dataDir, 'pglite.lock'))).toBe(true);
      const created = await runFleet(['admin', 'create', '--email', 'ops@fleet.local', '--password-stdin'], env, undefined, 'ops password\n');
      expect([created.code, created.stdout, created.stderr]).toEqual([0, 'created admin ops@fleet.local\n', '']);
      expect(existsSync(path.join(dataDir, 'pglite.lock'))).toBe(false);

      // The admin made in between is there for the service to sign in.
      const second = await serve();
      try {
        const { csrfToken } = (await (await fetch(`${second.base}/api/auth/csrf`)).json()) as { csrfToken: string };
        const signIn = await fetch(`${second.base}/api/auth/callback/credentials`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ email: 'ops@fleet.local', password: 'ops password', csrfToken }),
        });
        expect(signIn.status).toBe(200);
      } finally {
        second.child.kill('SIGTERM');
        expect(await second.exited).toBe(0);
      }
      expect(existsSync(path.join(dataDir, 'pglite.lock'))).toBe(false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
