import { describe, expect, it } from 'vitest';
import {
  checkExpectedLabels,
  checkLabelingConfig,
  DECLARATION_MESSAGE,
  MAX_CONFIG_XML_LENGTH,
  OBJECT_TAGS,
  type ParsedLabelingConfig,
} from '../../src/domain/labeling-config.ts';
import { jsonValueProblem } from '../../src/domain/json-value.ts';

const IMAGE =
  '<View>\n <Image name="image" value="$image"/>\n <Choices name="label" toName="image">\n <Choice value="cat"/>\n <Choice value="dog"/>\n </Choices>\n</View>';

function ok(xml: string): ParsedLabelingConfig {
  const r = checkLabelingConfig(xml);
  if (!r.ok) throw new Error(`expected a valid config, got: ${r.error.message}`);
  return r.config;
}

function error(xml: string) {
  const r = checkLabelingConfig(xml);
  if (r.ok) throw new Error('expected the config to be rejected');
  return r.error;
}

describe('checkLabelingConfig: valid configs', () => {
  it('accepts the reference example and reports its objects and controls', () => {
    const config = ok(IMAGE);
    expect(config.root).toBe('View');
    expect(config.objects).toEqual([{ tag: 'Image', name: 'image' }]);
    expect([...config.controls.entries()]).toEqual([['label', { tag: 'Choices', toNames: ['image'] }]]);
    expect([...config.names]).toEqual(['image', 'label']);
  });

  it.each(OBJECT_TAGS.map((tag) => [tag]))('counts <%s> as an object tag', (tag) => {
    expect(ok(`<View><${tag} name="obj" value="$data"/></View>`).objects).toEqual([{ tag, name: 'obj' }]);
  });

  it('matches object tags case-insensitively, as Label Studio does', () => {
    expect(ok('<View><IMAGE name="i" value="$i"/><timeseries name="t" value="$t"/></View>').objects.map((o) => o.tag)).toEqual([
      'IMAGE',
      'timeseries',
    ]);
  });

  it('finds object tags nested in layout views', () => {
    expect(ok('<View><View style="display:flex"><View><Video name="v" value="$video"/></View></View></View>').objects).toHaveLength(1);
  });

  it('accepts comments, CDATA, processing instructions and an XML declaration', () => {
    ok('<?xml version="1.0" encoding="UTF-8"?>\n<!-- header -->\n<View><!-- <!DOCTYPE in a comment> --><Text name="t" value="$t"/></View>\n<!-- trailer -->');
    ok('<View><Text name="t" value="$t"/><![CDATA[<!DOCTYPE x [<!ENTITY a "b">]> &a; & < >]]></View>');
    ok('<?xml-stylesheet href="s.css"?><View><Text name="t" value="$t"/><?app hint?></View>');
    ok('<View><Header value="Cats 🐱 and ünïcödé"/><Text name="t" value="$t"/></View>');
  });

  it('decodes predefined entities and character references in attribute values', () => {
    const config = ok('<View><Image name="a&amp;b&#x20;c&#233;&lt;&gt;&quot;&apos;" value="$i"/></View>');
    expect(config.objects[0]!.name).toBe('a&b cé<>"\'');
  });

  it('accepts single-quoted attributes, whitespace around = and in end tags', () => {
    expect(ok("<View ><Image name = 'i' value='$i' ></Image ></View >").objects).toEqual([{ tag: 'Image', name: 'i' }]);
  });

  it('accepts namespace declarations and prefixed child tags, which do not count as object tags', () => {
    const config = ok('<View xmlns:lf="urn:labelfleet"><lf:Image name="x" value="$x"/><Image name="i" value="$i"/></View>');
    expect(config.objects).toEqual([{ tag: 'Image', name: 'i' }]);
    const missing = error('<View xmlns:lf="urn:labelfleet"><lf:Image name="x" value="$x"/></View>');
    expect(missing.message).toMatch(/^must contain at least one Label Studio object tag/);
  });

  it('accepts a control that labels several objects', () => {
    const config = ok('<View><Image name="a" value="$a"/><Image name="b" value="$b"/><Choices name="c" toName="a,b"/></View>');
    expect(config.controls.get('c')!.toNames).toEqual(['a', 'b']);
  });

  it('does not treat Filter as a control', () => {
    const config = ok('<View><Image name="i" value="$i"/><Labels name="l" toName="i"/><Filter name="f" toName="l"/></View>');
    expect([...config.controls.keys()]).toEqual(['l']);
  });

  it('handles deep nesting without recursion', () => {
    const depth = 6000;
    const xml = '<View><Image name="i" value="$i"/>' + '<a>'.repeat(depth) + '</a>'.repeat(depth) + '</View>';
    expect(ok(xml).elements).toHaveLength(depth + 2);
  });

  it('accepts exactly the maximum length', () => {
    const head = '<View><Image name="i" value="$i"/>';
    const xml = head + ' '.repeat(MAX_CONFIG_XML_LENGTH - head.length - '</View>'.length) + '</View>';
    expect(xml.length).toBe(MAX_CONFIG_XML_LENGTH);
    ok(xml);
  });
});

describe('checkLabelingConfig: rejected configs', () => {
  it('rejects empty and whitespace-only input', () => {
    expect(error('').message).toBe('must not be empty');
    expect(error(' \n\t').message).toBe('must not be empty');
  });

  it('rejects input over 50000 characters before parsing it', () => {
    const xml = '<View><Image name="i" value="$i"/>' + '<a>'.repeat(20_000) + '</View>';
    expect(error(xml).message).toBe(`must be at most 50000 characters (got ${xml.length})`);
  });

  it('stays fast on large hostile input', () => {
    const inputs = [
      '<View>' + '<a>'.repeat(16_000) + '</View>',
      '<View ' + 'a="1" '.repeat(8_000) + '/>',
      '<View>' + '<!---->'.repeat(7_000) + '</View>',
      '<View a="' + 'x'.repeat(49_000),
      '<View>' + '&amp;'.repeat(9_000) + '</View>',
    ];
    for (const xml of inputs) {
      const started = performance.now();
      expect(checkLabelingConfig(xml).ok).toBe(false);
      expect(performance.now() - started).toBeLessThan(1_000);
    }
  });

  it.each([
    ['text only', 'hello', /^malformed XML: text before the root element/],
    ['unclosed root', '<View><Image name="i" value="$i"/>', /^malformed XML: <View> is never closed$/],
    ['mismatched end tag', '<View><Image name="i" value="$i"></View>', /^malformed XML: closing tag <\/View> does not match <Image> \(opened at line 1, column 7\)$/],
    ['stray end tag', '<View><Image name="i" value="$i"/></View></View>', /^malformed XML: closing tag <\/View> has no matching start tag$/],
    ['two roots', '<View><Image name="i" value="$i"/></View><View/>', /^malformed XML: more than one root element/],
    ['text after root', '<View><Image name="i" value="$i"/></View>trailing', /^malformed XML: text after the root element$/],
    ['unquoted attribute', '<View><Image name=i value="$i"/></View>', /^malformed XML/],
    ['attribute without value', '<View><Image name="i" value="$i" hidden/></View>', /^malformed XML/],
    ['duplicate attribute', '<View><Image name="i" name="j" value="$i"/></View>', /^malformed XML: Attribute 'name' is repeated/],
    ['< in an attribute', '<View><Image name="a<b" value="$i"/></View>', /^malformed XML: '<' is not allowed in an attribute value/],
    ['bare &', '<View><Text name="t" value="$t"/>a & b</View>', /^malformed XML: '&' must be escaped/],
    ['undefined entity', '<View><Text name="t" value="&text;"/></View>', /^malformed XML: undefined entity &text;/],
    ['HTML entity', '<View><Text name="t" value="$t"/>&nbsp;</View>', /^malformed XML: undefined entity &nbsp;/],
    ['illegal character reference', '<View><Text name="t" value="&#0;"/></View>', /^malformed XML: character reference &#0; is not a legal XML character/],
    ['control character', '<View>\u0001<Text name="t" value="$t"/></View>', /^malformed XML: character U\+0001 is not allowed in XML$/],
    ['NUL', '<View><Text name="t" value="$t\u0000"/></View>', /^malformed XML: character U\+0000 is not allowed/],
    ['unpaired surrogate', '<View><Text name="t" value="\uD83D"/></View>', /^malformed XML: character U\+D83D is not allowed/],
    ['unclosed comment', '<View><Text name="t" value="$t"/><!-- oops</View>', /^malformed XML: unclosed comment$/],
    ['double hyphen in comment', '<View><Text name="t" value="$t"/><!-- a -- b --></View>', /^malformed XML: '--' is not allowed inside a comment$/],
    ['unclosed CDATA', '<View><Text name="t" value="$t"/><![CDATA[ x </View>', /^malformed XML: unclosed CDATA section$/],
    ['CDATA outside the root', '<![CDATA[x]]><View><Text name="t" value="$t"/></View>', /^malformed XML: CDATA section outside the root element$/],
    [']]> in text', '<View><Text name="t" value="$t"/>a ]]> b</View>', /^malformed XML: ']]>' is not allowed in text$/],
    ['late XML declaration', '<View><?xml version="1.0"?><Text name="t" value="$t"/></View>', /^malformed XML: the XML declaration/],
    ['unclosed tag', '<View><Text name="t" value="$t"', /^malformed XML: unclosed tag$/],
    ['nameless tag', '<View>< Text name="t" value="$t"/></View>', /^malformed XML: tag without a name$/],
    ['wrong root', '<Config><Image name="i" value="$i"/></Config>', /^root element must be <View> \(found <Config>\)$/],
    ['lower-case root', '<view><Image name="i" value="$i"/></view>', /^root element must be <View> \(found <view>\)$/],
    ['prefixed root', '<x:View xmlns:x="urn:x"><Image name="i" value="$i"/></x:View>', /^root element must be <View> \(found <x:View>\)$/],
    ['no object tag', '<View><Header value="Pick one"/><TextArea name="answer" toName="answer2"/><View name="answer2"/></View>', /^must contain at least one Label Studio object tag \(Audio, .*Video\)$/],
    ['empty View', '<View/>', /^must contain at least one Label Studio object tag/],
    ['duplicate names', '<View><Image name="x" value="$a"/><Choices name="x" toName="x"/></View>', /^name "x" is used by more than one tag \(names must be unique\)$/],
    ['dangling toName', '<View><Image name="image" value="$image"/><Choices name="label" toName="img"/></View>', /^<Choices name="label"> has toName="img", but no tag is named "img"$/],
    ['one dangling name of several', '<View><Image name="a" value="$a"/><Choices name="c" toName="a,b"/></View>', /^<Choices name="c"> has toName="a,b", but no tag is named "b"$/],
  ])('rejects %s', (_label, xml, message) => {
    expect(error(xml).message).toMatch(message);
  });

  it('reports the line and column of syntax errors', () => {
    expect(error('<View>\n  <Image name="i" value="$i">\n</View>')).toEqual({
      message: 'malformed XML: closing tag </View> does not match <Image> (opened at line 2, column 3)',
      line: 3,
      column: 1,
    });
    expect(error('<View>\n <Text name="t" value="$t"/>\n x &foo; y\n</View>')).toMatchObject({ line: 3, column: 4 });
  });
});

describe('checkLabelingConfig: DTDs and entities are refused, never expanded', () => {
  const attacks: [string, string][] = [
    [
      'billion laughs',
      '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n' +
        Array.from({ length: 9 }, (_, i) => ` <!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`).join('\n') +
        '\n]>\n<View><Text name="t" value="&lol9;"/></View>',
    ],
    ['quadratic blowup', `<!DOCTYPE v [<!ENTITY a "${'x'.repeat(30_000)}">]><View><Text name="t" value="$t"/>${'&a;'.repeat(3_000)}</View>`],
    ['external entity (file)', '<!DOCTYPE View [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><View><Text name="t" value="$t"/>&xxe;</View>'],
    ['external entity (URL)', '<!DOCTYPE View [<!ENTITY xxe SYSTEM "http://127.0.0.1:1/x">]><View><Text name="t" value="&xxe;"/></View>'],
    ['parameter entity', '<!DOCTYPE View [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p.dtd"> %p;]><View><Text name="t" value="$t"/></View>'],
    ['external DTD', '<!DOCTYPE View SYSTEM "http://127.0.0.1:1/evil.dtd"><View><Image name="i" value="$i"/></View>'],
    ['public DTD', '<!DOCTYPE View PUBLIC "-//X//Y" "http://127.0.0.1:1/y.dtd"><View><Image name="i" value="$i"/></View>'],
    ['lower-case doctype', '<!doctype View><View><Image name="i" value="$i"/></View>'],
    ['ENTITY inside the root', '<View><!ENTITY x "y"><Image name="i" value="$i"/></View>'],
    ['ELEMENT declaration', '<View><!ELEMENT View ANY><Image name="i" value="$i"/></View>'],
    ['harmless-looking empty DOCTYPE', '<!DOCTYPE View><View><Image name="i" value="$i"/></View>'],
  ];

  it.each(attacks)('refuses %s with an explanation', (_label, xml) => {
    const started = performance.now();
    const e = error(xml);
    expect(e.message).toBe(DECLARATION_MESSAGE);
    expect(e.message).toMatch(/DOCTYPE and ENTITY declarations are not allowed: .*entity-expansion and external-entity/);
    expect(e.line).toBeGreaterThanOrEqual(1);
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('refuses a declaration even when the rest of the document is also broken', () => {
    expect(error('<!DOCTYPE x [<!ENTITY a "b">]><Foo><bar></Foo>').message).toBe(DECLARATION_MESSAGE);
  });
});

describe('checkExpectedLabels', () => {
  const config = ok(
    '<View><Image name="image" value="$image"/><Image name="thumb" value="$thumb"/>' +
      '<Choices name="label" toName="image"><Choice value="cat"/></Choices>' +
      '<RectangleLabels name="box" toName="image,thumb"><Label value="cat"/></RectangleLabels></View>',
  );

  it('accepts results whose from_name is a control and to_name a tag it labels', () => {
    expect(
      checkExpectedLabels(config, [
        { from_name: 'label', to_name: 'image', type: 'choices' },
        { from_name: 'box', to_name: 'thumb', type: 'rectanglelabels' },
        { from_name: 'box', to_name: 'image,thumb', type: 'rectanglelabels' },
      ]),
    ).toEqual([]);
  });

  it('skips relation results, which carry no names', () => {
    expect(checkExpectedLabels(config, [{ type: 'relation' }])).toEqual([]);
  });

  it('reports an unknown from_name with the controls that exist', () => {
    expect(checkExpectedLabels(config, [{ from_name: 'label', to_name: 'image', type: 'choices' }, { from_name: 'species', to_name: 'image', type: 'choices' }])).toEqual([
      { path: [1, 'from_name'], message: 'from_name "species" is not a control tag of the labeling config (controls: "label", "box")' },
    ]);
  });

  it('does not accept an object tag name as from_name', () => {
    expect(checkExpectedLabels(config, [{ from_name: 'image', to_name: 'image', type: 'choices' }])).toHaveLength(1);
  });

  it('reports a to_name the control does not label', () => {
    expect(checkExpectedLabels(config, [{ from_name: 'label', to_name: 'thumb', type: 'choices' }])).toEqual([
      { path: [0, 'to_name'], message: 'to_name "thumb" is not labeled by control "label" (its toName: "image")' },
    ]);
  });

  it('reports every bad result', () => {
    const issues = checkExpectedLabels(config, [
      { from_name: 'x', to_name: 'image', type: 'choices' },
      { from_name: 'label', to_name: 'image', type: 'choices' },
      { from_name: 'label', to_name: 'y', type: 'choices' },
    ]);
    expect(issues.map((i) => i.path)).toEqual([
      [0, 'from_name'],
      [2, 'to_name'],
    ]);
  });
});

describe('jsonValueProblem', () => {
  const limits = { maxDepth: 3, maxLength: 50 };

  it('accepts ordinary JSON values', () => {
    for (const v of [null, true, 0, -1.5, '', 'ünï 🐱', [], {}, [1, [2, [3]]], { a: { b: { c: 1 } } }]) {
      expect(jsonValueProblem(v, limits), JSON.stringify(v)).toBeNull();
    }
  });

  it('rejects what PostgreSQL jsonb cannot store', () => {
    expect(jsonValueProblem('a\u0000b', limits)).toMatch(/U\+0000/);
    expect(jsonValueProblem({ ['k\u0000']: 1 }, limits)).toMatch(/object keys must not contain U\+0000/);
    expect(jsonValueProblem(['\uD800'], limits)).toMatch(/unpaired UTF-16 surrogates/);
    expect(jsonValueProblem('\uDC00x', limits)).toMatch(/unpaired/);
    expect(jsonValueProblem(Infinity, limits)).toMatch(/finite/);
    expect(jsonValueProblem([Number.NaN], limits)).toMatch(/finite/);
  });

  it('limits depth and serialized length', () => {
    expect(jsonValueProblem([[[1]]], limits)).toBeNull();
    expect(jsonValueProblem([[[[1]]]], limits)).toBe('must not be nested more than 3 levels deep');
    expect(jsonValueProblem({ a: { b: { c: {} } } }, limits)).toMatch(/nested more than 3/);
    expect(jsonValueProblem('x'.repeat(48), limits)).toBeNull();
    expect(jsonValueProblem('x'.repeat(49), limits)).toBe('must be at most 50 characters as JSON (got 51)');
  });

  it('checks very deep values without overflowing the stack', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(jsonValueProblem(deep, { maxDepth: 32, maxLength: 1e9 })).toMatch(/nested more than 32/);
  });
});
