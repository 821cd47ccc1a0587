/**
 * Host name settings in ASCII form (src/domain/hostnames.ts, wired in src/config.ts): converted
 * once at start, so the Traefik rule and every URL carry the same ASCII name; refused when they
 * are not host names, every bad one at once.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { asciiHostname, asciiUrl } from '../../src/domain/hostnames.ts';
import { publicHost, publicUrl } from '../../orchestrator/instance-spec.ts';
import { hostRule } from '../../orchestrator/routing/docker-labels.ts';

// Expected ASCII forms checked against Python's punycode codec ('bücher'.encode('punycode') → b'bcher-kva').
describe('asciiHostname', () => {
  it('converts internationalised names to their IDNA form, lower-cased, without a trailing dot', () => {
    expect(asciiHostname('bücher.localhost')).toEqual({ ok: true, value: 'xn--bcher-kva.localhost' });
    expect(asciiHostname('Fleet.Example.COM.')).toEqual({ ok: true, value: 'fleet.example.com' });
    expect(asciiHostname('例え.テスト')).toEqual({ ok: true, value: 'xn--r8jz45g.xn--zckzah' });
    expect(asciiHostname('ÉCOLE.fr')).toEqual({ ok: true, value: 'xn--cole-9oa.fr' });
    expect(asciiHostname('10.0.0.7')).toEqual({ ok: true, value: '10.0.0.7' });
    expect(asciiHostname('::1')).toEqual({ ok: true, value: '::1' });
  });

  it('refuses what is not a host name', () => {
    for (const bad of ['', '.', 'a..b', 'exa mple.com', '-lead.com', 'trail-.com', 'under_score.com', `${'x'.repeat(64)}.com`, 'a/b', 'http://fleet.com', 'fleet.com:80']) {
      expect(asciiHostname(bad).ok, bad).toBe(false);
    }
    expect(asciiHostname('ls_db', { underscore: true })).toEqual({ ok: true, value: 'ls_db' });
    expect(asciiHostname(`${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.com`, { maxLength: 189 }).ok).toBe(true);
    expect(asciiHostname(`${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.comcomcomcom`, { maxLength: 189 }).ok).toBe(false);
  });
});

describe('asciiUrl', () => {
  it('converts only the host, keeping scheme, credentials, port, path and trailing slash as given', () => {
    expect(asciiUrl('http://bücher.localhost:3000')).toEqual({ ok: true, value: 'http://xn--bcher-kva.localhost:3000' });
    expect(asciiUrl('https://Straße.example/api/')).toEqual({ ok: true, value: 'https://xn--strae-oqa.example/api/' });
    expect(asciiUrl('postgres://user:p%40ss@dätabase:5432/fleet?sslmode=require')).toEqual({
      ok: true,
      value: 'postgres://user:p%40ss@xn--dtabase-5wa:5432/fleet?sslmode=require',
    });
    expect(asciiUrl('http://[::1]:8080/x')).toEqual({ ok: true, value: 'http://[::1]:8080/x' });
    expect(asciiUrl('http://127.0.0.1:3000')).toEqual({ ok: true, value: 'http://127.0.0.1:3000' });
  });
});

describe('config: host name settings', () => {
  it('carries the ASCII form everywhere: FLEET_DOMAIN in the route rule and the public url, URLs and hosts', () => {
    const c = loadConfig({
      FLEET_DOMAIN: 'Bücher.localhost',
      FLEET_CALLBACK_URL: 'http://rückruf.localhost:3000',
      TRAEFIK_URL: 'http://träfik.localhost:18080',
      S3_ENDPOINT: 'http://speicher-ü.localhost:5055',
      LS_DATABASE_HOST: 'datenbänk',
      HOST: 'localhost',
    });
    expect(c.FLEET_DOMAIN).toBe('xn--bcher-kva.localhost');
    expect(c.FLEET_CALLBACK_URL).toBe('http://xn--rckruf-3ya.localhost:3000');
    expect(c.TRAEFIK_URL).toBe('http://xn--trfik-hra.localhost:18080');
    expect(c.S3_ENDPOINT).toBe('http://xn--speicher--y9a.localhost:5055');
    expect(c.LS_DATABASE_HOST).toBe('xn--datenbnk-5za');
    expect(hostRule(publicHost(c, 'alice'))).toBe('Host(`alice.xn--bcher-kva.localhost`)');
    expect(publicUrl(c, 'alice')).toBe('http://alice.xn--bcher-kva.localhost');
    expect(loadConfig({}).FLEET_DOMAIN).toBe('fleet.localhost');
  });

  it('refuses every bad host name setting at once, each by name', () => {
    let err: unknown;
    try {
      loadConfig({ FLEET_DOMAIN: 'bad..domain', HOST: 'exa mple', LS_DATABASE_HOST: '-db', FLEET_CALLBACK_URL: 'http://a..b:3000', DATABASE_URL: 'postgres://u@bad..host/db' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.map((p) => p.variable).sort();
    expect(problems).toEqual(['DATABASE_URL', 'FLEET_CALLBACK_URL', 'FLEET_DOMAIN', 'HOST', 'LS_DATABASE_HOST']);
    expect((err as ConfigError).message).toMatch(/FLEET_DOMAIN: "bad\.\.domain" is not a host name/);
    expect((err as ConfigError).message).not.toMatch(/postgres:\/\//); // never repeats a connection string
  });
});
