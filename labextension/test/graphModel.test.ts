import { describe, expect, it } from 'vitest';

import {
  GraphData,
  GraphEdge,
  GraphNode,
  decodeGraph,
  edgeKey,
  hasPositions,
  isGraphData,
  mergeGraph,
  nodeLocation,
  normalizeGraph
} from '../src/graphModel';
// Written by tests/test_graph_widget.py (which checks it is what the kernel writes today).
import fixture from './fixtures/graph-output.json';

const node = (id: string, extra: Partial<GraphNode> = {}): GraphNode => ({
  id,
  name: id.split('::').pop()!,
  kind: 'function',
  path: 'shop/payment.py',
  start_line: 1,
  end_line: 2,
  signature: `def ${id}()`,
  ...extra
});
const edge = (source: string, target: string, kind = 'calls'): GraphEdge => ({ source, target, kind, resolved: true });

const base: GraphData = {
  center: 'a',
  nodes: [node('a'), node('b')],
  edges: [edge('a', 'b')],
  truncated: false,
  code: { a: 'def a(): b()' }
};

describe('mergeGraph', () => {
  it('adds new nodes and edges once, keeping what was there', () => {
    const expansion: GraphData = {
      center: 'b',
      nodes: [node('b', { name: 'changed' }), node('c'), node('c')],
      edges: [edge('a', 'b'), edge('b', 'c'), edge('b', 'c'), edge('b', 'c', 'references')],
      code: { b: 'def b(): c()', c: 'def c(): pass', a: 'other' }
    };
    const { graph, addedNodes, addedEdges, dropped } = mergeGraph(base, expansion);
    expect(graph.center).toBe('a');
    expect(graph.nodes.map(n => n.id)).toEqual(['a', 'b', 'c']);
    expect(graph.nodes[1].name).toBe('b'); // an existing node is never replaced
    expect(addedNodes.map(n => n.id)).toEqual(['c']);
    expect(graph.edges.map(edgeKey)).toEqual([
      edgeKey(edge('a', 'b')),
      edgeKey(edge('b', 'c')),
      edgeKey(edge('b', 'c', 'references'))
    ]);
    expect(addedEdges).toHaveLength(2);
    expect(dropped).toBe(0);
    expect(graph.truncated).toBe(false);
    expect(graph.code).toEqual({ a: 'def a(): b()', b: 'def b(): c()', c: 'def c(): pass' });
  });

  it('is idempotent: merging the same expansion twice adds nothing', () => {
    const expansion: GraphData = { center: 'b', nodes: [node('c')], edges: [edge('b', 'c')] };
    const once = mergeGraph(base, expansion).graph;
    const twice = mergeGraph(once, expansion);
    expect(twice.addedNodes).toEqual([]);
    expect(twice.addedEdges).toEqual([]);
    expect(twice.graph.nodes).toHaveLength(3);
    expect(twice.graph.edges).toHaveLength(2);
  });

  it('stops at the node cap, drops edges to left-out nodes and says truncated', () => {
    const expansion: GraphData = {
      center: 'b',
      nodes: [node('c'), node('d'), node('e')],
      edges: [edge('b', 'c'), edge('b', 'd'), edge('d', 'e'), edge('c', 'a')]
    };
    const { graph, addedNodes, dropped } = mergeGraph(base, expansion, 3);
    expect(graph.nodes.map(n => n.id)).toEqual(['a', 'b', 'c']);
    expect(addedNodes.map(n => n.id)).toEqual(['c']);
    expect(dropped).toBe(2);
    expect(graph.edges.map(e => `${e.source}>${e.target}`)).toEqual(['a>b', 'b>c', 'c>a']);
    expect(graph.truncated).toBe(true);
  });

  it('still links existing nodes when the graph is full', () => {
    const full = mergeGraph(base, { center: 'b', nodes: [node('x')], edges: [edge('b', 'a', 'inherits')] }, 2);
    expect(full.graph.nodes).toHaveLength(2);
    expect(full.addedEdges.map(e => e.kind)).toEqual(['inherits']);
    expect(full.dropped).toBe(1);
  });

  it('keeps the server truncation flag', () => {
    const { graph } = mergeGraph(base, { center: 'b', nodes: [], edges: [], truncated: true });
    expect(graph.truncated).toBe(true);
  });

  it('does not modify its inputs', () => {
    const snapshot = JSON.stringify(base);
    mergeGraph(base, { center: 'b', nodes: [node('c')], edges: [edge('b', 'c')], code: { c: 'x' } });
    expect(JSON.stringify(base)).toBe(snapshot);
  });
});

describe('normalizeGraph', () => {
  it('de-duplicates, puts the center first, caps and removes dangling edges', () => {
    const data: GraphData = {
      center: 'c',
      nodes: [node('a'), node('b'), node('c'), node('a')],
      edges: [edge('a', 'c'), edge('a', 'c'), edge('c', 'b'), edge('c', 'zz')],
      code: { a: '1', b: '2', zz: '3' }
    };
    const g = normalizeGraph(data, 2);
    expect(g.nodes.map(n => n.id)).toEqual(['c', 'a']);
    expect(g.edges.map(e => `${e.source}>${e.target}`)).toEqual(['a>c']);
    expect(g.truncated).toBe(true);
    expect(g.code).toEqual({ a: '1' });
  });

  it('fills missing names and kinds', () => {
    const g = normalizeGraph({ center: 'm', nodes: [{ id: 'module:os' } as GraphNode], edges: [] });
    expect(g.nodes[0]).toMatchObject({ id: 'module:os', name: 'module:os', kind: 'symbol' });
    expect(g.truncated).toBe(false);
  });
});

describe('isGraphData / nodeLocation', () => {
  it('checks the payload shape', () => {
    expect(isGraphData(base)).toBe(true);
    expect(isGraphData({ center: 'a', nodes: [{}], edges: [] })).toBe(false);
    expect(isGraphData({ nodes: [], edges: [] })).toBe(false);
    expect(isGraphData(null)).toBe(false);
  });

  it('gives path:start-end for located nodes only', () => {
    expect(nodeLocation(node('a', { start_line: 3, end_line: 9 }))).toBe('shop/payment.py:3-9');
    expect(nodeLocation(node('m', { path: null, start_line: null }))).toBeNull();
  });
});

describe('decodeGraph', () => {
  it('reads the rows a notebook output holds as the kernel meant them', () => {
    const g = decodeGraph(fixture.output);
    expect(g).toEqual(fixture.graph);
    expect(g!.edges.find(e => e.target === 'unresolved:round_cents')!.resolved).toBe(false);
    expect(g!.nodes.find(n => n.id === 'nb.ipynb::tax')!.cell).toBe(3);
    expect(hasPositions(g!)).toBe(true);
  });

  it('reads objects (the REST API, outputs saved before rows) and JSON text', () => {
    expect(decodeGraph(base)).toEqual(base);
    expect(decodeGraph(JSON.stringify(fixture.output))).toEqual(fixture.graph);
    expect(hasPositions(decodeGraph(base)!)).toBe(false);
  });

  it('refuses what is no graph', () => {
    expect(decodeGraph(null)).toBeNull();
    expect(decodeGraph('not json')).toBeNull();
    expect(decodeGraph({ center: 'a', nodes: ['{broken'], edges: [] })).toBeNull();
    expect(decodeGraph({ center: 'a', nodes: ['["a","a","function"]'], edges: ['[0,7,"calls",1]'] })).toBeNull();
    expect(decodeGraph({ nodes: [], edges: [] })).toBeNull();
  });

  it('keeps positions only when both coordinates are numbers', () => {
    const g = decodeGraph({ center: 'a', nodes: ['["a","a","function",null,null,null,"",0,5,null]'], edges: [] });
    expect(g!.nodes[0]).not.toHaveProperty('x');
    expect(hasPositions(g!)).toBe(false);
  });
});
