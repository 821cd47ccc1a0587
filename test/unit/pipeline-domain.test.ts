/** Pure rules of the pipeline features: webhook destinations, retry schedule, API-key scopes. */
import { describe, expect, it } from 'vitest';
import { parseNetworkPolicy, refusal } from '../../src/domain/address-policy.ts';
import { decideAfterAttempt, MAX_RETRY_DELAY_MS, retryDelayMs } from '../../src/domain/retry-schedule.ts';
import { allows } from '../../src/auth/api-keys.ts';

describe('webhook destinations (address policy)', () => {
  const everything = parseNetworkPolicy(['public', '0.0.0.0/0', '::/0'])!;
  const publicOnly = parseNetworkPolicy(['public'])!;
  const loopback = parseNetworkPolicy(['127.0.0.0/8', '::1/128'])!;

  it.each([
    '169.254.169.254',
    '169.254.0.1',
    '::ffff:169.254.169.254',
    'fd00:ec2::254',
    'fe80::1',
    '64:ff9b::a9fe:a9fe',
    '0.0.0.0',
    '::',
    '255.255.255.255',
    '224.0.0.1',
    'ff02::1',
  ])('never allows %s, whatever the setting', (address) => {
    expect(refusal(address, everything)).toMatch(/never a webhook destination/);
  });

  it('allows public unicast addresses with "public", and nothing private', () => {
    expect(refusal('8.8.8.8', publicOnly)).toBeNull();
    expect(refusal('2001:4860:4860::8888', publicOnly)).toBeNull();
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '100.64.0.1', '::1', 'fd12::1']) {
      expect(refusal(a, publicOnly), a).toMatch(/not in webhooks.allowedNetworks/);
    }
  });

  it('allows exactly the listed CIDRs', () => {
    expect(refusal('127.0.0.1', loopback)).toBeNull();
    expect(refusal('127.255.0.9', loopback)).toBeNull();
    expect(refusal('::1', loopback)).toBeNull();
    expect(refusal('::ffff:127.0.0.1', loopback)).toBeNull();
    expect(refusal('8.8.8.8', loopback)).toMatch(/not in/);
    expect(refusal('10.0.0.1', loopback)).toMatch(/not in/);
  });

  it('refuses what is not an address', () => {
    expect(refusal('example.com', everything)).toMatch(/not an IP address/);
  });

  it.each([[['public', 'nope']], [['10.0.0.0/33']], ['public'], [[1]], [null]])('rejects the setting value %j (callers use the default)', (value) => {
    expect(parseNetworkPolicy(value)).toBeNull();
  });
});

describe('delivery retry schedule', () => {
  const base = { windowStartedAt: new Date('2026-01-01T00:00:00Z'), baseSeconds: 10, windowHours: 24, random: () => 0.5 };
  const at = (ms: number) => new Date(base.windowStartedAt.getTime() + ms);

  it('doubles from the base and caps at one hour', () => {
    expect([1, 2, 3, 4, 10, 11, 40].map((n) => retryDelayMs(n, 10))).toEqual([10_000, 20_000, 40_000, 80_000, 3_600_000, 3_600_000, 3_600_000]);
    expect(retryDelayMs(1, 7200)).toBe(MAX_RETRY_DELAY_MS);
  });

  it('a 2xx delivers; a refusal fails at once; anything else retries after the backoff (±10 % jitter)', () => {
    expect(decideAfterAttempt({ statusCode: 204, refused: false }, { ...base, failures: 3, now: at(0) })).toEqual({ status: 'delivered' });
    expect(decideAfterAttempt({ statusCode: null, refused: true }, { ...base, failures: 1, now: at(0) })).toEqual({ status: 'failed', reason: 'refused' });
    for (const statusCode of [500, 404, 302, null]) {
      expect(decideAfterAttempt({ statusCode, refused: false }, { ...base, failures: 2, now: at(0) })).toEqual({ status: 'pending', nextAttemptAt: at(20_000) });
    }
    const low = decideAfterAttempt({ statusCode: 500, refused: false }, { ...base, failures: 1, now: at(0), random: () => 0 });
    const high = decideAfterAttempt({ statusCode: 500, refused: false }, { ...base, failures: 1, now: at(0), random: () => 0.999999 });
    expect(low).toEqual({ status: 'pending', nextAttemptAt: at(9_000) });
    expect(high.status === 'pending' && high.nextAttemptAt.getTime()).toBeCloseTo(at(11_000).getTime(), -1);
  });

  it('fails once the next retry would fall past the window', () => {
    const late = at(24 * 3_600_000 - 30 * 60_000);
    expect(decideAfterAttempt({ statusCode: 503, refused: false }, { ...base, failures: 20, now: late })).toEqual({ status: 'failed', reason: 'window' });
    expect(decideAfterAttempt({ statusCode: 503, refused: false }, { ...base, failures: 1, now: late })).toEqual({ status: 'pending', nextAttemptAt: new Date(late.getTime() + 10_000) });
  });

  it('adds up to about 30 attempts over 24 hours with the defaults', () => {
    let now = 0;
    let attempts = 1;
    for (;;) {
      const d = decideAfterAttempt({ statusCode: 500, refused: false }, { ...base, failures: attempts, now: at(now) });
      if (d.status !== 'pending') break;
      now = d.nextAttemptAt.getTime() - base.windowStartedAt.getTime();
      attempts++;
    }
    expect(attempts).toBeGreaterThanOrEqual(25);
    expect(attempts).toBeLessThanOrEqual(35);
    expect(now).toBeLessThanOrEqual(24 * 3_600_000);
  });
});

describe('API key scopes', () => {
  it('each scope includes the ones before it', () => {
    expect(allows(['read'], 'read')).toBe(true);
    expect(allows(['read'], 'write')).toBe(false);
    expect(allows(['write'], 'read')).toBe(true);
    expect(allows(['write'], 'admin')).toBe(false);
    expect(allows(['admin'], 'write')).toBe(true);
    expect(allows(['read', 'admin'], 'admin')).toBe(true);
  });
});
