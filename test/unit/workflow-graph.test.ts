import { describe, expect, it } from 'vitest';
import {
  buildGraph,
  Coalesced,
  findChainCycle,
  rejectionRate,
  traceChain,
  workflowRuleIssues,
  type GraphWorkflow,
} from '../../src/domain/workflow-graph.ts';

const parents = (pairs: [number, number | null][]) => new Map(pairs);

describe('findChainCycle', () => {
  it('accepts a null previous and a link to an unrelated chain', () => {
    const p = parents([
      [1, null],
      [2, 1],
      [3, null],
    ]);
    expect(findChainCycle(p, 3, null)).toBeNull();
    expect(findChainCycle(p, 3, 2)).toBeNull();
  });

  it('reports a self-reference as a one-step cycle', () => {
    expect(findChainCycle(parents([[1, null]]), 1, 1)).toEqual([1, 1]);
  });

  it('reports linking a workflow below its own descendant, with the loop path', () => {
    // 1 ← 2 ← 3: making 1's previous 3 closes 1 → 3 → 2 → 1.
    const p = parents([
      [1, null],
      [2, 1],
      [3, 2],
    ]);
    expect(findChainCycle(p, 1, 3)).toEqual([1, 3, 2, 1]);
    expect(findChainCycle(p, 2, 3)).toEqual([2, 3, 2]);
  });

  it('detects a cycle at the end of a long chain and accepts relinking within it that stays acyclic', () => {
    const n = 5_000;
    const p = new Map<number, number | null>([[1, null]]);
    for (let i = 2; i <= n; i++) p.set(i, i - 1);
    const cycle = findChainCycle(p, 1, n);
    expect(cycle).toHaveLength(n + 1);
    expect(cycle![0]).toBe(1);
    expect(cycle![1]).toBe(n);
    expect(cycle!.at(-1)).toBe(1);
    // Moving 4000 under 10 (upstream of it) is fine; moving 10 under 4000 is not.
    expect(findChainCycle(p, 4000, 10)).toBeNull();
    expect(findChainCycle(p, 10, 4000)).not.toBeNull();
  });

  it('ends on data that already loops without involving the workflow', () => {
    const p = parents([
      [1, 2],
      [2, 1],
      [3, null],
    ]);
    expect(findChainCycle(p, 3, 1)).toBeNull();
  });

  it('treats an unknown previous (not in the map) as the top of the chain', () => {
    expect(findChainCycle(parents([]), 1, 99)).toBeNull();
  });
});

const wf = (id: number, previousWorkflowId: number | null) => ({ id, previousWorkflowId });

describe('traceChain', () => {
  // 1 → 2 → 3 → 5
  //        ↘ 4 → 6
  // 2 → 7 (a sibling branch of 3 and 4); 8 is unrelated.
  const nodes = [wf(1, null), wf(2, 1), wf(4, 2), wf(3, 2), wf(5, 3), wf(6, 4), wf(7, 1), wf(8, null)];
  const view = (id: number) =>
    traceChain(nodes, id)!.map((e) => [e.node.id, e.depth, e.relation, e.isTerminal] as const);

  it('traces origin → self → downstream tree in breadth-first order, siblings by id', () => {
    expect(view(2)).toEqual([
      [1, 0, 'ancestor', false],
      [2, 1, 'self', false],
      [3, 2, 'descendant', false],
      [4, 2, 'descendant', false],
      [5, 3, 'descendant', true],
      [6, 3, 'descendant', true],
    ]);
  });

  it('leaves out other branches off an ancestor', () => {
    expect(view(4).map(([id]) => id)).toEqual([1, 2, 4, 6]);
  });

  it('handles an origin with downstream workflows, a terminal and a lone workflow', () => {
    expect(view(1).map(([id]) => id)).toEqual([1, 2, 7, 3, 4, 5, 6]);
    expect(view(6)).toEqual([
      [1, 0, 'ancestor', false],
      [2, 1, 'ancestor', false],
      [4, 2, 'ancestor', false],
      [6, 3, 'self', true],
    ]);
    expect(view(8)).toEqual([[8, 0, 'self', true]]);
  });

  it('returns null for an unknown workflow and stops on looping data', () => {
    expect(traceChain(nodes, 99)).toBeNull();
    const loop = [wf(1, 2), wf(2, 1)];
    expect(traceChain(loop, 1)!.map((e) => e.node.id)).toEqual([2, 1]);
  });

  it('traces a long chain', () => {
    const long = Array.from({ length: 2_000 }, (_, i) => wf(i + 1, i === 0 ? null : i));
    const chain = traceChain(long, 1_000)!;
    expect(chain).toHaveLength(2_000);
    expect(chain[0]!.node.id).toBe(1);
    expect(chain[999]!.relation).toBe('self');
    expect(chain.at(-1)).toMatchObject({ depth: 1_999, isTerminal: true });
  });
});

describe('workflowRuleIssues', () => {
  const base = { previousWorkflowId: null, rejectionMode: 'none' as const, rejectionRouteWorkflowId: null };

  it('accepts the defaults and a rework loop back upstream', () => {
    expect(workflowRuleIssues(base, null)).toEqual([]);
    expect(workflowRuleIssues({ previousWorkflowId: 1, rejectionMode: 'route_to_workflow', rejectionRouteWorkflowId: 1 }, 2)).toEqual([]);
  });

  it('requires a route when rejections are routed', () => {
    expect(workflowRuleIssues({ ...base, rejectionMode: 'route_to_workflow' }, null)).toEqual([
      { field: 'rejectionRouteWorkflowId', message: "is required when rejectionMode is 'route_to_workflow'" },
    ]);
  });

  it('refuses self-links', () => {
    const issues = workflowRuleIssues({ previousWorkflowId: 5, rejectionMode: 'route_to_workflow', rejectionRouteWorkflowId: 5 }, 5);
    expect(issues.map((i) => i.field)).toEqual(['previousWorkflowId', 'rejectionRouteWorkflowId']);
  });
});

describe('rejectionRate', () => {
  it('is 0 without work, a 4-decimal ratio otherwise, capped at 1', () => {
    expect(rejectionRate(0, 0)).toBe(0);
    expect(rejectionRate(3, 0)).toBe(0);
    expect(rejectionRate(6, 50)).toBe(0.12);
    expect(rejectionRate(1, 3)).toBe(0.3333);
    expect(rejectionRate(9, 4)).toBe(1);
  });
});

describe('buildGraph', () => {
  const node = (id: number, over: Partial<GraphWorkflow> = {}): GraphWorkflow => ({
    id,
    name: `W${id}`,
    previousWorkflowId: null,
    roleId: null,
    roleName: null,
    roleColor: null,
    isActive: true,
    rejectionMode: 'none',
    rejectionRouteWorkflowId: null,
    totalAssignments: 0,
    completedAssignments: 0,
    activeAnnotators: 0,
    completedTasks: 0,
    rejections: 0,
    ...over,
  });

  it('builds workflow nodes with stats, archive terminals and chain/rejection edges', () => {
    const graph = buildGraph([
      node(3, { previousWorkflowId: 2, rejectionMode: 'archive' }),
      node(1, {
        roleId: 7,
        roleName: 'labeler',
        roleColor: '#3B82F6',
        totalAssignments: 50,
        completedAssignments: 45,
        activeAnnotators: 5,
        completedTasks: 100,
        rejections: 12,
      }),
      node(2, { previousWorkflowId: 1, rejectionMode: 'route_to_workflow', rejectionRouteWorkflowId: 1, isActive: false }),
    ]);
    expect(graph.nodes).toEqual([
      {
        id: 1,
        name: 'W1',
        type: 'workflow',
        roleId: 7,
        roleName: 'labeler',
        roleColor: '#3B82F6',
        isActive: true,
        rejectionMode: 'none',
        stats: { totalAssignments: 50, completedAssignments: 45, activeAnnotators: 5, rejectionRate: 0.12 },
      },
      expect.objectContaining({ id: 2, type: 'workflow', isActive: false, rejectionMode: 'route_to_workflow' }),
      expect.objectContaining({ id: 3, type: 'workflow', rejectionMode: 'archive' }),
      { id: 'archive-3', name: 'Archive', type: 'terminal' },
    ]);
    expect(graph.edges).toEqual([
      { source: 1, target: 2, type: 'chain', label: 'accept' },
      { source: 2, target: 1, type: 'rejection', label: 'reject' },
      { source: 2, target: 3, type: 'chain', label: 'accept' },
      { source: 3, target: 'archive-3', type: 'rejection', label: 'reject' },
    ]);
  });

  it('draws no rejection edge for mode none (even with a stale route) and skips links to missing workflows', () => {
    const graph = buildGraph([node(1, { rejectionRouteWorkflowId: 2 }), node(2), node(3, { previousWorkflowId: 99 })]);
    expect(graph.edges).toEqual([]);
    expect(graph.nodes.map((n) => n.id)).toEqual([1, 2, 3]);
  });

  it('is empty for no workflows and handles a thousand quickly', () => {
    expect(buildGraph([])).toEqual({ nodes: [], edges: [] });
    const many = Array.from({ length: 1_000 }, (_, i) =>
      node(i + 1, { previousWorkflowId: i === 0 ? null : i, rejectionMode: i % 10 === 0 ? 'archive' : 'none' }),
    );
    const started = performance.now();
    const graph = buildGraph(many);
    expect(performance.now() - started).toBeLessThan(50);
    expect(graph.nodes).toHaveLength(1_100);
    expect(graph.edges).toHaveLength(999 + 100);
  });
});

describe('Coalesced', () => {
  /** A computation per call whose completion the test controls; each resolves with its number. */
  function controlled() {
    const runs: { n: number; finish: () => void; fail: (e: Error) => void }[] = [];
    const c = new Coalesced(
      () =>
        new Promise<number>((resolve, reject) => {
          const n = runs.length + 1;
          runs.push({ n, finish: () => resolve(n), fail: reject });
        }),
    );
    return { c, runs };
  }
  const tick = () => new Promise((r) => setTimeout(r, 0));

  it('computes afresh for calls that do not overlap', async () => {
    const { c, runs } = controlled();
    const a = c.get();
    runs[0]!.finish();
    expect(await a).toBe(1);
    const b = c.get();
    runs[1]!.finish();
    expect(await b).toBe(2);
  });

  it('gives callers that arrive mid-computation one shared, later computation', async () => {
    const { c, runs } = controlled();
    const first = c.get();
    const late = [c.get(), c.get(), c.get()];
    await tick();
    expect(runs).toHaveLength(1); // the next one waits for the running one
    runs[0]!.finish();
    expect(await first).toBe(1);
    await tick();
    expect(runs).toHaveLength(2);
    const later = c.get(); // arrives while run 2 is going: it gets run 3
    runs[1]!.finish();
    expect(await Promise.all(late)).toEqual([2, 2, 2]);
    await tick();
    runs[2]!.finish();
    expect(await later).toBe(3);
    expect(runs).toHaveLength(3);
  });

  it('passes a failure to the callers of that computation only', async () => {
    const { c, runs } = controlled();
    const first = c.get();
    const second = c.get();
    runs[0]!.fail(new Error('db down'));
    await expect(first).rejects.toThrow('db down');
    await tick();
    runs[1]!.finish();
    expect(await second).toBe(2);
    const third = c.get();
    runs[2]!.finish();
    expect(await third).toBe(3);
  });
});
