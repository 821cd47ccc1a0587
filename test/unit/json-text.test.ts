import { describe, expect, it } from 'vitest';
import { jsonArray } from '../../src/db/json-text.ts';

describe('jsonArray', () => {
  it('is the JSON array of the items, whatever their count', () => {
    for (const items of [[], [{ a: 1 }], [{ a: 1 }, [2, 'x'], 'three', null]]) {
      const text = jsonArray(items.map((i) => JSON.stringify(i)));
      expect(JSON.parse(text)).toEqual(items);
      expect(text).toBe(JSON.stringify(items));
    }
  });
});
