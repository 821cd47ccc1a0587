import { describe, expect, it } from 'vitest';
import {
  codePoints,
  cutGraphemes,
  importChunks,
  importTask,
  labelConfig,
  lsJson,
  lsText,
  projectDescription,
  projectPayload,
  projectTitle,
  TITLE_LIMITS,
} from '../../src/labelstudio/limits.ts';

const graphemes = (s: string) => [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(s)].map((g) => g.segment);
/** What Label Studio (DRF CharField + Django validators) would say about a title; null = accepted. */
function lsRefusesTitle(t: string): string | null {
  if (t.includes('\u0000')) return 'null character';
  for (const ch of t) {
    const c = ch.codePointAt(0)!;
    if (c >= 0xd800 && c <= 0xdfff) return `surrogate U+${c.toString(16)}`;
  }
  const n = codePoints(t.trim());
  if (n < TITLE_LIMITS.min || n > TITLE_LIMITS.max) return `length ${n}`;
  return null;
}

const FAMILY = '👨‍👩‍👧‍👦'; // 7 code points, one character
const FLAG = '🇯🇵'; // 2 code points
const THUMB = '👍🏽'; // emoji + skin tone
const E_ACUTE = 'e\u0301'; // e + combining acute
const HEBREW = 'שָׁלוֹם'; // letters with niqqud (combining)
const ARABIC = 'مَرْحَبًا'; // letters with harakat (combining)
const DEVANAGARI = 'नमस्ते'; // conjuncts with virama
const ZALGO = `Z${'\u0336'.repeat(80)}`; // one character of 81 code points

describe('project titles within Label Studio limits, cut between whole characters', () => {
  it('the case from the issue: an emoji straddling the 50th UTF-16 unit is kept whole or left out whole', () => {
    // "#7 · " is 5 code points; 43 letters bring it to 48, the emoji is the 49th code point
    // (UTF-16 units 49–50), and the old slice(0, 49) cut it in half.
    const name = `${'a'.repeat(43)}😀bbbb`;
    const t = projectTitle(7, name);
    expect(t).toBe(`#7 · ${'a'.repeat(43)}😀…`);
    expect(codePoints(t)).toBe(50);
    expect(t.length).toBe(51); // UTF-16 units: Label Studio counts code points, so this is allowed
    expect(lsRefusesTitle(t)).toBeNull();
    // One letter more and the emoji no longer fits: it is dropped whole.
    expect(projectTitle(7, `${'a'.repeat(44)}😀bbbb`)).toBe(`#7 · ${'a'.repeat(44)}…`);
  });
  it('counts code points as Label Studio does: 45 emoji fit without a cut', () => {
    const name = '😀'.repeat(45);
    expect(projectTitle(7, name)).toBe(`#7 · ${name}`);
    expect(projectTitle(7, `${name}x`)).toBe(`#7 · ${'😀'.repeat(44)}…`);
  });
  it('keeps ZWJ sequences, flags, skin tones, combining marks, RTL letters and conjuncts whole', () => {
    const expectations: [string, string][] = [
      [FAMILY, `#7 · ${'a'.repeat(40)}…`], // 5+40+7 > 49: the family goes whole
      [FLAG, `#7 · ${'a'.repeat(40)}${FLAG}${FLAG}…`], // 45 + 2 + 2 = 49, the third pair does not fit
      [THUMB, `#7 · ${'a'.repeat(40)}${THUMB}${THUMB}…`],
      [E_ACUTE, `#7 · ${'a'.repeat(40)}${E_ACUTE}${E_ACUTE}…`],
    ];
    for (const [ch, expected] of expectations) {
      const t = projectTitle(7, `${'a'.repeat(40)}${ch}${ch}${ch}`);
      expect(t, ch).toBe(expected);
    }
    // 5 + 42 + é (2 code points) = 49 fits; with 43 letters the 'e' alone would fit but its accent
    // would not: neither is kept.
    expect(projectTitle(7, `${'a'.repeat(42)}${E_ACUTE}${E_ACUTE}`)).toBe(`#7 · ${'a'.repeat(42)}${E_ACUTE}…`);
    expect(projectTitle(7, `${'a'.repeat(43)}${E_ACUTE}${E_ACUTE}`)).toBe(`#7 · ${'a'.repeat(43)}…`);
    expect(projectTitle(7, `${'a'.repeat(44)}${E_ACUTE}${E_ACUTE}`)).toBe(`#7 · ${'a'.repeat(44)}…`);
  });
  it('right-to-left names are cut between letters, never between a letter and its marks', () => {
    for (const word of [HEBREW, ARABIC]) {
      const t = projectTitle(123, `${word} `.repeat(20));
      expect(lsRefusesTitle(t)).toBeNull();
      const kept = t.slice(`#123 · `.length, -1).trimEnd();
      expect(graphemes(`${word} `.repeat(20)).slice(0, graphemes(kept).length).join('')).toBe(kept);
      // The kept text never ends with a bare letter whose mark was cut off.
      expect(/\p{M}/u.test(graphemes(kept).at(-1)!) || graphemes(word).some((g) => g === graphemes(kept).at(-1))).toBe(true);
    }
  });
  it('every name, every id: accepted by Label Studio, a whole-character prefix, as long as possible', () => {
    const pieces = ['a', ' ', '😀', FAMILY, FLAG, THUMB, E_ACUTE, HEBREW, ARABIC, DEVANAGARI, '中文', '\u200f', ZALGO];
    for (const id of [1, 42, 99999, 2147483647]) {
      for (let seed = 0; seed < 200; seed++) {
        let name = '';
        let x = seed + 1;
        while (codePoints(name) < 30 + (seed % 60)) {
          x = (x * 1103515245 + 12345) % 2147483648;
          name += pieces[x % pieces.length];
        }
        const t = projectTitle(id, name);
        expect(lsRefusesTitle(t), `${id} ${JSON.stringify(name)}`).toBeNull();
        const full = `#${id} · ${name.replace(/\s+/g, ' ').trim()}`;
        if (t === full) continue;
        expect(t.endsWith('…')).toBe(true);
        const kept = t.slice(0, -1);
        const fullG = graphemes(full);
        const k = graphemes(kept).length;
        expect(fullG.slice(0, k).join('').trimEnd()).toBe(kept);
        // Maximal: the next whole character would not have fitted (or was whitespace trimmed).
        const next = fullG.slice(k).find((g) => g.trim() !== '')!;
        const withNext = fullG.slice(0, fullG.indexOf(next, k) + 1).join('');
        expect(codePoints(withNext) + 1).toBeGreaterThan(TITLE_LIMITS.max);
      }
    }
  });
  it('is one line, never empty, and never carries characters Label Studio refuses', () => {
    expect(projectTitle(12, 'Cars')).toBe('#12 · Cars');
    expect(projectTitle(12, '  Cars\n\tand\u0000 trucks  ')).toBe('#12 · Cars and trucks');
    expect(projectTitle(12, '\ud83d broken')).toBe('#12 · \ufffd broken');
    expect(projectTitle(12, 'x'.repeat(100))).toBe(`#12 · ${'x'.repeat(43)}…`);
    expect(projectTitle(1, '')).toBe('#1 ·');
    expect(projectTitle(1, ZALGO)).toBe('#1 ·…'); // one 81-code-point character cannot fit
    expect(lsRefusesTitle(projectTitle(1, ZALGO))).toBeNull();
  });
});

describe('other text sent to Label Studio', () => {
  it('cutGraphemes leaves fitting text alone and counts the ellipsis', () => {
    expect(cutGraphemes('abc', 3)).toBe('abc');
    expect(cutGraphemes('abcd', 3)).toBe('ab…');
    expect(cutGraphemes(`${FLAG}${FLAG}${FLAG}`, 5)).toBe(`${FLAG}${FLAG}…`);
    expect(cutGraphemes(`${FLAG}${FLAG}${FLAG}`, 4)).toBe(`${FLAG}…`);
    expect(cutGraphemes(`${FAMILY}x`, 7, '')).toBe(FAMILY);
  });
  it('lsText replaces lone surrogates and drops U+0000, keeping pairs', () => {
    expect(lsText('a\u0000b')).toBe('ab');
    expect(lsText('\ud83d\ude00')).toBe('😀');
    expect(lsText('x\ud83dy\ude00z\udc00\ud800')).toBe('x\ufffdy\ufffdz\ufffd\ufffd');
    expect(lsJson({ 'k\u0000': ['\ud800', { v: 'ok😀' }], n: 1, b: null })).toEqual({ k: ['\ufffd', { v: 'ok😀' }], n: 1, b: null });
  });
  it('the description keeps the full name and the key that finds the project again', () => {
    const name = `${FAMILY} ${HEBREW} ${'long '.repeat(40)}`;
    const d = projectDescription(5, name, 20);
    expect(d).toBe(`LabelFleet batch 5 of workflow "${name}" (20 tasks).\n[labelfleet:assignment=5]`);
  });
  it('a label config is sent unchanged, or refused with a reason when Label Studio would refuse it', () => {
    const xml = `<View><Image name="image" value="$image"/><Choices name="c" toName="image"><Choice value="${FAMILY}"/><Choice value="${ARABIC}"/></Choices></View>`;
    expect(labelConfig(xml)).toBe(xml);
    expect(() => labelConfig(xml.replace('image"/>', 'image\u0000"/>'))).toThrow(/U\+0000/);
    expect(() => labelConfig(xml.replace(FAMILY, '\ud83d'))).toThrow(/lone surrogate/);
    expect(projectPayload({ assignmentId: 3, workflowName: 'W', taskCount: 2, configXml: xml })).toEqual({
      title: '#3 · W',
      description: 'LabelFleet batch 3 of workflow "W" (2 tasks).\n[labelfleet:assignment=3]',
      label_config: xml,
    });
  });
  it('import tasks carry the URL, our task id, and a cleaned prediction', () => {
    expect(importTask({ dataKey: 'image', imageUrl: 'http://s3/x', fleetTaskId: 9 })).toEqual({
      data: { image: 'http://s3/x' },
      meta: { labelfleet: { task: 9 } },
    });
    const prediction = [{ from_name: 't', to_name: 'image', type: 'textarea', value: { text: ['a\u0000b'] } }];
    expect(importTask({ dataKey: 'image', imageUrl: 'u', fleetTaskId: 9, prediction }).predictions).toEqual([
      { model_version: 'labelfleet-upstream', result: [{ from_name: 't', to_name: 'image', type: 'textarea', value: { text: ['ab'] } }] },
    ]);
  });
  it('imports are split by bytes and by count, in order; a task over the limit alone is an error', () => {
    const tasks = Array.from({ length: 10 }, (_, i) => importTask({ dataKey: 'image', imageUrl: 'u'.repeat(100), fleetTaskId: i }));
    const size = Buffer.byteLength(JSON.stringify(tasks[0]));
    expect(importChunks(tasks).map((c) => c.length)).toEqual([10]);
    expect(importChunks(tasks, { maxBytes: 1e9, maxTasks: 4 }).map((c) => c.length)).toEqual([4, 4, 2]);
    const chunks = importChunks(tasks, { maxBytes: 3 * (size + 1) + 2, maxTasks: 1000 });
    expect(chunks.map((c) => c.length)).toEqual([3, 3, 3, 1]);
    for (const c of chunks) expect(Buffer.byteLength(JSON.stringify(c))).toBeLessThanOrEqual(3 * (size + 1) + 2);
    expect(chunks.flat().map((t) => (t.meta as { labelfleet: { task: number } }).labelfleet.task)).toEqual([...Array(10).keys()]);
    expect(() => importChunks(tasks, { maxBytes: size, maxTasks: 1000 })).toThrow(/task 1 of the import is \d+ bytes/);
  });
});
