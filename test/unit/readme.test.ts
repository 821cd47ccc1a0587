/** README is the operator's manual: every environment variable and setting must be in it. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS } from '../../src/config.ts';
import { SETTING_DEFAULTS } from '../../src/settings.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('documents every environment variable', () => {
    expect(CONFIG_KEYS.filter((k) => !readme.includes(`\`${k}\``))).toEqual([]);
  });

  it('documents every run-time setting', () => {
    expect(Object.keys(SETTING_DEFAULTS).filter((k) => !readme.includes(`\`${k}\``))).toEqual([]);
  });

  it('names the test command that .ci/run calls', () => {
    const ci = readFileSync(new URL('../../.ci/run', import.meta.url), 'utf8');
    expect(ci).toMatch(/^npm test$/m);
    expect(readme).toMatch(/^npm test\b/m);
  });
});
