/**
 * A pending cell edit shown at its cell: a side-by-side diff (the source it was proposed against |
 * the proposed source, CodeMirror's MergeView on JupyterLab's own CodeMirror) with Accept /
 * Reject, decided through the shared proposals so the chat card follows.
 */
import { Notification } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { IEditorLanguageRegistry, jupyterHighlightStyle, jupyterTheme } from '@jupyterlab/codemirror';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { syntaxHighlighting } from '@codemirror/language';
import { MergeView } from '@codemirror/merge';
import { Compartment, EditorState, Extension } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import { PanelLayout, Widget } from '@lumino/widgets';

import { Proposal } from './api';
import { decisionBar, el } from './dom';
import { EditStatus, IEditProposals, pendingCellEdits } from './proposals';

export const CELL_DIFF_CLASS = 'direng-cell-diff';

/** The diff of one proposal at one cell, with its Accept / Reject and what became of them. */
export class CellDiff extends Widget {
  private merge: MergeView | null = null;
  private readonly language = new Compartment();
  private readonly view: HTMLElement;
  private readonly stale: HTMLElement;
  private readonly note: HTMLElement;
  private readonly buttons: HTMLButtonElement[];

  constructor(
    readonly cell: Cell,
    private readonly status: EditStatus,
    private readonly proposals: IEditProposals,
    private readonly languages: IEditorLanguageRegistry | null
  ) {
    super();
    const p = status.proposal;
    this.addClass(CELL_DIFF_CLASS);
    this.node.dataset.proposalId = p.id;
    // keys typed in the diff are not the notebook's command-mode shortcuts (`d d` deletes a cell)
    this.node.setAttribute('data-lm-suppress-shortcuts', 'true');
    const by = [p.provider, p.model].filter(Boolean).join(' · ');
    const head = el('div', 'direng-cell-diff-head', `DirEng proposes an edit of this cell${by ? ` (${by})` : ''}`);
    const labels = el('div', 'direng-cell-diff-labels');
    labels.append(el('span', '', 'current'), el('span', '', 'proposed'));
    this.view = el('div', 'direng-cell-diff-view');
    this.stale = el('div', 'direng-cell-diff-stale', 'This cell has changed since the edit was proposed.');
    const [bar, accept, reject] = decisionBar(['Accept', 'direng-cell-diff-accept'], ['Reject', 'direng-cell-diff-reject']);
    this.buttons = [accept, reject];
    this.note = el('div', 'direng-proposed-state');
    this.node.append(head, labels, this.view, this.stale, bar, this.note);
    accept.addEventListener('click', () => void this.proposals.decide(p.id, 'apply'));
    reject.addEventListener('click', () => void this.proposals.decide(p.id, 'reject'));
    this.proposals.changed.connect((_, s) => s.proposal.id === p.id && this.follow(s), this);
    this.cell.model.contentChanged.connect(this.checkStale, this);
    this.follow(this.proposals.status(p.id) ?? status);
    this.checkStale();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.merge?.destroy();
    this.merge = null;
    super.dispose();
  }

  protected onAfterAttach(): void {
    if (!this.merge) {
      this.render();
    }
  }

  private get before(): string {
    return this.status.proposal.old_source ?? this.cell.model.sharedModel.getSource();
  }

  private render(): void {
    const p = this.status.proposal;
    const side = (doc: string) => ({
      doc,
      extensions: [
        EditorState.readOnly.of(true),
        EditorView.editable.of(false),
        EditorView.lineWrapping,
        jupyterTheme,
        syntaxHighlighting(jupyterHighlightStyle),
        this.language.of([])
      ]
    });
    try {
      this.merge = new MergeView({
        a: side(this.before),
        b: side(p.new_source ?? ''),
        parent: this.view,
        gutter: true,
        highlightChanges: true,
        collapseUnchanged: { margin: 3, minSize: 6 }
      });
    } catch (err) {
      // still decidable without the editors: the unified diff the chat answer shows
      console.warn('direng-workbench: the side-by-side diff failed, showing the unified diff', err);
      this.view.appendChild(el('pre', 'direng-cell-diff-unified', p.diff));
      return;
    }
    void this.loadLanguage().then(support => {
      if (support && this.merge) {
        for (const editor of [this.merge.a, this.merge.b]) {
          editor.dispatch({ effects: this.language.reconfigure(support) });
        }
      }
    });
  }

  private async loadLanguage(): Promise<Extension | null> {
    const found = this.languages?.findByMIME(this.cell.model.mimeType) ?? null;
    if (!found || !this.languages) {
      return null;
    }
    const language = await this.languages.getLanguage(found).catch(() => null);
    return language?.support ?? null;
  }

  private follow(status: EditStatus): void {
    if (status.proposal.state !== 'proposed') {
      this.dispose(); // decided here or in the chat: the reloaded cell shows the outcome itself
      return;
    }
    this.node.dataset.state = status.proposal.state;
    this.buttons.forEach(b => (b.disabled = status.busy));
    this.note.textContent = status.error ? status.note : '';
    this.note.classList.toggle('direng-error', status.error);
  }

  private checkStale(): void {
    const old = this.status.proposal.old_source;
    this.stale.hidden = old === undefined || old === null || this.cell.model.sharedModel.getSource() === old;
  }
}

/**
 * The diffs of every open notebook: a pending cell edit of a notebook shows at its cell when it
 * arrives in chat, when the notebook opens (the server's pending proposals are asked for then),
 * and again on the new cells after the notebook is reloaded.
 */
export class CellDiffs {
  private readonly shown = new Map<NotebookPanel, Map<string, CellDiff>>();
  private readonly paths = new Map<string, string>();
  private readonly timers = new Map<NotebookPanel, number>();

  constructor(
    tracker: INotebookTracker,
    private readonly proposals: IEditProposals,
    private readonly serverPath: (path: string) => Promise<string | null>,
    private readonly languages: IEditorLanguageRegistry | null
  ) {
    proposals.changed.connect((_, status) => {
      const id = status.proposal.id;
      if (status.reloaded === 'unsaved' && [...this.shown.values()].some(m => m.has(id))) {
        // its cell still shows the unsaved source: say at the notebook, not only in the chat, how to see the edit
        Notification.warning(`DirEng: ${status.note}`, { autoClose: false });
      }
      tracker.forEach(panel => this.schedule(panel));
    }, this);
    tracker.widgetAdded.connect((_, panel) => this.watch(panel), this);
    tracker.forEach(panel => this.watch(panel));
  }

  /** Ask the server for pending edits and show this notebook's; the diffs now shown there. */
  async show(panel: NotebookPanel): Promise<{ reached: boolean; diffs: CellDiff[] }> {
    const reached = await this.proposals.refresh();
    await this.sync(panel);
    const diffs = [...(this.shown.get(panel)?.values() ?? [])].sort(
      (a, b) => panel.content.widgets.indexOf(a.cell) - panel.content.widgets.indexOf(b.cell)
    );
    return { reached, diffs };
  }

  private watch(panel: NotebookPanel): void {
    const onCells = () => this.schedule(panel);
    let model = panel.content.model;
    model?.cells.changed.connect(onCells, this);
    panel.content.modelChanged.connect(() => {
      model?.cells.changed.disconnect(onCells, this);
      model = panel.content.model;
      model?.cells.changed.connect(onCells, this);
      this.schedule(panel);
    }, this);
    panel.context.pathChanged.connect(() => this.schedule(panel), this);
    panel.disposed.connect(() => {
      window.clearTimeout(this.timers.get(panel));
      this.timers.delete(panel);
      this.shown.delete(panel);
    }, this);
    void panel.context.ready
      .then(async () => {
        await this.proposals.refresh();
        this.schedule(panel);
      })
      .catch(() => undefined); // a notebook that failed to open has no cells to show diffs at
  }

  /** One sync per burst: a reload removes and inserts every cell, one signal each. */
  private schedule(panel: NotebookPanel): void {
    if (this.timers.has(panel) || panel.isDisposed) {
      return;
    }
    this.timers.set(
      panel,
      window.setTimeout(() => {
        this.timers.delete(panel);
        void this.sync(panel);
      }, 0)
    );
  }

  private async pathOf(p: Proposal): Promise<string | null> {
    let path: string | null | undefined = this.paths.get(p.path);
    if (path === undefined) {
      // not kept when unknown: the server's root may not have been reachable yet
      path = await this.serverPath(p.path).catch(() => null);
      if (path !== null) {
        this.paths.set(p.path, path);
      }
    }
    return path;
  }

  private async sync(panel: NotebookPanel): Promise<void> {
    if (panel.isDisposed || !panel.context.isReady) {
      return;
    }
    const proposals = this.proposals.all().map(s => s.proposal).filter(p => p.kind === 'cell');
    const where = new Map<string, string | null>();
    for (const p of proposals) {
      where.set(p.id, await this.pathOf(p));
    }
    if (panel.isDisposed) {
      return;
    }
    // from here on synchronous: a sync started meanwhile sees what this one shows
    const wanted = pendingCellEdits(proposals, panel.context.path, p => where.get(p.id) ?? null);
    const cells = panel.content.widgets;
    const shown = this.shown.get(panel) ?? new Map<string, CellDiff>();
    this.shown.set(panel, shown);
    for (const [id, diff] of shown) {
      const p = wanted.find(w => w.id === id);
      if (diff.isDisposed || !p || cells[p.cell as number] !== diff.cell) {
        diff.dispose();
        shown.delete(id);
      }
    }
    for (const p of wanted) {
      const cell = cells[p.cell as number];
      const status = this.proposals.status(p.id);
      if (shown.has(p.id) || !cell || !status) {
        continue;
      }
      const diff = new CellDiff(cell, status, this.proposals, this.languages);
      const layout = cell.layout as PanelLayout;
      const input = layout.widgets.findIndex(w => w.hasClass('jp-Cell-inputWrapper'));
      layout.insertWidget(input + 1, diff);
      shown.set(p.id, diff);
    }
  }
}
