import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/db.ts';
import { runFleet } from '../helpers/process.ts';

describe('fleet CLI', () => {
  it('prints help for every command', async () => {
    for (const args of [['--help'], ['serve', '--help'], ['migrate', '--help'], ['reconcile', '--help'], ['admin', 'create', '--help'], ['admin', 'passwd', '--help']]) {
      const r = await runFleet(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/Usage: fleet/);
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

    const missing = await runFleet(['admin', 'create', '--email', 'x@y.z']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--password is required/);
  });

  it('migrates, creates an admin and changes its password against PostgreSQL', async () => {
    const db = await createTestDatabase({ migrate: false });
    try {
      const env = { DATABASE_URL: db.url, LOG_LEVEL: 'silent', FLEET_SECRET_KEY: 'k'.repeat(40) };
      const first = await runFleet(['migrate'], env);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toMatch(/applied: 0001_init/);
      expect((await runFleet(['migrate'], env)).stdout).toMatch(/up to date/);

      const created = await runFleet(['admin', 'create', '--email', 'ops@fleet.local', '--password', 'first-pass'], env);
      expect(created.code, created.stderr).toBe(0);
      const again = await runFleet(['admin', 'create', '--email', 'OPS@fleet.local', '--password', 'x'], env);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/already exists/);

      const row1 = await db.handle.db.selectFrom('adminUsers').select('passwordHash').where('email', '=', 'ops@fleet.local').executeTakeFirstOrThrow();
      expect(row1.passwordHash).not.toContain('first-pass');
      expect((await runFleet(['admin', 'passwd', '--email', 'ops@fleet.local', '--password', 'second-pass'], env)).code).toBe(0);
      const row2 = await db.handle.db.selectFrom('adminUsers').select('passwordHash').where('email', '=', 'ops@fleet.local').executeTakeFirstOrThrow();
      expect(row2.passwordHash).not.toBe(row1.passwordHash);
      expect((await runFleet(['admin', 'passwd', '--email', 'nobody@fleet.local', '--password', 'x'], env)).code).toBe(2);
    } finally {
      await db.drop();
    }
  });
});
