/**
 * Text a person types into the console's search and filter fields (annotators table search, the
 * batches and events "Annotator" filter): any characters a URL can carry give the page, never an
 * error, and a name or email typed exactly as stored finds its annotator, in any script.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signIn, startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let cookie = '';
const page = async (path: string) => {
  const res = await t.service.app.request(path, { headers: { cookie } });
  return { status: res.status, html: await res.text() };
};
/** The annotators whose links a page's table shows, by name. */
const tableNames = (html: string, table: string) => {
  const body = html.split(`<table class="${table}"`)[1]?.split('</table>')[0] ?? '';
  return [...body.matchAll(/<a href="\/annotators\/\d+">([^<]*)<\/a>/g)].map((m) => m[1]);
};

beforeAll(async () => {
  t = await startTestService();
  cookie = await signIn(t.service.app);
});
afterAll(async () => t?.close());

describe('console text parameters', () => {
  it('NUL and other control characters in any text parameter give the page as if they were not there', async () => {
    for (const path of ['/annotators?q=%00', '/annotators?q=a%00b', '/batches?annotator=%00', '/events?annotator=a%00', '/workflows?q=%00', '/batches?status=%00']) {
      const res = await page(path);
      expect([path, res.status]).toEqual([path, 200]);
    }
    expect((await page('/annotators?q=%01%1F%7F')).status).toBe(200);
  });

  it('a name or email typed exactly as stored finds its annotator, whatever the script and case', async () => {
    const names = ['İpek Yılmaz', 'ΣΟΦΙΑ Παππά', 'STRASSE ß', 'ǅemal Ǆ', 'Ölçüm IŞIK'];
    for (const [i, name] of names.entries()) {
      const email = `script${i}@example.com`;
      const created = await t.json('POST', '/api/annotators', { name, email });
      expect(created.status).toBe(201);
      await t.db.insertInto('containerEvents').values({ annotatorId: created.body.id, eventType: 'status_change', fromStatus: 'created', toStatus: 'created', message: 'seen' }).execute();
      // As stored, and the email in capitals. (Not the name's capitals: "Yılmaz" in capitals is "YILMAZ",
      // which is another name's in lower case.)
      for (const typed of [name, email.toUpperCase()]) {
        const events = await page(`/events?annotator=${encodeURIComponent(typed)}`);
        expect([typed, events.html.includes('No annotator matches'), new Set(tableNames(events.html, 'events'))]).toEqual([typed, false, new Set([name])]);
      }
      // The annotators table's search, the same way.
      const table = await page(`/annotators?q=${encodeURIComponent(name)}`);
      expect([name, tableNames(table.html, 'annotators')]).toEqual([name, [name]]);
    }
  });

  it("a re-created annotator's email names the live one; the deleted one is offered marked as deleted", async () => {
    const email = 'again@example.com';
    const first = await t.json('POST', '/api/annotators', { name: 'Again Person', email });
    expect((await t.json('DELETE', `/api/annotators/${first.body.id}`)).status).toBe(200);
    const second = await t.json('POST', '/api/annotators', { name: 'Again Person', email });
    expect(second.status).toBe(201);
    for (const id of [first.body.id, second.body.id]) {
      await t.db.insertInto('containerEvents').values({ annotatorId: id, eventType: 'status_change', fromStatus: 'created', toStatus: 'created', message: `event of ${id}` }).execute();
    }
    // Following a link (annotatorId) fills the field with the email; submitting it as it is keeps filtering.
    expect((await page(`/events?annotatorId=${second.body.id}`)).html).toContain(`value="${email}"`);
    const byEmail = await page(`/events?annotator=${encodeURIComponent(email)}`);
    expect(byEmail.html).toContain(`event of ${second.body.id}`);
    expect(byEmail.html).not.toContain(`event of ${first.body.id}`);
    // Typed as the name both had: the live one too.
    expect((await page('/events?annotator=again%20person')).html).toContain(`event of ${second.body.id}`);
    // Text several live ones contain: each offered, live ones first, the deleted one said to be.
    const other = await t.json('POST', '/api/annotators', { name: 'Again Other', email: 'other@example.com' });
    const several = await page('/events?annotator=again');
    expect(several.html).toContain('Several annotators match');
    expect([...several.html.matchAll(/annotatorId=(\d+)">([^<]*)</g)].map((m) => [Number(m[1]), m[2]])).toEqual([
      [other.body.id, 'Again Other (other@example.com)'],
      [second.body.id, `Again Person (${email})`],
      [first.body.id, `Again Person (${email}), deleted`],
    ]);
  });
});
