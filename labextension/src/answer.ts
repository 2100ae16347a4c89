/**
 * Rendering one DirEng answer: Markdown through JupyterLab's rendermime, citations as
 * `a.direng-citation` links that open the file at the line, code blocks with Insert below /
 * Replace active cell / Copy, the provider, tokens, cost and latency, and notices.
 */
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import { Answer, hitCitation } from './api';
import { StreamedAnswer, emptyStream, reduceChatEvent } from './chatStream';
import { Citation, findCitations, formatCitation, parseCitation } from './citations';
import { formatCost, formatMs, summarizeUsage } from './format';
import { truncateMarkdown } from './text';

export interface AnswerActions {
  openCitation(c: Citation): void;
  /** A link that is no citation: a relative path opens in JupyterLab, a URL in a new tab. */
  openLink(href: string): void;
  insertBelow(code: string): void;
  replaceActive(code: string): void;
  copy(code: string): void;
}

/** An `a.direng-citation` element for `c`. */
export function citationLink(c: Citation, text: string, actions: Pick<AnswerActions, 'openCitation'>): HTMLAnchorElement {
  const a = document.createElement('a');
  a.className = 'direng-citation';
  a.href = '#';
  a.textContent = text;
  markCitation(a, c, actions);
  return a;
}

function markCitation(a: HTMLAnchorElement, c: Citation, actions: Pick<AnswerActions, 'openCitation'>): void {
  a.classList.add('direng-citation');
  a.dataset.path = c.path;
  a.dataset.start = String(c.start);
  a.dataset.end = String(c.end);
  a.title = `Open ${c.path} at line ${c.start}`;
  a.addEventListener('click', ev => {
    ev.preventDefault();
    ev.stopPropagation();
    actions.openCitation(c);
  });
}

/** Every citation in `root` made a link: anchors whose text is one, and citations in text. */
export function linkCitations(root: HTMLElement, actions: AnswerActions): Citation[] {
  const found: Citation[] = [];
  root.querySelectorAll('a').forEach(original => {
    if (original.classList.contains('direng-citation')) {
      return;
    }
    // A clone drops listeners rendermime's link handler may have added: clicks are ours.
    const a = original.cloneNode(true) as HTMLAnchorElement;
    original.replaceWith(a);
    const c = parseCitation(a.textContent ?? '');
    if (c) {
      markCitation(a, c, actions);
      found.push(c);
      return;
    }
    const href = a.getAttribute('href');
    if (href && !href.startsWith('#')) {
      a.addEventListener('click', ev => {
        ev.preventDefault();
        actions.openLink(href);
      });
    }
  });
  // Text nodes outside links and code blocks.
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: node =>
      node.parentElement?.closest('a, pre, .direng-code-actions') ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT
  });
  const texts: Text[] = [];
  while (walker.nextNode()) {
    texts.push(walker.currentNode as Text);
  }
  for (const node of texts) {
    const text = node.data;
    const matches = findCitations(text);
    if (!matches.length) {
      continue;
    }
    const frag = document.createDocumentFragment();
    let at = 0;
    for (const m of matches) {
      frag.appendChild(document.createTextNode(text.slice(at, m.index)));
      frag.appendChild(citationLink(m, m.text, actions));
      found.push(m);
      at = m.index + m.text.length;
    }
    frag.appendChild(document.createTextNode(text.slice(at)));
    node.replaceWith(frag);
  }
  return found;
}

function button(label: string, cls: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `jp-Button jp-mod-minimal jp-mod-styled direng-button ${cls}`;
  b.textContent = label;
  b.title = title;
  b.addEventListener('click', ev => {
    ev.preventDefault();
    onClick();
  });
  return b;
}

/** Insert below / Replace active cell / Copy after each code block of `root`. */
export function addCodeActions(root: HTMLElement, actions: AnswerActions): number {
  const blocks = Array.from(root.querySelectorAll('pre'));
  for (const pre of blocks) {
    const code = (pre.textContent ?? '').replace(/\n$/, '');
    const bar = document.createElement('div');
    bar.className = 'direng-code-actions';
    bar.appendChild(button('Insert below', 'direng-insert-below', 'Insert as a new cell below the active cell', () => actions.insertBelow(code)));
    bar.appendChild(button('Replace active cell', 'direng-replace-cell', "Replace the active cell's source", () => actions.replaceActive(code)));
    bar.appendChild(button('Copy', 'direng-copy', 'Copy to the clipboard', () => actions.copy(code)));
    pre.insertAdjacentElement('afterend', bar);
  }
  return blocks.length;
}

/** The line under an answer: provider/model · tokens · cost · latency · intent. */
export function metaLine(answer: Answer, elapsedMs?: number): HTMLElement {
  const u = summarizeUsage(answer.provider, answer.usages);
  // Without a model call (the local provider) the latency is the request's round trip.
  const latency = u.latencyMs || elapsedMs || 0;
  const el = document.createElement('div');
  el.className = 'direng-answer-meta';
  const parts: [string, string][] = [
    ['direng-meta-provider', u.model ? `${u.provider} / ${u.model}` : u.provider],
    ['direng-meta-tokens', `${u.inputTokens} in + ${u.outputTokens} out tokens`],
    ['direng-meta-cost', formatCost(u.cost)],
    ['direng-meta-latency', formatMs(latency)],
    ['direng-meta-intent', answer.intent]
  ];
  parts.forEach(([cls, text], i) => {
    if (i) {
      el.appendChild(document.createTextNode(' · '));
    }
    const span = document.createElement('span');
    span.className = cls;
    span.textContent = text;
    el.appendChild(span);
  });
  return el;
}

export interface RenderedAnswer {
  node: HTMLElement;
  dispose(): void;
}

/**
 * Render `answer` into a new `div.direng-answer-block`: the Markdown (`.direng-answer`), the
 * sources not cited inline, the meta line and the notices. Answers over `cutoff` characters
 * are cut with a "show more" button.
 */
export async function renderAnswer(
  answer: Answer,
  rendermime: IRenderMimeRegistry,
  actions: AnswerActions,
  opts: { cutoff: number; meta?: boolean; elapsedMs?: number }
): Promise<RenderedAnswer> {
  const { cutoff, meta = true, elapsedMs } = opts;
  const block = document.createElement('div');
  block.className = 'direng-answer-block';
  const body = document.createElement('div');
  body.className = 'direng-answer';
  body.dataset.intent = answer.intent;
  block.appendChild(body);
  let renderer: IRenderMime.IRenderer | null = null;

  const show = async (markdown: string): Promise<Citation[]> => {
    renderer?.dispose();
    body.textContent = '';
    renderer = rendermime.createRenderer('text/markdown');
    await renderer.renderModel(new MimeModel({ data: { 'text/markdown': markdown }, trusted: false }));
    body.appendChild(renderer.node);
    addCodeActions(body, actions);
    return linkCitations(body, actions);
  };

  const cut = truncateMarkdown(answer.markdown ?? '', Math.max(1000, cutoff));
  let cited = await show(cut.text);
  if (cut.truncated) {
    const more = button(
      `Show more (${cut.hidden.toLocaleString()} more characters)`,
      'direng-show-more',
      'Render the whole answer',
      () => {
        more.disabled = true;
        void show(answer.markdown).then(c => {
          cited = c;
          more.remove();
        });
      }
    );
    block.appendChild(more);
  }

  const inline = new Set(cited.map(formatCitation));
  const extra = (answer.citations ?? []).map(hitCitation).filter(c => !inline.has(formatCitation(c)));
  if (extra.length) {
    const sources = document.createElement('div');
    sources.className = 'direng-sources';
    sources.appendChild(document.createTextNode('Sources: '));
    extra.slice(0, 20).forEach((c, i) => {
      if (i) {
        sources.appendChild(document.createTextNode(', '));
      }
      sources.appendChild(citationLink(c, formatCitation(c), actions));
    });
    block.appendChild(sources);
  }

  if (meta) {
    block.appendChild(metaLine(answer, elapsedMs));
  }
  if (answer.notices?.length) {
    const list = document.createElement('ul');
    list.className = 'direng-notices';
    for (const n of answer.notices) {
      const li = document.createElement('li');
      li.className = 'direng-notice';
      li.textContent = n;
      list.appendChild(li);
    }
    block.appendChild(list);
  }
  return {
    node: block,
    dispose: () => renderer?.dispose()
  };
}

/**
 * An answer while it streams: the text so far rendered as Markdown into `host` (at most every
 * `intervalMs`, since each render replaces the last), or the tool the model is calling. The
 * final answer is rendered by `renderAnswer` in its place.
 */
export class LiveAnswer {
  private state: StreamedAnswer = emptyStream();
  private renderer: IRenderMime.IRenderer | null = null;
  private timer: number | null = null;
  private rendering: Promise<void> = Promise.resolve();
  private disposed = false;
  readonly node: HTMLDivElement;

  constructor(
    private readonly host: HTMLElement,
    private readonly rendermime: IRenderMimeRegistry,
    private readonly intervalMs = 80
  ) {
    this.node = document.createElement('div');
    this.node.className = 'direng-answer direng-streaming';
  }

  update(kind: string, data: Record<string, unknown>): void {
    this.state = reduceChatEvent(this.state, kind, data);
    this.host.dataset.streamEvents = String(this.state.events);
    if (this.timer === null) {
      this.timer = window.setTimeout(() => {
        this.timer = null;
        this.rendering = this.rendering.then(() => this.render());
      }, this.intervalMs);
    }
  }

  private async render(): Promise<void> {
    const { text, tool } = this.state;
    if (this.disposed) {
      return;
    }
    if (!text) {
      this.node.remove();
      this.host.textContent = tool ? `DirEng is using ${tool}…` : 'DirEng is thinking…';
      return;
    }
    const renderer = this.rendermime.createRenderer('text/markdown');
    await renderer.renderModel(new MimeModel({ data: { 'text/markdown': text }, trusted: false }));
    if (this.disposed) {
      renderer.dispose();
      return;
    }
    this.renderer?.dispose();
    this.renderer = renderer;
    this.node.textContent = '';
    this.node.appendChild(renderer.node);
    if (!this.node.isConnected) {
      this.host.textContent = '';
      this.host.appendChild(this.node);
    }
  }

  dispose(): void {
    this.disposed = true;
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
    }
    this.renderer?.dispose();
    this.renderer = null;
  }
}
