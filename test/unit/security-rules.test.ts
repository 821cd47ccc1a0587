import { describe, expect, it } from 'vitest';
import { allowedMethods } from '../../src/api/allowed-methods.ts';
import { isSameOriginOrNonBrowser } from '../../src/auth/cross-site.ts';
import { normalizeAddress } from '../../src/auth/client.ts';
import { sameOriginPath } from '../../src/auth/redirect.ts';
import { describeConnectError } from '../../src/db/connect-errors.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { publicUrl } from '../../orchestrator/instance-spec.ts';

describe('allowedMethods', () => {
  const of = allowedMethods([
    { method: 'ALL', path: '/api/*' },
    { method: 'GET', path: '/api/annotators/:id' },
    { method: 'PUT', path: '/api/annotators/:id' },
    { method: 'POST', path: '/api/annotators/bulk' },
    { method: 'DELETE', path: '/api/annotators/bulk' },
    { method: 'GET', path: '/api/annotators/:id/status' },
    { method: 'GET', path: '/api/workflows/graph' },
    { method: 'DELETE', path: '/api/workflows/:wid' },
  ]);
  it('ranks literal segments above parameters', () => {
    expect(of('/api/annotators/bulk')).toEqual(['DELETE', 'POST']);
    expect(of('/api/annotators/7')).toEqual(['GET', 'HEAD', 'PUT']);
    expect(of('/api/workflows/graph')).toEqual(['GET', 'HEAD']);
    expect(of('/api/workflows/3')).toEqual(['DELETE']);
    expect(of('/api/annotators/7/status')).toEqual(['GET', 'HEAD']);
    expect(of('/api/nope')).toBeNull();
  });
  it('finds templates whose resource segment is a parameter, beside literal ones, by segment count', () => {
    const pages = allowedMethods([
      { method: 'GET', path: '/workflows/:id' },
      { method: 'GET', path: '/workflows' },
      { method: 'POST', path: '/api/:kind' },
      { method: 'GET', path: '/api/roles' },
    ]);
    expect(pages('/workflows/3')).toEqual(['GET', 'HEAD']);
    expect(pages('/workflows/roles')).toEqual(['GET', 'HEAD']);
    expect(pages('/workflows')).toEqual(['GET', 'HEAD']);
    expect(pages('/api/roles')).toEqual(['GET', 'HEAD']);
    expect(pages('/api/settings')).toEqual(['POST']);
    expect(pages('/api/roles/1')).toBeNull();
    expect(pages('/workflows/3/')).toBeNull();
  });
});

describe('isSameOriginOrNonBrowser', () => {
  const check = (method: string, h: Record<string, string>) => isSameOriginOrNonBrowser(method, (n) => h[n]);
  it('follows Fetch Metadata, then Origin against Host, then lets non-browsers through', () => {
    expect(check('GET', { 'sec-fetch-site': 'cross-site' })).toBe(true);
    expect(check('POST', { 'sec-fetch-site': 'same-origin', origin: 'https://evil.example' })).toBe(true);
    expect(check('POST', { 'sec-fetch-site': 'none' })).toBe(true);
    expect(check('POST', { 'sec-fetch-site': 'same-site' })).toBe(false);
    expect(check('DELETE', { 'sec-fetch-site': 'cross-site', origin: 'https://fleet.example', host: 'fleet.example' })).toBe(false);
    expect(check('POST', { origin: 'https://fleet.example:8443', host: 'fleet.example:8443' })).toBe(true);
    expect(check('POST', { origin: 'https://fleet.example', host: 'fleet.example:8443' })).toBe(false);
    expect(check('PUT', { origin: 'null', host: 'fleet.example' })).toBe(false);
    expect(check('PATCH', { host: 'fleet.example' })).toBe(true);
  });
});

describe('sameOriginPath', () => {
  it.each([
    ['/a?b=1#c', '/a?b=1#c'],
    ['//evil.example', '/'],
    ['/\\evil.example', '/'],
    ['/\n/evil.example', '/'],
    ['https://fleet.example/x', '/x'],
    ['http://fleet.example/x', '/'],
    ['javascript:alert(1)', '/'],
    ['/.//evil.example/x', '/evil.example/x'],
    [undefined, '/'],
  ])('%j → %j', (callbackUrl, expected) => {
    expect(sameOriginPath(callbackUrl, 'https://fleet.example')).toBe(expected);
  });
});

describe('normalizeAddress', () => {
  it.each([
    ['203.0.113.9', '203.0.113.9'],
    ['::ffff:203.0.113.9', '203.0.113.9'],
    ['2001:DB8:0:1:aaaa:bbbb:cccc:dddd', '2001:db8:0:1::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['[2001:db8:5:6::1]', '2001:db8:5:6::/64'],
    ['::1', '0:0:0:0::/64'],
  ])('%s → %s', (address, expected) => expect(normalizeAddress(address)).toBe(expected));
});

describe('describeConnectError', () => {
  const url = 'postgres://fleet:s3cret@db.internal:5432/fleet';
  it('names the server without the password, and the fix', () => {
    expect(describeConnectError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), url)).toBe(
      'cannot connect to the database at postgres://fleet@db.internal:5432/fleet (ECONNREFUSED): start PostgreSQL there, or set DATABASE_URL to a server that runs',
    );
    expect(describeConnectError(new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]), url)).toMatch(/ECONNREFUSED/);
    expect(describeConnectError(Object.assign(new Error('x'), { code: '3D000' }), url)).toMatch(/^the database "fleet" does not exist .*createdb fleet/);
    expect(describeConnectError(Object.assign(new Error('password authentication failed'), { code: '28P01' }), url)).not.toContain('s3cret');
    expect(describeConnectError(new Error('relation "x" does not exist'), url)).toBeNull();
  });
});

describe('config', () => {
  it('defaults FLEET_CALLBACK_URL from PORT', () => {
    expect(loadConfig({ PORT: '4100' }).FLEET_CALLBACK_URL).toBe('http://127.0.0.1:4100');
    expect(loadConfig({ PORT: '4100', FLEET_CALLBACK_URL: 'http://fleet:3000' }).FLEET_CALLBACK_URL).toBe('http://fleet:3000');
  });

  it('reports every problem at once, each by name', () => {
    try {
      loadConfig({ PORT: 'x', TRAEFIK_PROVIDER: 'file', NODE_ENV: 'production', TRUST_PROXY_HOPS: '-1' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.map((p) => p.variable)).toEqual(['PORT', 'TRUST_PROXY_HOPS', 'ADMIN_PASSWORD', 'FLEET_SECRET_KEY', 'TRAEFIK_DYNAMIC_DIR']);
      expect((err as Error).message.split('\n')[0]).toBe('5 invalid settings:');
    }
  });

  it('says the range of a whole-number setting however it is missed', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return [];
      } catch (err) {
        return (err as ConfigError).problems.map((p) => `${p.variable}: ${p.message}`);
      }
    };
    for (const port of ['abc', '3.5', '0', '70000', '80x']) expect(problems({ PORT: port }), port).toEqual(['PORT: must be a whole number from 1 to 65535']);
    expect(problems({ LOGIN_LOCKOUT_SECONDS: 'five' })).toEqual(['LOGIN_LOCKOUT_SECONDS: must be a whole number from 1 to 86400']);
    expect(loadConfig({ PORT: ' 4100 ' }).PORT).toBe(4100);
  });

  it('takes only PostgreSQL URLs as connection strings, without repeating them', () => {
    const message = 'must be a PostgreSQL URL: postgres://user:password@host:5432/database';
    for (const bad of ['notaurl', 'mysql://u:s3cret@db/x', 'postgres://', 'localhost:5432/db', 'postgres://u:s3cret@db:99999/x']) {
      for (const variable of ['DATABASE_URL', 'LS_DATABASE_URL']) {
        try {
          loadConfig({ [variable]: bad });
          expect.unreachable(bad);
        } catch (err) {
          expect((err as ConfigError).problems, bad).toEqual([{ variable, message }]);
          expect((err as Error).message).not.toContain('s3cret');
        }
      }
    }
    for (const good of ['postgres://fleet:pw@postgres:5432/fleet', 'postgresql://u@[::1]/db', 'postgres:///fleet?host=/var/run/postgresql']) {
      expect(loadConfig({ DATABASE_URL: good, LS_DATABASE_URL: good }).DATABASE_URL).toBe(good);
    }
  });

  it('puts the public port in status URLs unless it is the scheme default', () => {
    const c = (env: Record<string, string>) => loadConfig({ FLEET_DOMAIN: 'labels.example', ...env });
    expect(publicUrl(c({}), 'ann')).toBe('http://ann.labels.example');
    expect(publicUrl(c({ FLEET_PUBLIC_PORT: '8080' }), 'ann')).toBe('http://ann.labels.example:8080');
    expect(publicUrl(c({ FLEET_PUBLIC_PORT: '80' }), 'ann')).toBe('http://ann.labels.example');
    expect(publicUrl(c({ FLEET_PUBLIC_SCHEME: 'https', FLEET_PUBLIC_PORT: '443' }), 'ann')).toBe('https://ann.labels.example');
    expect(publicUrl(c({ FLEET_PUBLIC_SCHEME: 'https', FLEET_PUBLIC_PORT: '8443' }), 'ann')).toBe('https://ann.labels.example:8443');
  });
});
