/**
 * Pure rules of the workflow graph (no I/O).
 *
 * Two kinds of links join workflows:
 * - the chain: `previousWorkflowId` names the upstream workflow whose accepted output feeds this
 *   one. Every workflow has at most one previous, so chains form a forest: they may branch
 *   downstream (several workflows can name the same previous) but must never loop;
 * - rejection routes: `rejectionRouteWorkflowId` sends rejected work to another workflow. These
 *   may point back upstream (that is how rework loops work), so they are not checked for cycles.
 */

export type RejectionMode = 'none' | 'archive' | 'route_to_workflow';

/** The part of a workflow the chain rules need. */
export interface ChainLink {
  id: number;
  previousWorkflowId: number | null;
}

/**
 * Would setting `previousWorkflowId = previous` on workflow `id` make the chain a cycle?
 * `parentOf` maps workflow ids to their current previousWorkflowId (it needs at least the
 * ancestors of `previous`). Returns the cycle as a path that starts and ends at `id`
 * (`[id, previous, ..., id]`), or null when the link is fine.
 */
export function findChainCycle(
  parentOf: ReadonlyMap<number, number | null>,
  id: number,
  previous: number | null,
): number[] | null {
  if (previous === null) return null;
  const path = [id];
  const seen = new Set<number>();
  let cur: number | null | undefined = previous;
  while (cur !== null && cur !== undefined) {
    path.push(cur);
    if (cur === id) return path;
    // A loop that does not pass through `id` already exists (it cannot with the checks here,
    // but the walk must end anyway); it is not the change's fault.
    if (seen.has(cur)) return null;
    seen.add(cur);
    cur = parentOf.get(cur);
  }
  return null;
}

export type ChainRelation = 'ancestor' | 'self' | 'descendant';

export interface ChainEntry<T extends ChainLink> {
  node: T;
  /** Distance from the origin of the chain (the origin is 0). */
  depth: number;
  relation: ChainRelation;
  /** True when no workflow names this one as its previous (an end of the chain). */
  isTerminal: boolean;
}

/**
 * The chain through workflow `id`, from its origin (the ancestor with no previousWorkflowId) to
 * the terminal workflows: the ancestors origin-first, the workflow itself, then every downstream
 * workflow (direct or not) in breadth-first order, siblings by id. Other branches hanging off an
 * ancestor are not part of this workflow's chain and are left out.
 *
 * `nodes` must contain at least the workflow, its ancestors and its descendants; extra nodes are
 * ignored. Returns null when `id` is not among them. Stops safely on corrupt (looping) data.
 */
export function traceChain<T extends ChainLink>(nodes: readonly T[], id: number): ChainEntry<T>[] | null {
  const byId = new Map<number, T>();
  const children = new Map<number, T[]>();
  for (const n of nodes) byId.set(n.id, n);
  for (const n of nodes) {
    if (n.previousWorkflowId === null || !byId.has(n.previousWorkflowId)) continue;
    const list = children.get(n.previousWorkflowId);
    if (list) list.push(n);
    else children.set(n.previousWorkflowId, [n]);
  }
  for (const list of children.values()) list.sort((a, b) => a.id - b.id);

  const self = byId.get(id);
  if (!self) return null;

  const seen = new Set<number>([id]);
  const ancestors: T[] = [];
  for (let cur = self.previousWorkflowId; cur !== null; ) {
    const node = byId.get(cur);
    if (!node || seen.has(cur)) break;
    seen.add(cur);
    ancestors.unshift(node);
    cur = node.previousWorkflowId;
  }

  const isTerminal = (n: T) => (children.get(n.id) ?? []).length === 0;
  const out: ChainEntry<T>[] = ancestors.map((node, depth) => ({
    node,
    depth,
    relation: 'ancestor',
    isTerminal: false,
  }));
  const selfDepth = ancestors.length;
  out.push({ node: self, depth: selfDepth, relation: 'self', isTerminal: isTerminal(self) });

  let level: T[] = [self];
  for (let depth = selfDepth + 1; level.length > 0; depth++) {
    const next: T[] = [];
    for (const parent of level) {
      for (const child of children.get(parent.id) ?? []) {
        if (seen.has(child.id)) continue;
        seen.add(child.id);
        next.push(child);
        out.push({ node: child, depth, relation: 'descendant', isTerminal: isTerminal(child) });
      }
    }
    level = next;
  }
  return out;
}

/** The workflow fields the cross-field rules look at (the merged state for an update). */
export interface WorkflowLinks {
  previousWorkflowId: number | null;
  rejectionMode: RejectionMode;
  rejectionRouteWorkflowId: number | null;
  /** Overlap: where items below consensusThreshold go (issue 13). */
  adjudicationWorkflowId?: number | null;
  consensusThreshold?: number | null;
}

export interface RuleIssue {
  field: keyof WorkflowLinks;
  message: string;
}

/**
 * Cross-field rules on a whole workflow (for an update: after merging the change into the stored
 * row). `id` is the workflow's own id, or null for one that is being created.
 */
export function workflowRuleIssues(w: WorkflowLinks, id: number | null): RuleIssue[] {
  const issues: RuleIssue[] = [];
  if (w.rejectionMode === 'route_to_workflow' && w.rejectionRouteWorkflowId === null) {
    issues.push({
      field: 'rejectionRouteWorkflowId',
      message: "is required when rejectionMode is 'route_to_workflow'",
    });
  }
  if (id !== null && w.previousWorkflowId === id) {
    issues.push({ field: 'previousWorkflowId', message: 'a workflow cannot be its own previous workflow' });
  }
  if (id !== null && w.rejectionRouteWorkflowId === id) {
    issues.push({
      field: 'rejectionRouteWorkflowId',
      message: 'a workflow cannot route rejections to itself (route them to an upstream or rework workflow)',
    });
  }
  if (id !== null && w.adjudicationWorkflowId === id) {
    issues.push({ field: 'adjudicationWorkflowId', message: 'a workflow cannot adjudicate its own items (name an adjudication workflow)' });
  }
  if (w.adjudicationWorkflowId != null && w.consensusThreshold == null) {
    issues.push({ field: 'consensusThreshold', message: 'is required when adjudicationWorkflowId is set (items below it are adjudicated)' });
  }
  return issues;
}

/** Rejections recorded by a workflow's reviewers per task they completed: 0 when none, at most 1. */
export function rejectionRate(rejections: number, completedTasks: number): number {
  if (completedTasks <= 0 || rejections <= 0) return 0;
  return Math.round(Math.min(1, rejections / completedTasks) * 10_000) / 10_000;
}

/** One workflow with its aggregated counters, as the graph query returns it. */
export interface GraphWorkflow extends ChainLink {
  name: string;
  roleId: number | null;
  roleName: string | null;
  roleColor: string | null;
  isActive: boolean;
  rejectionMode: RejectionMode;
  rejectionRouteWorkflowId: number | null;
  /** Overlap: the adjudication workflow (null or absent: none). */
  adjudicationWorkflowId?: number | null;
  totalAssignments: number;
  completedAssignments: number;
  activeAnnotators: number;
  /** Annotated tasks over all of the workflow's assignments. */
  completedTasks: number;
  /** Rejections recorded by the workflow's reviewers (rejections.workflow_id = this workflow). */
  rejections: number;
}

export interface WorkflowNode {
  id: number;
  name: string;
  type: 'workflow';
  roleId: number | null;
  roleName: string | null;
  roleColor: string | null;
  isActive: boolean;
  rejectionMode: RejectionMode;
  stats: { totalAssignments: number; completedAssignments: number; activeAnnotators: number; rejectionRate: number };
}

export interface TerminalNode {
  id: string;
  name: 'Archive';
  type: 'terminal';
}

export interface GraphEdge {
  source: number;
  target: number | string;
  type: 'chain' | 'rejection' | 'adjudication';
  label: 'accept' | 'reject' | 'adjudicate';
}

export const archiveNodeId = (workflowId: number) => `archive-${workflowId}`;

/**
 * The workflow DAG for visualisation. Nodes: every workflow (by id), each followed by its archive
 * terminal when its rejectionMode is 'archive'. Edges, per workflow in id order: the chain edge
 * from its previous workflow (label accept), then its rejection edge (to the route workflow when
 * rejectionMode is 'route_to_workflow', to its archive terminal when 'archive'; label reject),
 * then its adjudication edge (overlap workflows with adjudicationWorkflowId; label adjudicate).
 * Links to workflows missing from `workflows` are left out.
 */
export function buildGraph(workflows: readonly GraphWorkflow[]): { nodes: (WorkflowNode | TerminalNode)[]; edges: GraphEdge[] } {
  const sorted = [...workflows].sort((a, b) => a.id - b.id);
  const ids = new Set(sorted.map((w) => w.id));
  const nodes: (WorkflowNode | TerminalNode)[] = [];
  const edges: GraphEdge[] = [];
  for (const w of sorted) {
    nodes.push({
      id: w.id,
      name: w.name,
      type: 'workflow',
      roleId: w.roleId,
      roleName: w.roleName,
      roleColor: w.roleColor,
      isActive: w.isActive,
      rejectionMode: w.rejectionMode,
      stats: {
        totalAssignments: w.totalAssignments,
        completedAssignments: w.completedAssignments,
        activeAnnotators: w.activeAnnotators,
        rejectionRate: rejectionRate(w.rejections, w.completedTasks),
      },
    });
    if (w.previousWorkflowId !== null && ids.has(w.previousWorkflowId)) {
      edges.push({ source: w.previousWorkflowId, target: w.id, type: 'chain', label: 'accept' });
    }
    if (w.rejectionMode === 'archive') {
      nodes.push({ id: archiveNodeId(w.id), name: 'Archive', type: 'terminal' });
      edges.push({ source: w.id, target: archiveNodeId(w.id), type: 'rejection', label: 'reject' });
    } else if (
      w.rejectionMode === 'route_to_workflow' &&
      w.rejectionRouteWorkflowId !== null &&
      ids.has(w.rejectionRouteWorkflowId)
    ) {
      edges.push({ source: w.id, target: w.rejectionRouteWorkflowId, type: 'rejection', label: 'reject' });
    }
    if (w.adjudicationWorkflowId != null && ids.has(w.adjudicationWorkflowId)) {
      edges.push({ source: w.id, target: w.adjudicationWorkflowId, type: 'adjudication', label: 'adjudicate' });
    }
  }
  return { nodes, edges };
}

/**
 * Concurrent callers share computations without ever seeing state older than their call: a
 * caller that arrives while a computation runs waits for the next one, which starts when the
 * current one ends and serves everyone who arrived meanwhile. At most one runs at a time, so a
 * burst of N graph requests costs two queries, not N competing ones.
 */
export class Coalesced<T> {
  private running: Promise<T> | null = null;
  private queued: Promise<T> | null = null;

  constructor(private readonly compute: () => Promise<T>) {}

  get(): Promise<T> {
    if (!this.running) return this.start();
    this.queued ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return this.start();
      });
    return this.queued;
  }

  private start(): Promise<T> {
    const run: Promise<T> = this.compute().finally(() => {
      if (this.running === run) this.running = null;
    });
    this.running = run;
    return run;
  }
}
