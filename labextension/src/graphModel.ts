/**
 * The graph model behind the graph viewer: the `application/vnd.direng.graph+json` payload
 * (the REST API's GraphResult, plus an optional `code` map node id → excerpt), and merging
 * an expansion (`GET /direng/api/graph/{id}?depth=1`) into it without duplicates and within
 * a node cap. Pure: no DOM, no JupyterLab; every function returns new objects.
 */

export const GRAPH_MIME_TYPE = 'application/vnd.direng.graph+json';

export interface GraphNode {
  id: string;
  name: string;
  kind: string;
  path?: string | null;
  start_line?: number | null;
  end_line?: number | null;
  signature?: string;
  importance?: number;
  /** A notebook symbol's cell (0-based); its lines are within that cell. */
  cell?: number | null;
}

export interface GraphEdge {
  source: string;
  target: string;
  kind: string;
  resolved?: boolean;
  line?: number | null;
}

export interface GraphData {
  center: string;
  nodes: GraphNode[];
  edges: GraphEdge[];
  truncated?: boolean;
  code?: Record<string, string>;
}

export interface MergeResult {
  graph: GraphData;
  addedNodes: GraphNode[];
  addedEdges: GraphEdge[];
  /** Nodes of the expansion left out because of the cap. */
  dropped: number;
}

/** One key per distinct edge: an edge is the same when source, target and kind are. */
export function edgeKey(e: Pick<GraphEdge, 'source' | 'target' | 'kind'>): string {
  return JSON.stringify([e.source, e.target, e.kind]);
}

/** Whether `value` has the shape of the MIME payload (enough to render it). */
export function isGraphData(value: unknown): value is GraphData {
  if (!value || typeof value !== 'object') {
    return false;
  }
  const v = value as Record<string, unknown>;
  return (
    typeof v.center === 'string' &&
    Array.isArray(v.nodes) &&
    Array.isArray(v.edges) &&
    v.nodes.every(n => !!n && typeof n === 'object' && typeof (n as GraphNode).id === 'string') &&
    v.edges.every(
      e =>
        !!e &&
        typeof e === 'object' &&
        typeof (e as GraphEdge).source === 'string' &&
        typeof (e as GraphEdge).target === 'string'
    )
  );
}

function withDefaults(n: GraphNode): GraphNode {
  return { ...n, name: n.name || n.id, kind: n.kind || 'symbol' };
}

/**
 * A payload made safe to draw: nodes de-duplicated (the center first), at most `cap` of them,
 * edges de-duplicated and only between kept nodes. `truncated` when anything was cut here or
 * by the server.
 */
export function normalizeGraph(data: GraphData, cap: number = Infinity): GraphData {
  const limit = Math.max(1, Math.floor(cap));
  const byId = new Map<string, GraphNode>();
  const center = data.nodes.find(n => n.id === data.center);
  const ordered = center ? [center, ...data.nodes.filter(n => n !== center)] : data.nodes;
  let dropped = 0;
  for (const n of ordered) {
    if (byId.has(n.id)) {
      continue;
    }
    if (byId.size >= limit) {
      dropped++;
      continue;
    }
    byId.set(n.id, withDefaults(n));
  }
  const edges = new Map<string, GraphEdge>();
  for (const e of data.edges) {
    if (byId.has(e.source) && byId.has(e.target) && !edges.has(edgeKey(e))) {
      edges.set(edgeKey(e), { ...e, kind: e.kind || 'references' });
    }
  }
  const code: Record<string, string> = {};
  for (const [id, text] of Object.entries(data.code ?? {})) {
    if (byId.has(id)) {
      code[id] = text;
    }
  }
  return {
    center: data.center,
    nodes: [...byId.values()],
    edges: [...edges.values()],
    truncated: !!data.truncated || dropped > 0,
    code
  };
}

/**
 * `base` with `expansion` merged in: new nodes appended until the graph holds `cap` nodes,
 * new edges whose two ends are in the merged graph, code excerpts of kept nodes. Nodes and
 * edges already in `base` are never duplicated or changed; the center stays `base`'s.
 */
export function mergeGraph(base: GraphData, expansion: GraphData, cap: number = Infinity): MergeResult {
  const limit = Math.max(1, Math.floor(cap));
  const ids = new Set(base.nodes.map(n => n.id));
  const addedNodes: GraphNode[] = [];
  let dropped = 0;
  for (const n of expansion.nodes) {
    if (ids.has(n.id)) {
      continue;
    }
    if (ids.size >= limit) {
      dropped++;
      continue;
    }
    ids.add(n.id);
    addedNodes.push(withDefaults(n));
  }
  const keys = new Set(base.edges.map(edgeKey));
  const addedEdges: GraphEdge[] = [];
  for (const e of expansion.edges) {
    const key = edgeKey(e);
    if (!keys.has(key) && ids.has(e.source) && ids.has(e.target)) {
      keys.add(key);
      addedEdges.push({ ...e, kind: e.kind || 'references' });
    }
  }
  const code: Record<string, string> = { ...(base.code ?? {}) };
  for (const [id, text] of Object.entries(expansion.code ?? {})) {
    if (ids.has(id) && !(id in code)) {
      code[id] = text;
    }
  }
  return {
    graph: {
      center: base.center,
      nodes: [...base.nodes, ...addedNodes],
      edges: [...base.edges, ...addedEdges],
      truncated: !!base.truncated || !!expansion.truncated || dropped > 0,
      code
    },
    addedNodes,
    addedEdges,
    dropped
  };
}

/** `path:start-end` of a node, or null for nodes without a location (modules, unresolved). */
export function nodeLocation(n: GraphNode): string | null {
  if (!n.path || !n.start_line) {
    return null;
  }
  return `${n.path}:${n.start_line}-${n.end_line || n.start_line}`;
}
