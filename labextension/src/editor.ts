/**
 * The editors DirEng reads from and writes into: the active notebook cell or file editor.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Clipboard, Notification } from '@jupyterlab/apputils';
import { CodeEditor } from '@jupyterlab/codeeditor';
import { IDocumentWidget } from '@jupyterlab/docregistry';
import { FileEditor, IEditorTracker } from '@jupyterlab/fileeditor';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

import { symbolAt } from './text';

export interface EditorContext {
  editor: CodeEditor.IEditor;
  /** The document's path. */
  path: string;
  /** Whether the editor is a notebook cell's. */
  cell: boolean;
}

export class Editors {
  constructor(
    private readonly shell: JupyterFrontEnd.IShell,
    private readonly notebooks: INotebookTracker | null,
    private readonly editors: IEditorTracker | null
  ) {}

  /**
   * Where code goes: the current main-area notebook or file editor, else the last notebook,
   * else the last file editor (the same order as `current`). Clicking in a side panel (the
   * chat's code-block actions) does not change the main area's current widget.
   */
  private target(): { notebook: NotebookPanel } | { file: IDocumentWidget<FileEditor> } | null {
    const widget = this.shell.currentWidget;
    const nb = this.notebooks?.currentWidget ?? null;
    const fe = this.editors?.currentWidget ?? null;
    if (fe && widget === fe) {
      return { file: fe };
    }
    if (nb) {
      return { notebook: nb };
    }
    return fe ? { file: fe } : null;
  }

  /** The editor of the current main-area widget, else of the last notebook or file editor. */
  current(): EditorContext | null {
    const widget = this.shell.currentWidget;
    const nb = this.notebooks?.currentWidget ?? null;
    const fe = this.editors?.currentWidget ?? null;
    const fromNotebook = (): EditorContext | null => {
      const cell = nb?.content.activeCell;
      return nb && cell?.editor ? { editor: cell.editor, path: nb.context.path, cell: true } : null;
    };
    const fromFile = (): EditorContext | null =>
      fe ? { editor: fe.content.editor, path: fe.context.path, cell: false } : null;
    if (nb && widget === nb) {
      return fromNotebook();
    }
    if (fe && widget === fe) {
      return fromFile();
    }
    return fromNotebook() ?? fromFile();
  }

  /** The document the user is in: its path, and in a notebook the active cell (index, source). */
  context(maxSource = 4000): { path: string; cell?: number; cell_source: string } | null {
    const ctx = this.current();
    if (!ctx) {
      return null;
    }
    const source = ctx.editor.model.sharedModel.getSource().slice(0, maxSource);
    const nb = this.notebooks?.currentWidget;
    if (ctx.cell && nb) {
      return { path: ctx.path, cell: nb.content.activeCellIndex, cell_source: source };
    }
    return { path: ctx.path, cell_source: source };
  }

  /** The selected text of the current editor, or its whole text when nothing is selected. */
  selection(): { text: string; path: string; line: number } | null {
    const ctx = this.current();
    if (!ctx) {
      return null;
    }
    const { editor } = ctx;
    const source = editor.model.sharedModel.getSource();
    const sel = editor.getSelection();
    const a = editor.getOffsetAt(sel.start);
    const b = editor.getOffsetAt(sel.end);
    const text = a === b ? source : source.slice(Math.min(a, b), Math.max(a, b));
    return { text, path: ctx.path, line: Math.min(sel.start.line, sel.end.line) + 1 };
  }

  /** The dotted identifier under the cursor of the current editor. */
  symbolUnderCursor(): string | null {
    const ctx = this.current();
    if (!ctx) {
      return null;
    }
    const offset = ctx.editor.getOffsetAt(ctx.editor.getCursorPosition());
    return symbolAt(ctx.editor.model.sharedModel.getSource(), offset);
  }

  /** A new code cell below the active one in the current notebook, holding `code`. */
  insertBelow(code: string): boolean {
    const to = this.target();
    if (to && 'notebook' in to) {
      NotebookActions.insertBelow(to.notebook.content);
      to.notebook.content.activeCell?.model.sharedModel.setSource(code);
      return true;
    }
    if (to) {
      const editor = to.file.content.editor;
      const source = editor.model.sharedModel.getSource();
      const line = editor.getCursorPosition().line;
      const lines = source.split('\n');
      const at = lines.slice(0, line + 1).join('\n').length;
      editor.model.sharedModel.updateSource(at, at, `\n${code}`);
      return true;
    }
    Notification.warning('DirEng: open a notebook or a file to insert code into.', { autoClose: 4000 });
    return false;
  }

  /** The active cell's source (or the file editor's selection) replaced by `code`. */
  replaceActive(code: string): boolean {
    const to = this.target();
    const cell = to && 'notebook' in to ? to.notebook.content.activeCell : null;
    if (cell) {
      cell.model.sharedModel.setSource(code);
      return true;
    }
    if (to && 'file' in to) {
      const editor = to.file.content.editor;
      const sel = editor.getSelection();
      const a = editor.getOffsetAt(sel.start);
      const b = editor.getOffsetAt(sel.end);
      editor.model.sharedModel.updateSource(Math.min(a, b), Math.max(a, b), code);
      return true;
    }
    Notification.warning('DirEng: there is no active cell to replace.', { autoClose: 4000 });
    return false;
  }

  copy(code: string): void {
    Clipboard.copyToSystem(code);
    Notification.info('Copied to the clipboard.', { autoClose: 1500 });
  }
}
