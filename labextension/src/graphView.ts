/**
 * The graph viewer: a DirEng graph (`application/vnd.direng.graph+json`) drawn with
 * cytoscape (bundled from npm, loaded once per page on first use). Click a node: its code;
 * double-click: its neighbours (`GET /direng/api/graph/{id}?depth=1`) merged in, within the
 * node cap. The same widget is the MIME renderer (notebook outputs) and the main-area view.
 *
 * A notebook output carries the positions of the kernel's layout (the one its static SVG is
 * drawn with), so it is drawn as it is (`preset`): a force layout of 150 nodes in the browser
 * would cost most of the time to first paint. Graphs without positions (the REST API's), the
 * "Lay out" button and expanded neighbours get cytoscape's `cose`.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';
import type cytoscapeType from 'cytoscape';

import { citationLink } from './answer';
import { formatCitation } from './citations';
import { DirEngAPI, DirEngAPIError } from './api';
import { DirEngConfig } from './config';
import {
  GRAPH_MIME_TYPE,
  GraphData,
  GraphEdge,
  GraphNode,
  decodeGraph,
  hasPositions,
  mergeGraph,
  normalizeGraph
} from './graphModel';

type Cytoscape = typeof cytoscapeType;
type Core = cytoscapeType.Core;

let loader: Promise<Cytoscape> | null = null;

/** The cytoscape module: one chunk, fetched once per page, on the first graph. */
export function loadCytoscape(): Promise<Cytoscape> {
  if (!loader) {
    loader = import('cytoscape').then(m => ((m as unknown as { default?: Cytoscape }).default ?? (m as unknown as Cytoscape)));
    loader.catch(() => (loader = null));
  }
  return loader;
}

const KIND_COLORS: Record<string, string> = {
  file: '#8d99ae',
  module: '#b08968',
  class: '#e76f51',
  struct: '#e76f51',
  interface: '#f4a261',
  trait: '#f4a261',
  function: '#2a9d8f',
  method: '#3a86ff',
  unresolved: '#adb5bd'
};

const EDGE_COLORS: Record<string, string> = {
  calls: '#3a86ff',
  imports: '#8d99ae',
  contains: '#ced4da',
  inherits: '#e76f51',
  implements: '#f4a261',
  references: '#adb5bd'
};

function cssVar(node: HTMLElement, name: string, fallback: string): string {
  return getComputedStyle(node).getPropertyValue(name).trim() || fallback;
}

function nodeElement(n: GraphNode, center: string): cytoscapeType.ElementDefinition {
  return {
    group: 'nodes',
    data: {
      id: n.id,
      label: n.name,
      kind: n.kind,
      color: KIND_COLORS[n.kind] ?? '#6c757d',
      center: n.id === center ? 1 : 0
    },
    ...(Number.isFinite(n.x) && Number.isFinite(n.y) ? { position: { x: n.x as number, y: n.y as number } } : {})
  };
}

/** The cose options of every force layout here (fixed, so a graph looks alike each time). */
function coseOptions(fit: boolean, randomize: boolean): cytoscapeType.LayoutOptions {
  return {
    name: 'cose',
    animate: false,
    fit,
    padding: 20,
    randomize,
    nodeRepulsion: () => 8000,
    idealEdgeLength: () => 60
  } as cytoscapeType.LayoutOptions;
}

function edgeElement(e: GraphEdge): cytoscapeType.ElementDefinition {
  return {
    group: 'edges',
    data: {
      id: `edge:${e.source}->${e.target}:${e.kind}`,
      source: e.source,
      target: e.target,
      kind: e.kind,
      color: EDGE_COLORS[e.kind] ?? '#adb5bd',
      unresolved: e.resolved === false ? 1 : 0
    }
  };
}

export interface GraphViewOptions {
  config: DirEngConfig;
  api?: DirEngAPI;
  /** A main-area tab (fills the tab) rather than a notebook output (fixed height). */
  main?: boolean;
}

export class GraphView extends Widget implements IRenderMime.IRenderer {
  private readonly config: DirEngConfig;
  private readonly api: DirEngAPI;
  private readonly main: boolean;
  private readonly count: HTMLElement;
  private readonly message: HTMLElement;
  private readonly canvas: HTMLElement;
  private readonly codePane: HTMLElement;
  private readonly openMain: HTMLButtonElement;
  private graph: GraphData | null = null;
  private cy: Core | null = null;
  private drawn: GraphData | null = null;
  private observer: ResizeObserver | null = null;
  private expanding = new Set<string>();

  constructor(options: GraphViewOptions) {
    super();
    this.config = options.config;
    this.api = options.api ?? options.config.api;
    this.main = !!options.main;
    this.addClass('direng-graph');
    if (this.main) {
      this.addClass('direng-graph-main');
    }

    const toolbar = document.createElement('div');
    toolbar.className = 'direng-graph-toolbar';
    this.count = document.createElement('span');
    this.count.className = 'direng-graph-count';
    toolbar.appendChild(this.count);
    const fit = this.button('Fit', 'direng-graph-fit', 'Fit the graph to the view', () => this.cy?.fit(undefined, 20));
    const relayout = this.button('Lay out', 'direng-graph-layout', 'Lay the graph out again', () => this.runLayout(true));
    this.openMain = this.button('Open in main area', 'direng-graph-open-main', 'Show this graph in a main-area tab', () => {
      if (this.graph && this.config.openGraph) {
        this.config.openGraph(this.withPositions(this.graph));
      }
    });
    this.openMain.hidden = this.main;
    const hint = document.createElement('span');
    hint.className = 'direng-graph-hint';
    hint.textContent = 'click: code · double-click: expand';
    toolbar.append(fit, relayout, this.openMain, hint);

    this.message = document.createElement('div');
    this.message.className = 'direng-graph-message';
    this.message.hidden = true;

    const body = document.createElement('div');
    body.className = 'direng-graph-body';
    this.canvas = document.createElement('div');
    this.canvas.className = 'direng-graph-canvas';
    this.codePane = document.createElement('div');
    this.codePane.className = 'direng-graph-code';
    this.codePane.hidden = true;
    body.append(this.canvas, this.codePane);
    this.node.append(toolbar, this.message, body);
  }

  /** The graph shown (after normalisation and expansions). */
  get data(): GraphData | null {
    return this.graph;
  }

  /** IRenderMime.IRenderer: render the MIME payload. */
  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const parsed = decodeGraph(model.data[GRAPH_MIME_TYPE]);
    if (!parsed) {
      this.setMessage('This output is not a DirEng graph (center, nodes and edges are required).');
      this.count.textContent = '0 nodes';
      return;
    }
    this.setGraph(parsed);
  }

  /** Show `data` (capped to the node cap setting). */
  setGraph(data: GraphData): void {
    this.graph = normalizeGraph(data, this.config.settings.graphNodeCap);
    this.updateCount();
    this.setMessage(null);
    this.openMain.disabled = !this.config.openGraph;
    // Fetch the library now, while the output is being attached, rather than after.
    loadCytoscape().catch(() => undefined);
    if (this.isAttached) {
      void this.draw();
    }
  }

  /** Fetch and show a symbol's graph (`GET /graph/{symbol}?depth=1&code=1`). */
  async loadSymbol(symbol: string, depth = 1): Promise<void> {
    this.setMessage(`Loading the graph of ${symbol}…`);
    try {
      const data = await this.api.graph(symbol, { depth, maxNodes: this.config.settings.graphNodeCap, code: true });
      this.setGraph(data);
    } catch (err) {
      this.setMessage(describe(err), true);
      this.count.textContent = '0 nodes';
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.observer?.disconnect();
    this.cy?.destroy();
    this.cy = null;
    super.dispose();
  }

  protected onAfterAttach(): void {
    if (typeof ResizeObserver !== 'undefined' && !this.observer) {
      this.observer = new ResizeObserver(() => this.cy?.resize());
      this.observer.observe(this.canvas);
    }
    if (this.graph && this.drawn !== this.graph) {
      void this.draw();
    }
  }

  protected onResize(): void {
    this.cy?.resize();
  }

  private button(label: string, cls: string, title: string, onClick: () => void): HTMLButtonElement {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `jp-Button jp-mod-minimal jp-mod-styled direng-button ${cls}`;
    b.textContent = label;
    b.title = title;
    b.addEventListener('click', onClick);
    return b;
  }

  private setMessage(text: string | null, error = false): void {
    this.message.textContent = text ?? '';
    this.message.hidden = !text;
    this.message.classList.toggle('direng-error', error);
  }

  private updateCount(note = ''): void {
    const g = this.graph;
    if (!g) {
      this.count.textContent = '0 nodes';
      return;
    }
    const n = g.nodes.length;
    this.count.textContent =
      `${n} node${n === 1 ? '' : 's'} · ${g.edges.length} edge${g.edges.length === 1 ? '' : 's'}` +
      (g.truncated ? ' (truncated)' : '') +
      note;
    this.count.dataset.nodes = String(n);
    this.count.dataset.edges = String(g.edges.length);
    this.node.dataset.center = g.center; // which graph this is, for scripts and tests (the canvas has no DOM)
  }

  private async draw(): Promise<void> {
    const graph = this.graph;
    if (!graph) {
      return;
    }
    let cytoscape: Cytoscape;
    try {
      cytoscape = await loadCytoscape();
    } catch (err) {
      this.setMessage(`The graph library failed to load: ${describe(err)}`, true);
      return;
    }
    if (this.isDisposed || this.graph !== graph) {
      return;
    }
    this.cy?.destroy();
    this.drawn = graph;
    const fg = cssVar(this.node, '--jp-ui-font-color1', '#333');
    const bg = cssVar(this.node, '--jp-layout-color1', '#fff');
    const accent = cssVar(this.node, '--jp-brand-color1', '#1976d2');
    const cy = cytoscape({
      container: this.canvas,
      elements: [...graph.nodes.map(n => nodeElement(n, graph.center)), ...graph.edges.map(edgeElement)],
      // The nodes where the elements put them: cytoscape's default first layout (`grid`) would
      // move them all, and `preset` afterwards leaves nodes where they are.
      layout: { name: 'preset', fit: true, padding: 20 } as cytoscapeType.LayoutOptions,
      minZoom: 0.05,
      maxZoom: 5,
      style: [
        {
          selector: 'node',
          style: {
            'background-color': 'data(color)',
            label: 'data(label)',
            color: fg,
            'font-size': 10,
            'text-valign': 'bottom',
            'text-margin-y': 3,
            'text-outline-color': bg,
            'text-outline-width': 2,
            width: 14,
            height: 14
          }
        },
        { selector: 'node[kind = "file"]', style: { shape: 'round-rectangle' } },
        { selector: 'node[kind = "class"], node[kind = "struct"]', style: { shape: 'diamond', width: 16, height: 16 } },
        { selector: 'node[kind = "unresolved"]', style: { 'border-width': 1, 'border-style': 'dashed', 'border-color': fg } },
        { selector: 'node[center = 1]', style: { width: 22, height: 22, 'border-width': 3, 'border-color': accent, 'font-weight': 'bold' } },
        { selector: 'node:selected', style: { 'border-width': 3, 'border-color': accent, 'overlay-opacity': 0.1 } },
        {
          selector: 'edge',
          style: {
            width: 1.5,
            'line-color': 'data(color)',
            'target-arrow-color': 'data(color)',
            'target-arrow-shape': 'triangle',
            'arrow-scale': 0.8,
            'curve-style': 'bezier',
            opacity: 0.85
          }
        },
        { selector: 'edge[unresolved = 1]', style: { 'line-style': 'dashed' } }
      ]
    });
    this.cy = cy;
    // onetap: a tap not followed by a second one, so a double-click expands without opening the code.
    cy.on('onetap', 'node', ev => void this.showCode(ev.target.id()));
    cy.on('dbltap', 'node', ev => void this.expand(ev.target.id()));
    if (hasPositions(graph)) {
      this.node.dataset.layout = 'kernel'; // which layout drew it (the canvas has no DOM to tell)
    } else {
      this.runLayout(true);
    }
  }

  /** A force layout of the whole graph (the "Lay out" button, graphs without positions). */
  private runLayout(fit: boolean, randomize = true): void {
    const cy = this.cy;
    if (!cy) {
      return;
    }
    const options =
      cy.nodes().length > 300
        ? ({ name: 'concentric', animate: false, fit, padding: 20 } as cytoscapeType.LayoutOptions)
        : coseOptions(fit, randomize);
    this.node.dataset.layout = options.name;
    cy.layout(options).run();
  }

  /** `graph` with each node where it is drawn now (a main-area copy looks the same). */
  private withPositions(graph: GraphData): GraphData {
    const cy = this.cy;
    if (!cy) {
      return graph;
    }
    return {
      ...graph,
      nodes: graph.nodes.map(n => {
        const el = cy.getElementById(n.id);
        if (el.empty()) {
          return n;
        }
        const p = el.position();
        return { ...n, x: Math.round(p.x), y: Math.round(p.y) };
      })
    };
  }

  /** Click: the node's name, location (a citation link), signature and code. */
  private async showCode(id: string): Promise<void> {
    const node = this.graph?.nodes.find(n => n.id === id);
    if (!node || !this.graph) {
      return;
    }
    const pane = this.codePane;
    if (pane.hidden) {
      pane.hidden = false;
      this.refit();
    }
    pane.textContent = '';
    pane.dataset.node = id;
    const head = document.createElement('div');
    head.className = 'direng-graph-code-head';
    const name = document.createElement('strong');
    name.textContent = node.name;
    head.append(name, document.createTextNode(` ${node.kind} `));
    if (node.path && node.start_line) {
      const c = {
        path: node.path,
        start: node.start_line,
        end: node.end_line || node.start_line,
        ...(node.cell !== undefined && node.cell !== null ? { cell: node.cell } : {})
      };
      head.appendChild(citationLink(c, formatCitation(c), { openCitation: cc => this.config.openCitation?.(cc) }));
    }
    const close = this.button('×', 'direng-graph-code-close', 'Close', () => {
      pane.hidden = true;
      this.refit();
    });
    head.appendChild(close);
    pane.appendChild(head);
    let sig: HTMLElement | null = null;
    if (node.signature) {
      sig = document.createElement('code');
      sig.className = 'direng-graph-signature';
      sig.textContent = node.signature;
      pane.appendChild(sig);
    }
    const pre = document.createElement('pre');
    pre.className = 'direng-graph-source';
    pane.appendChild(pre);
    let code = this.graph.code?.[id];
    if (code === undefined && node.path) {
      pre.textContent = 'Loading…';
      try {
        const one = await this.api.graph(id, { depth: 0, maxNodes: 1, code: true });
        code = one.code?.[id] ?? '';
        if (this.graph) {
          this.graph = { ...this.graph, code: { ...(this.graph.code ?? {}), [id]: code } };
        }
      } catch (err) {
        code = '';
        pre.textContent = describe(err);
        return;
      }
    }
    if (pane.dataset.node === id) {
      pre.textContent = code || (node.path ? '(no code excerpt)' : '(no source: an external module or an unresolved name)');
      if (sig && code && node.signature && code.includes(node.signature.split('\n')[0])) {
        sig.remove(); // the excerpt starts with it
      }
    }
  }

  /** After the canvas changed size (the code pane opened or closed): the whole graph in view. */
  private refit(): void {
    requestAnimationFrame(() => {
      if (this.cy) {
        this.cy.resize();
        this.cy.fit(undefined, 20);
      }
    });
  }

  /** Double-click: merge the node's neighbours (depth 1) into the graph, within the cap. */
  private async expand(id: string): Promise<void> {
    if (!this.graph || !this.cy || this.expanding.has(id)) {
      return;
    }
    const cap = this.config.settings.graphNodeCap;
    this.expanding.add(id);
    this.setMessage(`Expanding ${id}…`);
    try {
      const expansion = await this.api.graph(id, { depth: 1, maxNodes: cap, code: true });
      const { graph, addedNodes, addedEdges, dropped } = mergeGraph(this.graph, expansion, cap);
      this.graph = graph;
      this.drawn = graph;
      const cy = this.cy;
      if (!cy) {
        return;
      }
      const origin = cy.getElementById(id).position();
      cy.add(
        addedNodes.map((n, i) => ({
          ...nodeElement(n, graph.center),
          position: {
            x: origin.x + 80 * Math.cos((2 * Math.PI * i) / Math.max(1, addedNodes.length)),
            y: origin.y + 80 * Math.sin((2 * Math.PI * i) / Math.max(1, addedNodes.length))
          }
        }))
      );
      cy.add(addedEdges.map(edgeElement));
      if (addedNodes.length) {
        // Only the new nodes move: from their ring around the node they came from, pushed
        // clear of the others, which stay where the user saw them.
        const added = new Set(addedNodes.map(n => n.id));
        const unlock = cy.nodes().filter(n => !added.has(n.id()) && !n.locked());
        unlock.lock();
        try {
          cy.layout(coseOptions(false, false)).run();
        } finally {
          unlock.unlock();
        }
        cy.fit(undefined, 20); // keep every node in view
      }
      this.updateCount(dropped ? ` · ${dropped} left out (cap ${cap})` : '');
      this.setMessage(addedNodes.length || addedEdges.length ? null : `${id} has no neighbours that are not shown.`);
    } catch (err) {
      this.setMessage(describe(err), true);
    } finally {
      this.expanding.delete(id);
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof DirEngAPIError) {
    return err.describe();
  }
  return err instanceof Error ? err.message : String(err);
}
