import { describe, expect, it } from 'vitest';
import { keyProblem } from '../../src/domain/object-keys.ts';

describe('keys a presigned URL addresses byte-for-byte', () => {
  it('refuses "." and ".." path segments wherever they are', () => {
    for (const key of ['cat/a/../b.png', 'cat/./b.png', './b.png', '../b.png', 'a/..', 'a/.', '.', '..', 'x//../y.png', 'a/b/c/../../d.png']) {
      expect(keyProblem(key), key).toBe('dot_segment');
    }
  });
  it('refuses control characters: C0, DEL, C1, and the XML non-characters U+FFFE/U+FFFF', () => {
    for (const key of ['a\tb.png', 'a\nb.png', 'a\rb.png', 'a\u0001b.png', 'a\u001fb.png', 'a\u007fb.png', 'a\u0085b.png', 'a\u009fb.png', 'a\ufffeb.png', 'a\uffffb.png']) {
      expect(keyProblem(key), JSON.stringify(key)).toBe('control_character');
    }
  });
  it('accepts every other key, however awkward', () => {
    const fine = [
      'cat/b.png',
      'cat/...png', // three dots: not a dot segment
      'cat/.hidden.png', // a leading dot: a name, not a segment of its own
      'cat/x.',
      'cat/trail./x.png',
      'cat/..x/y.png',
      'cat/x../y.png',
      'cat//double.png',
      '/leading.png',
      'cat/with space.png',
      'cat/plus+sign.png',
      'cat/percent%.png',
      'cat/%2e%2e/encoded-dots.png', // '%' is encoded to %25, so the URL holds %252e%252e
      'cat/%zz.png',
      'cat/hash#and?query.png',
      'cat/back\\slash.png',
      "cat/~!$&'()*,;=:@.png",
      'cat/é.png',
      'cat/e\u0301.png',
      'cat/😀.png',
      'cat/👨‍👩‍👧‍👦.png',
      'cat/שלום.png',
      'cat/\u200bzero-width.png',
      'cat/\ufeffbom.png',
      'cat/中文.png',
    ];
    for (const key of fine) expect(keyProblem(key), JSON.stringify(key)).toBeNull();
  });
});
