/**
 * The DirEng chat panel (`#direng-chat`): one conversation per notebook/file path, a
 * textarea (Enter sends, Shift+Enter a new line, Up/Down recall, `@` completes symbols, `/`
 * offers commands), answers rendered as Markdown with citations and code actions.
 */
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';

import { AnswerActions, LiveAnswer, RenderedAnswer, renderAnswer } from './answer';
import { Answer, DirEngAPI, DirEngAPIError, Hit, NotebookContext, Proposal, Task, unavailableMessage } from './api';
import { formatCitation } from './citations';
import { DirEngConfig } from './config';
import { emptyLog, reduceEvents } from './events';
import { decisionBar, el } from './dom';
import { followTask } from './follow';
import { formatEstimate } from './format';
import { InputHistory } from './history';
import { EditStatus, IEditProposals } from './proposals';
import { chatIcon } from './icons';
import {
  CompletionContext,
  SLASH_COMMANDS,
  applyCompletion,
  completionContext,
  parseSlash,
  sessionKey,
  slashMessage
} from './text';
import { IDirEngChat } from './tokens';

export const CHAT_ID = 'direng-chat';

interface CompletionItem {
  value: string;
  label: string;
  detail?: string;
}

export interface ChatPanelOptions {
  api: DirEngAPI;
  config: DirEngConfig;
  rendermime: IRenderMimeRegistry;
  actions: AnswerActions;
  /** Show a symbol's graph in the main area. */
  openGraph: (symbol: string) => void;
  /** Bring the panel to the front. */
  activate: () => void;
  /** Where the user is, sent with each message (setting `sendContext`). */
  context?: () => NotebookContext | null;
  /** The proposed edits, shared with the diffs at notebook cells. */
  proposals: IEditProposals;
}

/** Markdown for `/search` hits (asked with the "number of hits" setting). */
export function hitsMarkdown(query: string, hits: Hit[]): string {
  if (!hits.length) {
    return `Nothing in the index matches **${query.replace(/\*/g, '')}**.`;
  }
  const lines = [`**${hits.length} hits** for *${query.replace(/\*/g, '')}*:`, ''];
  hits.forEach((h, i) => {
    const what = h.symbol ? ` \`${h.symbol}\`` : '';
    lines.push(`${i + 1}. ${formatCitation({ path: h.path, start: h.start_line, end: h.end_line })}${what} (${h.kind}, score ${h.score.toFixed(3)})`);
    if (h.signature) {
      lines.push(`   \`${h.signature.replace(/`/g, "'").slice(0, 160)}\``);
    }
  });
  return lines.join('\n');
}

export class ChatPanel extends Widget implements IDirEngChat {
  private readonly api: DirEngAPI;
  private readonly config: DirEngConfig;
  private readonly rendermime: IRenderMimeRegistry;
  private readonly actions: AnswerActions;
  private readonly openGraph: (symbol: string) => void;
  private readonly activateFn: () => void;

  private readonly banner: HTMLElement;
  private readonly sessionLabel: HTMLElement;
  private readonly logHost: HTMLElement;
  private readonly input: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly popup: HTMLUListElement;

  private readonly logs = new Map<string, HTMLElement>();
  private readonly rendered: RenderedAnswer[] = [];
  private readonly history = new InputHistory();
  private readonly contextFn: () => NotebookContext | null;
  private readonly proposals: IEditProposals;
  private path: string | null = null;
  private healthChecked = false;

  private completion: { ctx: CompletionContext; items: CompletionItem[]; active: number } | null = null;
  private completeTimer = 0;
  private completeSerial = 0;

  constructor(options: ChatPanelOptions) {
    super();
    this.api = options.api;
    this.config = options.config;
    this.rendermime = options.rendermime;
    this.actions = options.actions;
    this.openGraph = options.openGraph;
    this.activateFn = options.activate;
    this.contextFn = options.context ?? (() => null);
    this.proposals = options.proposals;
    this.proposals.changed.connect((_, status) => this.showEdit(status), this);

    this.id = CHAT_ID;
    this.addClass('direng-chat');
    this.title.icon = chatIcon;
    this.title.caption = 'DirEng chat';

    const header = el('div', 'direng-chat-header');
    header.appendChild(el('span', 'direng-chat-title', 'DirEng'));
    this.sessionLabel = el('span', 'direng-chat-session');
    header.appendChild(this.sessionLabel);
    const fresh = el('button', 'jp-Button jp-mod-minimal jp-mod-styled direng-button direng-new-conversation', 'New conversation');
    fresh.type = 'button';
    fresh.title = 'Forget this conversation and start a new one';
    fresh.addEventListener('click', () => void this.newConversation());
    header.appendChild(fresh);

    this.banner = el('div', 'direng-unavailable');
    this.banner.hidden = true;
    this.logHost = el('div', 'direng-chat-log');

    const inputArea = el('div', 'direng-chat-input');
    this.popup = el('ul', 'direng-completions');
    this.popup.hidden = true;
    this.popup.setAttribute('role', 'listbox');
    this.input = el('textarea', 'direng-chat-textarea jp-mod-styled');
    this.input.rows = 3;
    this.input.placeholder = 'Ask DirEng… (Enter sends, Shift+Enter new line, @ symbol, / command)';
    this.input.setAttribute('aria-label', 'Message to DirEng');
    this.input.addEventListener('keydown', ev => this.onKeyDown(ev));
    this.input.addEventListener('input', () => this.updateCompletion());
    this.input.addEventListener('blur', () => window.setTimeout(() => this.closeCompletion(), 150));
    this.sendButton = el('button', 'jp-Button jp-mod-accept jp-mod-styled direng-send', 'Send');
    this.sendButton.type = 'button';
    this.sendButton.addEventListener('click', () => void this.sendInput());
    inputArea.append(this.popup, this.input, this.sendButton);

    this.node.append(header, this.banner, this.logHost, inputArea);
    this.config.changed.connect(() => this.showSession());
    this.showSession();
  }

  /** The conversation key now in use. */
  get session(): string {
    return sessionKey(this.path, this.config.settings.conversationPerFile);
  }

  /** Follow the current document (its path is the session key). */
  setPath(path: string | null): void {
    if (path && path !== this.path) {
      this.path = path;
      this.showSession();
    }
  }

  open(): void {
    this.activateFn();
    this.input.focus();
  }

  async ask(message: string): Promise<void> {
    this.activateFn();
    await this.send(message);
  }

  async newConversation(): Promise<void> {
    const session = this.session;
    const old = this.logs.get(session);
    old?.remove();
    this.logs.delete(session);
    this.showSession(false);
    try {
      await this.api.resetChat(session);
    } catch (err) {
      this.addError(this.currentLog(), err);
    }
    this.input.focus();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.rendered.forEach(r => r.dispose());
    window.clearTimeout(this.completeTimer);
    super.dispose();
  }

  protected onAfterAttach(): void {
    void this.checkHealth();
  }

  protected onAfterShow(): void {
    if (!this.healthChecked) {
      void this.checkHealth();
    }
  }

  protected onActivateRequest(): void {
    this.input.focus();
  }

  /** One line instead of a blank panel when the server extension is missing or failing. */
  async checkHealth(): Promise<boolean> {
    try {
      await this.api.health(true);
      this.healthChecked = true;
      this.banner.hidden = true;
      this.banner.textContent = '';
      return true;
    } catch (err) {
      this.healthChecked = false;
      this.banner.textContent = unavailableMessage(err);
      this.banner.hidden = false;
      return false;
    }
  }

  // -- sessions ------------------------------------------------------------------------

  private currentLog(): HTMLElement {
    return this.logs.get(this.session) ?? this.showSession();
  }

  private showSession(loadHistory = true): HTMLElement {
    const session = this.session;
    this.sessionLabel.textContent = session === 'default' ? 'one conversation' : session;
    this.sessionLabel.title = `Conversation: ${session}`;
    let log = this.logs.get(session);
    if (!log) {
      log = el('div', 'direng-conversation');
      log.dataset.session = session;
      this.logs.set(session, log);
      if (loadHistory) {
        void this.loadHistory(session, log);
      }
    }
    if (log.parentElement !== this.logHost) {
      this.logHost.textContent = '';
      this.logHost.appendChild(log);
    }
    if (!log.childElementCount) {
      log.appendChild(this.emptyHint());
    }
    return log;
  }

  private emptyHint(): HTMLElement {
    const hint = el('div', 'direng-chat-hint');
    hint.textContent =
      'Ask about this code base: "what calls charge_card?", "/search retry policy", "/explain Cart.total". ' +
      'Citations open the file at the line.';
    return hint;
  }

  private async loadHistory(session: string, log: HTMLElement): Promise<void> {
    let messages;
    try {
      messages = (await this.api.history(session)).messages ?? [];
    } catch {
      return; // the health banner says why
    }
    const turns = messages.filter(m => (m.role === 'user' || m.role === 'assistant') && m.content);
    if (!turns.length || log.querySelector('.direng-turn')) {
      return;
    }
    log.querySelector('.direng-chat-hint')?.remove();
    for (const m of turns) {
      if (m.role === 'user') {
        const turn = el('div', 'direng-turn direng-history');
        turn.appendChild(el('div', 'direng-user', m.content));
        log.appendChild(turn);
      } else {
        const turn = log.lastElementChild ?? log.appendChild(el('div', 'direng-turn direng-history'));
        const r = await renderAnswer({ markdown: m.content, intent: 'history' }, this.rendermime, this.actions, {
          cutoff: this.config.settings.answerCutoff,
          meta: false
        });
        this.rendered.push(r);
        turn.appendChild(r.node);
      }
    }
    this.scrollToEnd(log);
  }

  // -- sending -------------------------------------------------------------------------

  private async sendInput(): Promise<void> {
    const text = this.input.value;
    if (!text.trim()) {
      return;
    }
    this.input.value = '';
    this.closeCompletion();
    await this.send(text);
  }

  /** Send one message (or `/command`) in the current conversation and render the reply. */
  async send(text: string, where?: { session: string; log: HTMLElement }): Promise<void> {
    const message = text.trim();
    if (!message) {
      return;
    }
    if (!where) {
      this.history.push(message); // what the user typed, not what the panel says for them
    }
    const session = where?.session ?? this.session;
    const log = where?.log ?? this.currentLog();
    log.querySelector('.direng-chat-hint')?.remove();
    const turn = el('div', 'direng-turn');
    turn.appendChild(el('div', 'direng-user', message));
    const pending = el('div', 'direng-pending', 'DirEng is thinking…');
    turn.appendChild(pending);
    log.appendChild(turn);
    this.scrollToEnd(log);

    const started = performance.now();
    try {
      const slash = parseSlash(message);
      let answer: Answer;
      let graphSymbol: string | null = null;
      if (slash && !slash.known) {
        throw new DirEngAPIError(400, 'unknown_command', `unknown command /${slash.command}; the commands are ${SLASH_COMMANDS.map(c => '/' + c.name).join(', ')}`);
      } else if (slash?.known && slash.known.needsArg && !slash.arg) {
        throw new DirEngAPIError(400, 'bad_request', `usage: ${slash.known.usage}`);
      } else if (slash?.command === 'search') {
        const hits = await this.api.search(slash.arg, this.config.settings.hits);
        answer = { markdown: hitsMarkdown(slash.arg, hits), intent: 'search', provider: 'index', citations: [] };
      } else {
        const context = this.config.settings.sendContext ? this.contextFn() : null;
        // A generative provider's text shows as it is written; the local provider answers whole.
        const live = new LiveAnswer(pending, this.rendermime);
        try {
          answer = await this.api.chatStream(slash ? slashMessage(slash) : message, session, context, (kind, data) =>
            live.update(kind, data)
          );
        } finally {
          live.dispose();
        }
        if (slash?.command === 'graph') {
          graphSymbol = slash.arg.replace(/^@/, '');
        }
      }
      const r = await renderAnswer(answer, this.rendermime, this.actions, {
        cutoff: this.config.settings.answerCutoff,
        elapsedMs: performance.now() - started
      });
      this.rendered.push(r);
      pending.replaceWith(r.node);
      if (answer.proposed_task) {
        r.node.appendChild(this.proposal(answer.proposed_task, session, log));
      }
      for (const edit of answer.proposals ?? []) {
        r.node.appendChild(this.editCard(edit));
      }
      if (graphSymbol) {
        const symbol = graphSymbol;
        const open = el('button', 'jp-Button jp-mod-minimal jp-mod-styled direng-button direng-open-graph', `Open graph of ${symbol}`);
        open.type = 'button';
        open.addEventListener('click', () => this.openGraph(symbol));
        r.node.appendChild(open);
      }
    } catch (err) {
      pending.remove();
      this.addError(turn, err);
      if (err instanceof DirEngAPIError && (err.status === 404 || err.status === 0) && err.code !== 'unknown_symbol') {
        void this.checkHealth();
      }
    }
    this.scrollToEnd(log);
  }

  /**
   * A task DirEng proposed: **Approve** approves and starts it, then the card follows its state
   * live and, at the end, DirEng relays the result (`task ID`: state, KPIs, duration, cost, links
   * to the output notebook and the passport) as a new turn; **Cancel** cancels it.
   */
  private proposal(task: Task, session: string, log: HTMLElement): HTMLElement {
    const card = el('div', 'direng-proposed-task');
    card.dataset.taskId = task.id;
    card.dataset.state = task.state;
    card.appendChild(el('div', 'direng-proposed-head', `${task.lane} · ${task.title}`));
    if (task.estimate) {
      const estimate = el('div', 'direng-proposed-estimate', formatEstimate(task.estimate));
      if (task.estimate.explanation) {
        estimate.appendChild(el('div', 'direng-proposed-estimate-why', task.estimate.explanation));
      }
      card.appendChild(estimate);
    }
    const state = el('div', 'direng-proposed-state', `state: ${task.state}`);
    const [bar, approve, cancel] = decisionBar(['Approve', 'direng-proposed-approve'], ['Cancel', 'direng-proposed-cancel']);
    card.append(bar, state);
    const show = (s: string, text = `state: ${s}`) => {
      card.dataset.state = s;
      state.textContent = text;
    };
    const fail = (err: unknown) => {
      approve.disabled = cancel.disabled = true;
      state.textContent = err instanceof DirEngAPIError ? err.describe() : String(err);
      state.classList.add('direng-error');
    };
    approve.addEventListener('click', () => {
      approve.disabled = cancel.disabled = true;
      void (async () => {
        try {
          await this.api.taskAction(task.id, 'approve');
          show((await this.api.taskAction(task.id, 'start')).state);
          let events = emptyLog(card.dataset.state ?? null);
          const ended = await followTask(this.api, task.id, {
            after: () => events.lastSeq,
            take: batch => {
              events = reduceEvents(events, batch);
              const last = events.events[events.events.length - 1];
              if (last) {
                show(events.state ?? card.dataset.state ?? '', `${events.state ?? 'running'}: ${last.message ?? last.kind}`);
              }
            },
            final: () => events.final,
            live: () => !this.isDisposed && card.isConnected
          });
          if (ended) {
            const final = await this.api.task(task.id);
            show(final.state);
            await this.send(`task ${task.id}`, { session, log }); // DirEng relays the result
          }
        } catch (err) {
          fail(err);
        }
      })();
    });
    cancel.addEventListener('click', () => {
      approve.disabled = cancel.disabled = true;
      this.api.taskAction(task.id, 'cancel').then(t => show(t.state), fail);
    });
    return card;
  }

  /**
   * An edit DirEng proposed (its diff is in the answer above, and at the cell when its notebook is
   * open): **Accept** applies it — a cell is written into the notebook with its provenance, and an
   * open, unmodified notebook is reloaded to show it; a patch only once its Code-Impl task
   * succeeded — **Reject** declines it. The card follows decisions taken at the cell too.
   */
  private editCard(edit: Proposal): HTMLElement {
    const card = el('div', 'direng-edit-proposal');
    card.dataset.proposalId = edit.id;
    const where = edit.kind === 'cell' ? `cell ${edit.cell} of ${edit.path}` : edit.paths.join(', ');
    card.appendChild(el('div', 'direng-proposed-head', `Proposed edit: ${where}`));
    const [bar, accept, reject] = decisionBar(['Accept', 'direng-edit-accept'], ['Reject', 'direng-edit-reject']);
    card.append(bar, el('div', 'direng-proposed-state'));
    accept.addEventListener('click', () => void this.proposals.decide(edit.id, 'apply'));
    reject.addEventListener('click', () => void this.proposals.decide(edit.id, 'reject'));
    this.renderEdit(card, this.proposals.track(edit));
    return card;
  }

  private showEdit(status: EditStatus): void {
    const selector = `.direng-edit-proposal[data-proposal-id="${CSS.escape(status.proposal.id)}"]`;
    // every conversation's log, the ones not shown now too: a card must not offer a decided edit
    for (const log of this.logs.values()) {
      log.querySelectorAll<HTMLElement>(selector).forEach(card => this.renderEdit(card, status));
    }
  }

  private renderEdit(card: HTMLElement, status: EditStatus): void {
    card.dataset.state = status.proposal.state;
    const open = status.proposal.state === 'proposed' && !status.busy;
    card.querySelectorAll('button').forEach(b => (b.disabled = !open));
    const note = card.querySelector('.direng-proposed-state') as HTMLElement;
    note.textContent = status.note;
    note.classList.toggle('direng-error', status.error);
  }

  private addError(host: HTMLElement, err: unknown): void {
    const box = el('div', 'direng-error');
    if (err instanceof DirEngAPIError) {
      box.dataset.status = String(err.status);
      box.dataset.code = err.code;
      box.textContent = err.describe();
      if (err.suggestions.length) {
        box.appendChild(el('div', 'direng-suggestions', `Did you mean: ${err.suggestions.join(', ')}?`));
      }
    } else {
      box.textContent = `Error: ${err instanceof Error ? err.message : String(err)}`;
    }
    host.appendChild(box);
  }

  private scrollToEnd(log: HTMLElement): void {
    if (log.parentElement === this.logHost) {
      this.logHost.scrollTop = this.logHost.scrollHeight;
    }
  }

  // -- keys and completion -------------------------------------------------------------

  private onKeyDown(ev: KeyboardEvent): void {
    if (ev.isComposing) {
      return;
    }
    const c = this.completion;
    if (c) {
      if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
        ev.preventDefault();
        ev.stopPropagation();
        const n = c.items.length;
        c.active = (c.active + (ev.key === 'ArrowDown' ? 1 : n - 1)) % n;
        this.renderCompletion();
        return;
      }
      if (ev.key === 'Enter' || ev.key === 'Tab') {
        ev.preventDefault();
        ev.stopPropagation();
        this.acceptCompletion(c.active);
        return;
      }
      if (ev.key === 'Escape') {
        ev.preventDefault();
        ev.stopPropagation();
        this.closeCompletion();
        return;
      }
    }
    const ta = this.input;
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      ev.preventDefault();
      ev.stopPropagation();
      void this.sendInput();
      return;
    }
    const caret = ta.selectionStart ?? 0;
    const collapsed = ta.selectionStart === ta.selectionEnd;
    if (ev.key === 'ArrowUp' && collapsed && !ta.value.slice(0, caret).includes('\n')) {
      const prev = this.history.prev(ta.value);
      if (prev !== null) {
        ev.preventDefault();
        this.setInput(prev);
      }
    } else if (ev.key === 'ArrowDown' && collapsed && !ta.value.slice(caret).includes('\n')) {
      const next = this.history.next();
      if (next !== null) {
        ev.preventDefault();
        this.setInput(next);
      }
    }
  }

  private setInput(text: string, caret = text.length): void {
    this.input.value = text;
    this.input.setSelectionRange(caret, caret);
  }

  private updateCompletion(): void {
    const ctx = completionContext(this.input.value, this.input.selectionStart ?? 0);
    window.clearTimeout(this.completeTimer);
    if (!ctx) {
      this.closeCompletion();
      return;
    }
    if (ctx.kind === 'command') {
      const items = SLASH_COMMANDS.filter(c => c.name.startsWith(ctx.prefix.toLowerCase())).map(c => ({
        value: c.name,
        label: c.usage,
        detail: c.description
      }));
      this.openCompletion(ctx, items);
      return;
    }
    const serial = ++this.completeSerial;
    this.completeTimer = window.setTimeout(async () => {
      let matches: string[] = [];
      try {
        matches = await this.api.complete(ctx.prefix, 20);
      } catch {
        matches = [];
      }
      if (serial === this.completeSerial) {
        this.openCompletion(ctx, matches.map(m => ({ value: m, label: `@${m}` })));
      }
    }, 120);
  }

  private openCompletion(ctx: CompletionContext, items: CompletionItem[]): void {
    if (!items.length) {
      this.closeCompletion();
      return;
    }
    this.completion = { ctx, items, active: 0 };
    this.renderCompletion();
  }

  private renderCompletion(): void {
    const c = this.completion;
    this.popup.textContent = '';
    if (!c) {
      this.popup.hidden = true;
      return;
    }
    c.items.forEach((item, i) => {
      const li = el('li', `direng-completion${i === c.active ? ' jp-mod-active' : ''}`);
      li.setAttribute('role', 'option');
      li.dataset.value = item.value;
      li.appendChild(el('span', 'direng-completion-label', item.label));
      if (item.detail) {
        li.appendChild(el('span', 'direng-completion-detail', item.detail));
      }
      li.addEventListener('mousedown', ev => {
        ev.preventDefault();
        this.acceptCompletion(i);
      });
      this.popup.appendChild(li);
    });
    this.popup.hidden = false;
    this.popup.children[c.active]?.scrollIntoView({ block: 'nearest' });
  }

  private acceptCompletion(index: number): void {
    const c = this.completion;
    if (!c) {
      return;
    }
    const item = c.items[index];
    const { text, caret } = applyCompletion(this.input.value, c.ctx, item.value);
    this.closeCompletion();
    this.setInput(text, caret);
    this.input.focus();
  }

  private closeCompletion(): void {
    this.completeSerial++;
    this.completion = null;
    this.popup.hidden = true;
    this.popup.textContent = '';
  }
}
