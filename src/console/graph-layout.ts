/**
 * Lays out the workflow graph (GET /api/workflows/graph's nodes and edges) for drawing as SVG on
 * the server, with dagre (@dagrejs/dagre: layered "Sugiyama" layout, as Graphviz dot).
 *
 * The graph is split into its connected components — independent flows of work — each laid out
 * left to right on its own and stacked top to bottom, largest first. A component's layout depends
 * only on its shape (node ids and kinds, edges), not on the counters shown in the nodes, so it is
 * cached by that shape: the page re-lays out only a flow whose links changed.
 */
import dagre from '@dagrejs/dagre';
import type { GraphEdge, TerminalNode, WorkflowNode } from '../domain/workflow-graph.ts';

export const NODE = { width: 220, height: 76 };
export const ARCHIVE = { width: 96, height: 40 };
const GAP = 36;
const MARGIN = 16;

export type GraphNode = WorkflowNode | TerminalNode;

export interface PlacedNode {
  node: GraphNode;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedEdge {
  edge: GraphEdge;
  points: { x: number; y: number }[];
  label: { x: number; y: number };
}

export interface GraphLayout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  edges: PlacedEdge[];
  /** Flows drawn. */
  components: number;
  /** Flows in the whole graph (more than drawn when a window was asked for). */
  totalComponents: number;
}

interface ComponentLayout {
  width: number;
  height: number;
  positions: Map<string, { x: number; y: number }>;
  edgePoints: { x: number; y: number }[][];
  labels: { x: number; y: number }[];
}

const key = (id: number | string) => String(id);
const CACHE_MAX = 2_000;
const cache = new Map<string, ComponentLayout>();

/** Connected components (ignoring edge direction), each with its nodes and edges, largest first. */
export function components(nodes: readonly GraphNode[], edges: readonly GraphEdge[]) {
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    while (parent.get(r) !== r) r = parent.get(r)!;
    for (let c = x; c !== r; ) {
      const next = parent.get(c)!;
      parent.set(c, r);
      c = next;
    }
    return r;
  };
  for (const n of nodes) parent.set(key(n.id), key(n.id));
  const present = edges.filter((e) => parent.has(key(e.source)) && parent.has(key(e.target)));
  for (const e of present) {
    const a = find(key(e.source));
    const b = find(key(e.target));
    if (a !== b) parent.set(a, b);
  }
  const groups = new Map<string, { nodes: GraphNode[]; edges: GraphEdge[] }>();
  for (const n of nodes) {
    const root = find(key(n.id));
    if (!groups.has(root)) groups.set(root, { nodes: [], edges: [] });
    groups.get(root)!.nodes.push(n);
  }
  for (const e of present) groups.get(find(key(e.source)))!.edges.push(e);
  return [...groups.values()].sort((a, b) => b.nodes.length - a.nodes.length || Number(firstId(a.nodes)) - Number(firstId(b.nodes)));
}

const firstId = (nodes: GraphNode[]) => (typeof nodes[0]!.id === 'number' ? nodes[0]!.id : 0);

function layoutComponent(nodes: GraphNode[], edges: GraphEdge[]): ComponentLayout {
  const shape = `${nodes.map((n) => `${n.id}:${n.type}`).join(',')}|${edges.map((e) => `${e.source}>${e.target}:${e.type}`).join(',')}`;
  const hit = cache.get(shape);
  if (hit) {
    // Recently used to the back: the map's order is the eviction order.
    cache.delete(shape);
    cache.set(shape, hit);
    return hit;
  }
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'LR', nodesep: 28, ranksep: 70, edgesep: 16, marginx: MARGIN, marginy: MARGIN });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(key(n.id), n.type === 'terminal' ? { ...ARCHIVE } : { ...NODE });
  edges.forEach((e, i) => {
    // Rejection routes may point back upstream; a lighter weight lets the chain decide the ranks.
    g.setEdge(key(e.source), key(e.target), { width: 46, height: 16, labelpos: 'c', weight: e.type === 'chain' ? 4 : 1, minlen: 1 }, `e${i}`);
  });
  dagre.layout(g);
  const positions = new Map<string, { x: number; y: number }>();
  for (const n of nodes) {
    const p = g.node(key(n.id));
    positions.set(key(n.id), { x: p.x!, y: p.y! });
  }
  const edgePoints: { x: number; y: number }[][] = [];
  const labels: { x: number; y: number }[] = [];
  edges.forEach((e, i) => {
    const label = g.edge({ v: key(e.source), w: key(e.target), name: `e${i}` });
    edgePoints.push((label.points ?? []).map((pt: { x: number; y: number }) => ({ x: pt.x, y: pt.y })));
    labels.push({ x: label.x ?? 0, y: label.y ?? 0 });
  });
  const graph = g.graph();
  const out = { width: graph.width ?? 0, height: graph.height ?? 0, positions, edgePoints, labels };
  cache.set(shape, out);
  if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value!);
  return out;
}

/**
 * Places every node and edge of the flows in `window` (default: all), largest flow first;
 * coordinates are the SVG's user units (node x, y = top-left corner).
 */
export function layoutGraph(nodes: readonly GraphNode[], edges: readonly GraphEdge[], window?: { offset: number; limit: number }): GraphLayout {
  const placedNodes: PlacedNode[] = [];
  const placedEdges: PlacedEdge[] = [];
  let width = 0;
  let top = 0;
  const all = components(nodes, edges);
  const parts = window ? all.slice(window.offset, window.offset + window.limit) : all;
  for (const part of parts) {
    const l = layoutComponent(part.nodes, part.edges);
    for (const n of part.nodes) {
      const size = n.type === 'terminal' ? ARCHIVE : NODE;
      const p = l.positions.get(key(n.id))!;
      placedNodes.push({ node: n, x: p.x - size.width / 2, y: top + p.y - size.height / 2, ...size });
    }
    part.edges.forEach((e, i) => {
      placedEdges.push({
        edge: e,
        points: l.edgePoints[i]!.map((pt) => ({ x: pt.x, y: top + pt.y })),
        label: { x: l.labels[i]!.x, y: top + l.labels[i]!.y },
      });
    });
    width = Math.max(width, l.width);
    top += l.height + GAP;
  }
  return {
    width: Math.ceil(width),
    height: Math.max(0, Math.ceil(top - GAP)),
    nodes: placedNodes,
    edges: placedEdges,
    components: parts.length,
    totalComponents: all.length,
  };
}
