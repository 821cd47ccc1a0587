import { describe, expect, it } from 'vitest';
import { issueCsrfToken, verifyCsrfToken } from '../../src/auth/csrf.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { hashPassword, matchesHash, secretPrefix, SecretBox, sha256, verifyPassword } from '../../src/crypto.ts';

const box = new SecretBox('unit-test-key-unit-test-key-unit-test-key');

describe('passwords', () => {
  it('hash with a salt and verify only the right password', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    expect(a).not.toBe(b);
    expect(a).not.toContain('correct horse');
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('wrong horse', a)).toBe(false);
    expect(await verifyPassword('x', 'garbage')).toBe(false);
  });
});

describe('sealed secrets', () => {
  it('round-trip, differ per call, and fail under another key or when tampered', () => {
    const sealed = box.encrypt('ls-token-123');
    expect(sealed).not.toContain('ls-token-123');
    expect(box.encrypt('ls-token-123')).not.toBe(sealed);
    expect(box.decrypt(sealed)).toBe('ls-token-123');
    expect(() => new SecretBox('another-key-another-key-another-key').decrypt(sealed)).toThrow();
    const parts = sealed.split('.');
    parts[3] = Buffer.from('forged').toString('base64');
    expect(() => box.decrypt(parts.join('.'))).toThrow();
  });

  it('compare hashed secrets and show only a prefix', () => {
    expect(matchesHash('s3cret', sha256('s3cret'))).toBe(true);
    expect(matchesHash('s3cret!', sha256('s3cret'))).toBe(false);
    expect(matchesHash('s3cret', null)).toBe(false);
    expect(secretPrefix('abcdef123456')).toBe('abcdef…');
    expect(secretPrefix(null)).toBeNull();
  });
});

describe('csrf tokens', () => {
  it('verify their own signature and expire', () => {
    const now = Date.UTC(2026, 0, 1);
    const token = issueCsrfToken(box, now);
    expect(verifyCsrfToken(box, token, now)).toBe(true);
    expect(verifyCsrfToken(box, token, now + 25 * 3600_000)).toBe(false);
    expect(verifyCsrfToken(new SecretBox('other-key-other-key-other-key-other'), token, now)).toBe(false);
    const [nonce, expiry, sig] = token.split('.');
    expect(verifyCsrfToken(box, `${nonce}.${Number(expiry) + 1000}.${sig}`, now)).toBe(false);
    expect(verifyCsrfToken(box, undefined, now)).toBe(false);
    expect(verifyCsrfToken(box, 'a.b', now)).toBe(false);
  });
});

describe('config', () => {
  it('applies documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ PORT: 3000, ADMIN_EMAIL: 'admin@fleet.local', ADMIN_PASSWORD: 'admin', ORCHESTRATOR_BACKEND: 'docker' });
    expect(c.DATABASE_URL).toBeUndefined();
  });

  it('names the bad setting in one line', () => {
    expect(() => loadConfig({ PORT: '70000' })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: '70000' })).toThrow(/^invalid setting PORT/);
    expect(() => loadConfig({ ORCHESTRATOR_BACKEND: 'k8s' })).toThrow(/ORCHESTRATOR_BACKEND/);
  });

  it('refuses the default admin password and a missing key in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', FLEET_SECRET_KEY: 'k'.repeat(40) })).toThrow(/ADMIN_PASSWORD/);
    expect(() => loadConfig({ NODE_ENV: 'production', ADMIN_PASSWORD: 'long-and-real' })).toThrow(/FLEET_SECRET_KEY/);
    expect(loadConfig({ NODE_ENV: 'production', ADMIN_PASSWORD: 'long-and-real', FLEET_SECRET_KEY: 'k'.repeat(40) }).NODE_ENV).toBe('production');
  });
});
