import { describe, expect, it } from 'vitest';
import {
  isValidSubdomain,
  pickSubdomain,
  subdomainBase,
  subdomainCandidate,
  subdomainCandidates,
} from '../../src/domain/subdomain.ts';

describe('subdomainBase', () => {
  it.each([
    ['Alice', 'alice'],
    ['Alice Smith', 'alice-smith'],
    ['  Alice   Smith  ', 'alice-smith'],
    ['José Álvarez', 'jose-alvarez'],
    ['Zoë Ørsted', 'zoe-orsted'],
    ['Straße', 'strasse'],
    ['Łukasz Żółć', 'lukasz-zolc'],
    ['Æsir þór', 'aesir-thor'],
    ['ＡＢＣ１２３', 'abc123'],
    ['o\'Brien_Jr.', 'o-brien-jr'],
    ['--a--b--', 'a-b'],
    ['R2-D2', 'r2-d2'],
    ['alice@example.com', 'alice-example-com'],
  ])('%j → %j', (name, expected) => {
    expect(subdomainBase(name)).toBe(expected);
  });

  it('falls back to "annotator" when nothing usable is left', () => {
    for (const name of ['', '   ', '---', '李小龙', '🙂🙂', 'Ωμέγα'.replace(/./g, '·')]) {
      expect(subdomainBase(name), name).toBe('annotator');
    }
  });

  it('keeps the ASCII part of mixed scripts', () => {
    expect(subdomainBase('李 Li 小龙')).toBe('li');
  });

  it('is at most 63 characters and never ends with a hyphen after truncation', () => {
    const long = subdomainBase('a'.repeat(62) + ' b c');
    expect(long).toBe('a'.repeat(62));
    expect(subdomainBase('x'.repeat(300))).toHaveLength(63);
    expect(isValidSubdomain(subdomainBase('y'.repeat(62) + '-zzz'))).toBe(true);
  });

  it('always yields a valid DNS label', () => {
    const samples = ['Ünïcödé', 'a b', '123', '-x-', '.', 'x'.repeat(100), 'Mary-Jane  O’Neil', 'ǅemal', '1️⃣ one'];
    for (const s of samples) expect(isValidSubdomain(subdomainBase(s)), s).toBe(true);
  });
});

describe('subdomainCandidate', () => {
  it('is the base first, then -2, -3 …', () => {
    expect(subdomainCandidate('alice', 1)).toBe('alice');
    expect(subdomainCandidate('alice', 2)).toBe('alice-2');
    expect(subdomainCandidate('alice', 10)).toBe('alice-10');
    expect(subdomainCandidates('bob', 1, 3)).toEqual(['bob', 'bob-2', 'bob-3']);
  });

  it('shortens a long base so the suffixed label still fits in 63 characters', () => {
    const base = 'a'.repeat(63);
    expect(subdomainCandidate(base, 2)).toBe(`${'a'.repeat(61)}-2`);
    expect(subdomainCandidate(base, 123)).toBe(`${'a'.repeat(59)}-123`);
    expect(subdomainCandidate(base, 123)).toHaveLength(63);
  });

  it('does not leave a double hyphen when the cut lands on one', () => {
    const base = `${'a'.repeat(59)}-bcd`; // 63 chars; cutting to 60 for "-10" leaves "a…a-"
    expect(subdomainCandidate(base, 10)).toBe(`${'a'.repeat(59)}-10`);
    expect(isValidSubdomain(subdomainCandidate(base, 10))).toBe(true);
  });

  it('rejects a candidate number below 1', () => {
    expect(() => subdomainCandidate('a', 0)).toThrow(RangeError);
    expect(() => subdomainCandidate('a', 1.5)).toThrow(RangeError);
  });
});

describe('pickSubdomain', () => {
  it('takes the first free candidate', () => {
    expect(pickSubdomain('Alice', new Set())).toBe('alice');
    expect(pickSubdomain('Alice', new Set(['alice']))).toBe('alice-2');
    expect(pickSubdomain('Alice', new Set(['alice', 'alice-2', 'alice-4']))).toBe('alice-3');
    expect(pickSubdomain('', new Set(['annotator']))).toBe('annotator-2');
  });
});

describe('isValidSubdomain', () => {
  it('matches the database CHECK rule', () => {
    for (const ok of ['a', 'a1', 'a-b', '0', 'x'.repeat(63)]) expect(isValidSubdomain(ok), ok).toBe(true);
    for (const bad of ['', '-a', 'a-', 'A', 'a_b', 'a.b', 'x'.repeat(64), 'é']) expect(isValidSubdomain(bad), bad).toBe(false);
  });
});
