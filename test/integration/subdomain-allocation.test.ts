/**
 * Subdomain allocation under concurrency (issue 10): creates that race for the same base label —
 * one name many times, distinct names that reduce to the same label, batches naming the same
 * people in another order — all succeed, each with its own subdomain, the numbering dense.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let n = 0;
const email = (p: string) => `${p}-${++n}@alloc.test`;

beforeAll(async () => {
  t = await startTestService();
});
afterAll(async () => t?.close());

/** `base`, `base-2` … `base-count`. */
const series = (base: string, count: number) => Array.from({ length: count }, (_, i) => (i === 0 ? base : `${base}-${i + 1}`)).sort();

describe('subdomain allocation under concurrency', () => {
  it('30 parallel creates with one name: all 201, subdomains base … base-30', async () => {
    const results = await Promise.all(Array.from({ length: 30 }, () => t.json('POST', '/api/annotators', { name: 'Pat Parallel', email: email('pat') })));
    expect(results.map((r) => r.status)).toEqual(Array(30).fill(201));
    expect(results.map((r) => r.body.subdomain as string).sort()).toEqual(series('pat-parallel', 30));
  });

  it('12 parallel distinct non-Latin names that reduce to one label: all 201, distinct', async () => {
    const names = ['李娜', '王芳', '张伟', 'Иван Петров', 'Пётр', 'محمد', 'فاطمة', 'Γιώργος', 'Ελένη', 'さくら', '민준', 'אברהם'];
    const results = await Promise.all(names.map((name) => t.json('POST', '/api/annotators', { name, email: email('nl') })));
    expect(results.map((r) => r.status)).toEqual(Array(12).fill(201));
    expect(results.map((r) => r.body.subdomain as string).sort()).toEqual(series('annotator', 12));
    // Each kept its own name.
    expect(results.map((r) => r.body.name).sort()).toEqual([...names].sort());
  });

  it('bulk creates naming the same people in opposite orders, beside single creates: no deadlock, all 201', async () => {
    const people = ['Quinn Queue', 'Rae Race', 'Sam Sync'];
    const bulk = (order: string[]) => t.json('POST', '/api/annotators/bulk', { annotators: order.map((name) => ({ name, email: email('bulk') })) });
    const results = await Promise.all([
      bulk(people),
      bulk([...people].reverse()),
      bulk([people[1]!, people[2]!, people[0]!]),
      ...people.map((name) => t.json('POST', '/api/annotators', { name, email: email('one') })),
    ]);
    expect(results.map((r) => r.status)).toEqual(Array(6).fill(201));
    const subs = results.flatMap((r) => (r.body.annotators ?? [r.body]).map((a: { subdomain: string }) => a.subdomain)).sort();
    expect(subs).toEqual([...series('quinn-queue', 4), ...series('rae-race', 4), ...series('sam-sync', 4)].sort());
  });

  it("a name that is another base's numbered candidate still gets its own subdomain", async () => {
    const results = await Promise.all([
      ...Array.from({ length: 5 }, () => t.json('POST', '/api/annotators', { name: 'Uma', email: email('uma') })),
      ...Array.from({ length: 3 }, () => t.json('POST', '/api/annotators', { name: 'Uma 2', email: email('uma2') })),
    ]);
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(201));
    const subs = results.map((r) => r.body.subdomain as string);
    expect(new Set(subs).size).toBe(8);
    for (const s of subs) expect(s).toMatch(/^uma(-\d+)?(-\d+)?$/);
  });
});
