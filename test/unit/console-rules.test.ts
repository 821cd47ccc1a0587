/** The console's pure rules: change topics, bulk-create parsing, setting checks, graph layout, redirects. */
import { describe, expect, it } from 'vitest';
import { changedTopics, CHANGE_TOPICS, type Watermark } from '../../src/domain/fleet-changes.ts';
import { IMPORT_MAX, parseAnnotatorLines } from '../../src/domain/annotator-import.ts';
import { checkSettingValue, KNOWN_SETTING_KEYS, SETTING_SPECS } from '../../src/domain/setting-specs.ts';
import { SETTING_DEFAULTS } from '../../src/settings.ts';
import { buildGraph, type GraphWorkflow } from '../../src/domain/workflow-graph.ts';
import { components, layoutGraph, NODE } from '../../src/console/graph-layout.ts';
import { safeNext } from '../../src/console/index.tsx';
import { likePattern } from '../../src/db/annotators.ts';

describe('changedTopics', () => {
  const mark = (over: Partial<Watermark> = {}): Watermark => ({ ...Object.fromEntries(CHANGE_TOPICS.map((t) => [t, '1'])), ...over }) as Watermark;
  it('lists exactly the topics whose fingerprint moved, in order', () => {
    expect(changedTopics(mark(), mark())).toEqual([]);
    expect(changedTopics(mark(), mark({ batches: '2', annotators: '1:x' }))).toEqual(['annotators', 'batches']);
    expect(changedTopics(mark(), mark({ settings: '0' }))).toEqual(['settings']);
  });
});

describe('parseAnnotatorLines', () => {
  const roles = [
    { id: 1, name: 'Labeler' },
    { id: 7, name: 'Reviewer' },
  ];
  it('reads angle-bracket, comma and bare-email lines, skipping blanks', () => {
    const r = parseAnnotatorLines('Ada Lovelace <ada@example.com>\n\nGrace Hopper, grace@example.com, reviewer\nlin@example.com\n', roles, 1);
    expect(r.problems).toEqual([]);
    expect(r.annotators).toEqual([
      { name: 'Ada Lovelace', email: 'ada@example.com', roleId: 1, line: 1 },
      { name: 'Grace Hopper', email: 'grace@example.com', roleId: 7, line: 3 },
      { name: 'lin', email: 'lin@example.com', roleId: 1, line: 4 },
    ]);
  });

  it('reads CSV with a header in any column order and quoted commas', () => {
    const r = parseAnnotatorLines('email,role,name\nkim@example.com,7,"Kim, Jr."\n', roles);
    expect(r.annotators).toEqual([{ name: 'Kim, Jr.', email: 'kim@example.com', roleId: 7, line: 2 }]);
  });

  it('reports every bad line with its number and returns nothing to create', () => {
    const r = parseAnnotatorLines('Ada, not-an-email\nBo, bo@example.com, Admins\nCy, cy@example.com\nCy again, CY@example.com\n, \n', roles);
    expect(r.annotators).toEqual([]);
    expect(r.problems).toEqual([
      { line: 1, message: '"not-an-email" is not an email address' },
      { line: 2, message: 'no role is called "Admins"' },
      { line: 4, message: 'CY@example.com is already on line 3' },
      { line: 5, message: 'no email address' },
    ]);
  });

  it('refuses empty input and more than the API takes at once', () => {
    expect(parseAnnotatorLines('  \n', roles).problems).toEqual([{ line: 0, message: 'Paste at least one annotator' }]);
    const many = Array.from({ length: IMPORT_MAX + 1 }, (_, i) => `u${i}@example.com`).join('\n');
    expect(parseAnnotatorLines(many, roles).problems).toEqual([{ line: 0, message: `At most ${IMPORT_MAX} annotators at once (${IMPORT_MAX + 1} given)` }]);
  });
});

describe('checkSettingValue', () => {
  it('describes every known setting, and every default passes its own check', () => {
    expect(Object.keys(SETTING_SPECS).sort()).toEqual(Object.keys(SETTING_DEFAULTS).sort());
    for (const key of KNOWN_SETTING_KEYS) expect([key, checkSettingValue(key, SETTING_DEFAULTS[key])]).toEqual([key, null]);
  });

  it('checks type, range, whole numbers, time zones and nullability', () => {
    expect(checkSettingValue('quality.accuracyThreshold', 0.85)).toBeNull();
    expect(checkSettingValue('quality.accuracyThreshold', 1.5)).toBe('must be at most 1');
    expect(checkSettingValue('quality.accuracyThreshold', '0.8')).toBe('must be a number');
    expect(checkSettingValue('quality.minEvaluations', 2.5)).toBe('must be a whole number');
    expect(checkSettingValue('fleet.memoryMb', 64)).toBe('must be at least 128 MB');
    expect(checkSettingValue('fleet.startTimeoutSeconds', 0)).toBe('must be at least 1 s');
    expect(checkSettingValue('quality.pauseBelowThreshold', 'yes')).toBe('must be true or false');
    expect(checkSettingValue('monitoring.timeZone', 'Europe/Berlin')).toBeNull();
    expect(checkSettingValue('monitoring.timeZone', 'Mars/Olympus')).toMatch(/IANA time zone/);
    expect(checkSettingValue('monitoring.timeZone', null)).toBe('must not be empty');
    expect(checkSettingValue('s3.bucket', null)).toBeNull();
    expect(checkSettingValue('s3.bucket', 'My_Bucket')).toMatch(/S3 bucket name/);
    expect(checkSettingValue('custom.anything', { any: ['json'] })).toBeNull();
  });
});

describe('workflow graph layout', () => {
  const wf = (id: number, previousWorkflowId: number | null, mode: GraphWorkflow['rejectionMode'] = 'none', route: number | null = null): GraphWorkflow => ({
    id,
    name: `W${id}`,
    roleId: null,
    roleName: null,
    roleColor: null,
    isActive: true,
    rejectionMode: mode,
    previousWorkflowId,
    rejectionRouteWorkflowId: route,
    totalAssignments: 0,
    completedAssignments: 0,
    activeAnnotators: 0,
    completedTasks: 0,
    rejections: 0,
  });
  // Flow A: 1 → 2 → 3 with 3 rejecting back to 2; flow B: 4 archiving; flow C: 5 alone.
  const graph = buildGraph([wf(1, null), wf(2, 1), wf(3, 2, 'route_to_workflow', 2), wf(4, null, 'archive'), wf(5, null)]);

  it('splits the graph into its flows, largest first', () => {
    expect(components(graph.nodes, graph.edges).map((c) => c.nodes.map((n) => n.id))).toEqual([[1, 2, 3], [4, 'archive-4'], [5]]);
  });

  it('places chains left to right, flows one below the other, without overlaps', () => {
    const l = layoutGraph(graph.nodes, graph.edges);
    const pos = new Map(l.nodes.map((n) => [n.node.id, n]));
    expect(pos.get(1)!.x).toBeLessThan(pos.get(2)!.x);
    expect(pos.get(2)!.x).toBeLessThan(pos.get(3)!.x);
    expect(pos.get('archive-4')!.x).toBeGreaterThan(pos.get(4)!.x);
    expect(pos.get(4)!.y).toBeGreaterThanOrEqual(Math.max(pos.get(1)!.y, pos.get(3)!.y) + NODE.height);
    expect(pos.get(5)!.y).toBeGreaterThan(pos.get(4)!.y);
    for (const a of l.nodes)
      for (const b of l.nodes) {
        if (a === b) continue;
        const apart = a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
        expect(apart, `${a.node.id} overlaps ${b.node.id}`).toBe(true);
      }
    expect(l.edges).toHaveLength(graph.edges.length);
    for (const e of l.edges) expect(e.points.length).toBeGreaterThanOrEqual(2);
    expect(l.width).toBeGreaterThan(3 * NODE.width);
    expect(l.components).toBe(3);
  });

  it('lays out an unchanged flow the same way again (cached by shape)', () => {
    const a = layoutGraph(graph.nodes, graph.edges);
    const b = layoutGraph(graph.nodes, graph.edges);
    expect(b.nodes.map((n) => [n.x, n.y])).toEqual(a.nodes.map((n) => [n.x, n.y]));
  });
});

describe('safeNext', () => {
  it('keeps same-origin paths and turns everything else into /', () => {
    expect(safeNext('/annotators?status=error')).toBe('/annotators?status=error');
    for (const bad of [undefined, '', 'https://evil.example/', '//evil.example/x', '/\\evil.example', 'javascript:alert(1)', '/\t/evil.example', '/\n/evil.example', ' /\\/evil.example']) expect(safeNext(bad)).toBe('/');
  });
});

describe('likePattern', () => {
  it('makes % and _ literal', () => {
    expect(likePattern('a_b%c\\')).toBe('%a\\_b\\%c\\\\%');
  });
});
