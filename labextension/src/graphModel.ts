/**
 * The graph model behind the graph viewer: the `application/vnd.direng.graph+json` payload
 * (the REST API's GraphResult, plus an optional `code` map node id → excerpt and the nodes'
 * positions), decoding it from the compact rows a notebook output holds, and merging an
 * expansion (`GET /direng/api/graph/{id}?depth=1`) into it without duplicates and within a
 * node cap. Pure: no DOM, no JupyterLab; every function returns new objects.
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
  /** Where the kernel's layout put the node (the static SVG's coordinates), when it did. */
  x?: number;
  y?: number;
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

/**
 * The fields of a node row, in order (`NODE_ROW` in `direng_kernel/widgets/graph.py`), then
 * `cell` for a notebook symbol.
 */
export const NODE_ROW = ['id', 'name', 'kind', 'path', 'start_line', 'end_line', 'signature', 'importance', 'x', 'y'] as const;

function parseJSON(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function decodeNode(row: unknown): GraphNode | null {
  const value = typeof row === 'string' ? parseJSON(row) : row;
  let n: Record<string, unknown>;
  if (Array.isArray(value)) {
    n = {};
    NODE_ROW.forEach((key, i) => (n[key] = value[i]));
    if (value.length > NODE_ROW.length) {
      n.cell = value[NODE_ROW.length];
    }
  } else if (value && typeof value === 'object') {
    n = { ...(value as Record<string, unknown>) };
  } else {
    return null;
  }
  if (typeof n.id !== 'string') {
    return null;
  }
  for (const key of ['x', 'y', 'importance', 'cell']) {
    if (n[key] === null || n[key] === undefined || (key === 'importance' && !n[key])) {
      delete n[key];
    }
  }
  if (!(Number.isFinite(n.x) && Number.isFinite(n.y))) {
    delete n.x;
    delete n.y;
  }
  return n as unknown as GraphNode;
}

function decodeEdge(row: unknown, ids: string[]): GraphEdge | null {
  const value = typeof row === 'string' ? parseJSON(row) : row;
  if (Array.isArray(value)) {
    // [source, target, kind, line(, false)]: the ends are indexes into the nodes
    const [source, target, kind, line, resolved] = value;
    const end = (v: unknown) => (typeof v === 'number' ? ids[v] : v);
    const e = {
      source: end(source),
      target: end(target),
      kind: kind as string,
      resolved: resolved !== false,
      line: (line ?? null) as number | null
    };
    return typeof e.source === 'string' && typeof e.target === 'string' ? (e as GraphEdge) : null;
  }
  if (value && typeof value === 'object') {
    const e = value as GraphEdge;
    return typeof e.source === 'string' && typeof e.target === 'string' ? { ...e } : null;
  }
  return null;
}

/**
 * The graph in a MIME value, or null when it holds none. Reads what the kernel writes (each
 * node and edge one compact JSON array as text — a node `[id, name, kind, path, start_line,
 * end_line, signature, importance, x, y(, cell)]`, an edge `[source, target, kind, line(,
 * false)]` with `source` and `target` indexes into `nodes` — because nbformat saves every JSON
 * value on a line of its own), notebooks saved before that (objects with ids, as the REST API
 * sends), and either as one JSON text.
 */
export function decodeGraph(value: unknown): GraphData | null {
  const v = (typeof value === 'string' ? parseJSON(value) : value) as Record<string, unknown> | null | undefined;
  if (!v || typeof v !== 'object' || typeof v.center !== 'string' || !Array.isArray(v.nodes) || !Array.isArray(v.edges)) {
    return null;
  }
  const nodes: GraphNode[] = [];
  for (const row of v.nodes) {
    const n = decodeNode(row);
    if (!n) {
      return null;
    }
    nodes.push(n);
  }
  const ids = nodes.map(n => n.id);
  const edges: GraphEdge[] = [];
  for (const row of v.edges) {
    const e = decodeEdge(row, ids);
    if (!e) {
      return null;
    }
    edges.push(e);
  }
  const code = v.code && typeof v.code === 'object' ? (v.code as Record<string, string>) : {};
  return { center: v.center, nodes, edges, truncated: !!v.truncated, code };
}

/** Whether every node has a position (the kernel laid the graph out: no layout needed here). */
export function hasPositions(g: Pick<GraphData, 'nodes'>): boolean {
  return g.nodes.length > 0 && g.nodes.every(n => Number.isFinite(n.x) && Number.isFinite(n.y));
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
