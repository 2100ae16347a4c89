/**
 * DirEng Workbench for JupyterLab: the plugins of the extension (the graph's MIME renderer
 * is the MIME extension, `mime.ts`). All of them are clients of the DirEng REST API.
 *
 *   direng-workbench:api        IDirEngAPI        the REST client
 *   direng-workbench:plugin     IDirEngConfig     settings (schema/plugin.json), context menus
 *   direng-workbench:workspace  IDirEngWorkspace  citations and engine paths → editors
 *   direng-workbench:graph      IDirEngGraphs     graphs in main-area tabs
 *   direng-workbench:proposals  IDirEngProposals  proposed edits, shared by the chat and the cells
 *   direng-workbench:chat       IDirEngChat       the chat side panel (#direng-chat)
 *   direng-workbench:cell-diffs                   pending cell edits as diffs at their cells
 *   direng-workbench:tasks                        the tasks side panel (#direng-tasks), the planner's calibration
 *   direng-workbench:status                       the status bar item (.direng-status)
 *   direng-workbench:commands                     palette commands, launcher card
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, InputDialog, MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { CodeEditor } from '@jupyterlab/codeeditor';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { PageConfig } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IEditorTracker } from '@jupyterlab/fileeditor';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { DirEngAPI } from './api';
import { CALIBRATION_ID, CalibrationView } from './calibration';
import { CellDiffs } from './cellDiff';
import { ChatPanel } from './chat';
import { Citation } from './citations';
import { DEFAULT_SETTINGS, DirEngConfig, DirEngSettings, config } from './config';
import { Editors } from './editor';
import { GraphData } from './graphModel';
import { GraphView } from './graphView';
import { chatIcon, graphIcon, tasksIcon } from './icons';
import { toServerPath } from './paths';
import { EditProposals } from './proposals';
import { IndexStatusItem } from './status';
import { TasksPanel } from './tasks';
import { IDirEngAPI, IDirEngChat, IDirEngConfig, IDirEngGraphs, IDirEngProposals, IDirEngWorkspace } from './tokens';

export * from './tokens';

const CATEGORY = 'DirEng';

export namespace CommandIDs {
  export const openChat = 'direng:open-chat';
  export const newConversation = 'direng:new-conversation';
  export const askSelection = 'direng:ask-selection';
  export const explainSymbol = 'direng:explain-symbol';
  export const graphSymbol = 'direng:graph-symbol';
  export const openGraph = 'direng:open-graph';
  export const openTour = 'direng:open-tour';
  export const openTasks = 'direng:open-tasks';
  export const refreshIndex = 'direng:refresh-index';
  export const newNotebook = 'direng:new-notebook';
  export const showPendingEdits = 'direng:show-pending-edits';
  export const showCalibration = 'direng:show-calibration';
}

const TOUR = 'notebooks/tour.ipynb';

/** The REST API client. */
const apiPlugin: JupyterFrontEndPlugin<DirEngAPI> = {
  id: 'direng-workbench:api',
  description: 'The client of the DirEng REST API (/direng/api/).',
  autoStart: true,
  provides: IDirEngAPI,
  activate: (): DirEngAPI => config.api
};

/** Settings: number of hits, graph node cap, conversation per file (schema/plugin.json). */
const settingsPlugin: JupyterFrontEndPlugin<DirEngConfig> = {
  id: 'direng-workbench:plugin',
  description: 'DirEng Workbench settings.',
  autoStart: true,
  provides: IDirEngConfig,
  optional: [ISettingRegistry],
  activate: (app: JupyterFrontEnd, registry: ISettingRegistry | null): DirEngConfig => {
    if (registry) {
      const load = (s: ISettingRegistry.ISettings) => {
        const values: Partial<DirEngSettings> = {};
        for (const key of Object.keys(DEFAULT_SETTINGS) as (keyof DirEngSettings)[]) {
          const v = s.get(key).composite;
          if (v !== undefined && v !== null) {
            (values as Record<string, unknown>)[key] = v;
          }
        }
        config.update(values);
      };
      registry
        .load(settingsPlugin.id)
        .then(s => {
          load(s);
          s.changed.connect(load);
        })
        .catch(err => console.warn('direng-workbench: settings failed to load', err));
    }
    return config;
  }
};

/** Citations and engine paths opened in JupyterLab's editors. */
const workspacePlugin: JupyterFrontEndPlugin<IDirEngWorkspace> = {
  id: 'direng-workbench:workspace',
  description: 'Opens DirEng citations (path:start-end) in the editor at the line.',
  autoStart: true,
  requires: [IDocumentManager, IDirEngAPI],
  provides: IDirEngWorkspace,
  activate: (app: JupyterFrontEnd, docManager: IDocumentManager, api: DirEngAPI): IDirEngWorkspace => {
    const serverRoot = PageConfig.getOption('serverRoot');
    const serverPath = async (path: string): Promise<string | null> => {
      const root = await api.health().then(
        h => h.root,
        () => null
      );
      return toServerPath(path, serverRoot, root);
    };
    const exists = async (path: string): Promise<boolean> => {
      try {
        await app.serviceManager.contents.get(path, { content: false });
        return true;
      } catch {
        return false;
      }
    };
    const workspace: IDirEngWorkspace = {
      serverPath,
      async openCitation(c: Citation): Promise<void> {
        const path = await serverPath(c.path);
        if (path === null) {
          Notification.warning(`DirEng: ${c.path} is outside the Jupyter server's root.`, { autoClose: 5000 });
          return;
        }
        const widget = docManager.openOrReveal(path, path.endsWith('.ipynb') ? undefined : 'Editor');
        if (!widget) {
          return;
        }
        app.shell.activateById(widget.id);
        await widget.context.ready;
        const content = widget.content as unknown as {
          editor?: CodeEditor.IEditor;
          activeCellIndex?: number;
          activeCell?: { editor: CodeEditor.IEditor | null } | null;
          widgets?: readonly unknown[];
          scrollToItem?: (index: number) => Promise<void>;
        };
        if (c.cell !== undefined && content.activeCellIndex !== undefined) {
          // a notebook: the cited cell becomes the active one, scrolled into view, cursor on the line
          content.activeCellIndex = Math.max(0, Math.min(c.cell, (content.widgets?.length ?? 1) - 1));
          await content.scrollToItem?.(content.activeCellIndex);
        }
        const editor = content.editor ?? content.activeCell?.editor ?? null;
        if (editor) {
          const line = Math.max(0, Math.min(c.start - 1, editor.lineCount - 1));
          const pos = { line, column: 0 };
          editor.setCursorPosition(pos);
          editor.revealPosition(pos);
          editor.focus();
        }
      },
      async openEnginePath(path: string, factory?: string): Promise<boolean> {
        const p = await serverPath(path);
        if (p === null || !(await exists(p))) {
          return false;
        }
        const widget = docManager.openOrReveal(p, factory);
        if (widget) {
          app.shell.activateById(widget.id);
        }
        return !!widget;
      },
      async reload(path: string): Promise<'reloaded' | 'unsaved' | 'not-open'> {
        const p = await serverPath(path);
        const widget = p === null ? undefined : docManager.findWidget(p);
        const context = widget ? docManager.contextForWidget(widget) : undefined;
        if (!context) {
          return 'not-open';
        }
        if (context.model.dirty) {
          return 'unsaved'; // never drop the user's unsaved work
        }
        await context.revert();
        return 'reloaded';
      }
    };
    config.openCitation = c => void workspace.openCitation(c);
    return workspace;
  }
};

/** Graphs in main-area tabs (`direng:open-graph`, the renderer's "Open in main area"). */
const graphPlugin: JupyterFrontEndPlugin<IDirEngGraphs> = {
  id: 'direng-workbench:graph',
  description: 'Shows DirEng symbol graphs in main-area tabs.',
  autoStart: true,
  requires: [IDirEngConfig],
  optional: [ICommandPalette],
  provides: IDirEngGraphs,
  activate: (app: JupyterFrontEnd, cfg: DirEngConfig, palette: ICommandPalette | null): IDirEngGraphs => {
    let counter = 0;
    const graphs: IDirEngGraphs = {
      async open(what: string | GraphData): Promise<void> {
        const view = new GraphView({ config: cfg, main: true });
        const widget = new MainAreaWidget({ content: view });
        const label = typeof what === 'string' ? what : (what.nodes.find(n => n.id === what.center)?.name ?? what.center);
        widget.id = `direng-graph-${++counter}`;
        widget.title.label = `Graph: ${label}`;
        widget.title.icon = graphIcon;
        widget.title.closable = true;
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
        if (typeof what === 'string') {
          await view.loadSymbol(what);
        } else {
          view.setGraph(what);
        }
      }
    };
    cfg.openGraph = what => void graphs.open(what);
    app.commands.addCommand(CommandIDs.openGraph, {
      label: args => (args.symbol ? `DirEng: Graph of ${args.symbol}` : 'DirEng: Open Graph in Main Area…'),
      caption: "Show a symbol's call/import graph in a main-area tab",
      icon: graphIcon,
      execute: async args => {
        let symbol = typeof args.symbol === 'string' ? args.symbol : '';
        if (!symbol) {
          const r = await InputDialog.getText({ title: 'DirEng graph of symbol', placeholder: 'e.g. charge_card or Cart.total' });
          symbol = (r.button.accept && r.value?.trim()) || '';
        }
        if (symbol) {
          await graphs.open(symbol.replace(/^@/, ''));
        }
      }
    });
    palette?.addItem({ command: CommandIDs.openGraph, category: CATEGORY });
    return graphs;
  }
};

/** The edits DirEng proposed, one state for the chat's cards and the cells' diffs. */
const proposalsPlugin: JupyterFrontEndPlugin<IDirEngProposals> = {
  id: 'direng-workbench:proposals',
  description: 'The edits DirEng proposed and their Accept / Reject, shared by the chat panel and the notebooks.',
  autoStart: true,
  requires: [IDirEngAPI, IDirEngWorkspace],
  provides: IDirEngProposals,
  activate: (app: JupyterFrontEnd, api: DirEngAPI, workspace: IDirEngWorkspace): IDirEngProposals =>
    new EditProposals(api, path => workspace.reload(path))
};

/** Pending cell edits as side-by-side diffs at their cells, with Accept / Reject there. */
const cellDiffsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'direng-workbench:cell-diffs',
  description: 'Shows a pending DirEng cell edit as a side-by-side diff at its cell, with Accept / Reject.',
  autoStart: true,
  requires: [IDirEngProposals, IDirEngWorkspace, INotebookTracker],
  optional: [IEditorLanguageRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    proposals: IDirEngProposals,
    workspace: IDirEngWorkspace,
    notebooks: INotebookTracker,
    languages: IEditorLanguageRegistry | null,
    palette: ICommandPalette | null
  ): void => {
    const diffs = new CellDiffs(notebooks, proposals, path => workspace.serverPath(path), languages);
    app.commands.addCommand(CommandIDs.showPendingEdits, {
      label: 'DirEng: Show Pending Edits for This Notebook',
      caption: "Show the edits DirEng proposed for this notebook's cells, as diffs at the cells",
      isEnabled: () => notebooks.currentWidget !== null,
      execute: async () => {
        const panel = notebooks.currentWidget;
        if (!panel) {
          return;
        }
        app.shell.activateById(panel.id);
        const { reached, diffs: shown } = await diffs.show(panel);
        if (!reached) {
          Notification.error('DirEng: the proposals could not be read from the server.', { autoClose: 5000 });
        } else if (!shown.length) {
          Notification.info(`DirEng: no pending edits for ${panel.context.path}.`, { autoClose: 4000 });
        } else {
          const first = panel.content.widgets.indexOf(shown[0].cell);
          panel.content.activeCellIndex = first;
          await panel.content.scrollToItem(first);
          shown[0].node.scrollIntoView({ block: 'nearest' });
        }
      }
    });
    palette?.addItem({ command: CommandIDs.showPendingEdits, category: CATEGORY });
  }
};

/** The chat side panel. */
const chatPlugin: JupyterFrontEndPlugin<IDirEngChat> = {
  id: 'direng-workbench:chat',
  description: 'The DirEng chat panel: one conversation per notebook or file.',
  autoStart: true,
  requires: [IDirEngAPI, IDirEngConfig, IRenderMimeRegistry, IDirEngWorkspace, IDirEngGraphs, IDocumentManager, IDirEngProposals],
  optional: [ILabShell, ILayoutRestorer, INotebookTracker, IEditorTracker, ICommandPalette],
  provides: IDirEngChat,
  activate: (
    app: JupyterFrontEnd,
    api: DirEngAPI,
    cfg: DirEngConfig,
    rendermime: IRenderMimeRegistry,
    workspace: IDirEngWorkspace,
    graphs: IDirEngGraphs,
    docManager: IDocumentManager,
    proposals: IDirEngProposals,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null,
    notebooks: INotebookTracker | null,
    editors: IEditorTracker | null,
    palette: ICommandPalette | null
  ): IDirEngChat => {
    const edit = new Editors(app.shell, notebooks, editors);
    const panel = new ChatPanel({
      api,
      config: cfg,
      context: () => edit.context(),
      proposals,
      rendermime,
      actions: {
        openCitation: c => void workspace.openCitation(c),
        openLink: href => {
          if (/^[a-z][a-z0-9+.-]*:/i.test(href)) {
            window.open(href, '_blank', 'noopener');
            return;
          }
          const [path, hash] = href.split('#');
          const line = /line=(\d+)/.exec(hash ?? '');
          void workspace.openCitation({
            path: decodeURIComponent(path),
            start: line ? Number(line[1]) + 1 : 1,
            end: line ? Number(line[1]) + 1 : 1
          });
        },
        insertBelow: code => edit.insertBelow(code),
        replaceActive: code => edit.replaceActive(code),
        copy: code => edit.copy(code)
      },
      openGraph: symbol => void graphs.open(symbol),
      activate: () => app.shell.activateById(panel.id)
    });
    app.shell.add(panel, 'right', { rank: 100 });
    restorer?.add(panel, 'direng-chat');

    // The conversation follows the current document.
    const follow = () => {
      const widget = app.shell.currentWidget;
      const path = widget ? docManager.contextForWidget(widget)?.path : undefined;
      if (path) {
        panel.setPath(path);
      }
    };
    labShell?.currentChanged.connect(follow);
    app.restored.then(follow).catch(() => undefined);

    app.commands.addCommand(CommandIDs.openChat, {
      label: 'DirEng: Open Chat',
      caption: 'Open the DirEng chat panel',
      icon: chatIcon,
      execute: () => panel.open()
    });
    app.commands.addCommand(CommandIDs.newConversation, {
      label: 'DirEng: New Conversation',
      caption: 'Forget the current conversation and start a new one',
      execute: () => panel.newConversation()
    });
    for (const command of [CommandIDs.openChat, CommandIDs.newConversation]) {
      palette?.addItem({ command, category: CATEGORY });
    }
    return panel;
  }
};

/** The tasks side panel. */
const tasksPlugin: JupyterFrontEndPlugin<void> = {
  id: 'direng-workbench:tasks',
  description: 'The DirEng tasks panel: create, estimate, approve and follow delegated tasks.',
  autoStart: true,
  requires: [IDirEngAPI, IDirEngConfig, IDirEngWorkspace, IRenderMimeRegistry],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    api: DirEngAPI,
    cfg: DirEngConfig,
    workspace: IDirEngWorkspace,
    rendermime: IRenderMimeRegistry,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ): void => {
    const showJSON = (title: string, data: Record<string, unknown>) => {
      let content: Widget;
      if (rendermime.mimeTypes.includes('application/json')) {
        const renderer = rendermime.createRenderer('application/json');
        void renderer.renderModel(new MimeModel({ data: { 'application/json': data as never }, trusted: true }));
        content = renderer;
      } else {
        content = new Widget();
        const pre = document.createElement('pre');
        pre.textContent = JSON.stringify(data, null, 2);
        content.node.appendChild(pre);
      }
      content.addClass('direng-json');
      const widget = new MainAreaWidget({ content });
      widget.title.label = title;
      widget.title.closable = true;
      app.shell.add(widget, 'main');
    };
    // The planner's calibration in a main-area tab (one at a time; opening it again reloads it).
    let calibration: MainAreaWidget<CalibrationView> | null = null;
    app.commands.addCommand(CommandIDs.showCalibration, {
      label: 'DirEng: Show Planner Calibration',
      caption: "How well PLMS's duration estimates fit the finished runs (GET /plms/calibration)",
      execute: async () => {
        if (!calibration || calibration.isDisposed) {
          calibration = new MainAreaWidget({ content: new CalibrationView(api) });
          calibration.id = `${CALIBRATION_ID}-tab`;
          calibration.title.label = 'Planner Calibration';
          calibration.title.closable = true;
          app.shell.add(calibration, 'main');
        }
        app.shell.activateById(calibration.id);
        await calibration.content.refresh();
      }
    });
    palette?.addItem({ command: CommandIDs.showCalibration, category: CATEGORY });
    const openCalibration = () => void app.commands.execute(CommandIDs.showCalibration);
    const panel = new TasksPanel({ api, config: cfg, workspace, showJSON, openCalibration });
    app.shell.add(panel, 'left', { rank: 700 });
    restorer?.add(panel, 'direng-tasks');
    app.commands.addCommand(CommandIDs.openTasks, {
      label: 'DirEng: Open Tasks',
      caption: 'Open the DirEng tasks panel',
      icon: tasksIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: CommandIDs.openTasks, category: CATEGORY });
  }
};

/** The status bar item. */
const statusPlugin: JupyterFrontEndPlugin<void> = {
  id: 'direng-workbench:status',
  description: "The DirEng index's freshness in the status bar; click to refresh.",
  autoStart: true,
  requires: [IDirEngAPI, IDirEngConfig],
  optional: [IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    api: DirEngAPI,
    cfg: DirEngConfig,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ): void => {
    if (!statusBar) {
      return;
    }
    const item = new IndexStatusItem(api, cfg);
    statusBar.registerStatusItem('direng-workbench:status', { item, align: 'left', rank: 100 });
    app.commands.addCommand(CommandIDs.refreshIndex, {
      label: 'DirEng: Refresh the Index',
      caption: 'Run one incremental index pass now',
      execute: () => item.refreshIndex()
    });
    palette?.addItem({ command: CommandIDs.refreshIndex, category: CATEGORY });
  }
};

/** Palette commands on the current editor, the tour, and a launcher card when needed. */
const commandsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'direng-workbench:commands',
  description: 'DirEng commands: ask about the selection, explain or graph the symbol under the cursor, the tour.',
  autoStart: true,
  requires: [IDirEngChat, IDirEngGraphs, IDirEngWorkspace],
  optional: [INotebookTracker, IEditorTracker, ICommandPalette, ILauncher],
  activate: (
    app: JupyterFrontEnd,
    chat: IDirEngChat,
    graphs: IDirEngGraphs,
    workspace: IDirEngWorkspace,
    notebooks: INotebookTracker | null,
    editors: IEditorTracker | null,
    palette: ICommandPalette | null,
    launcher: ILauncher | null
  ): void => {
    const edit = new Editors(app.shell, notebooks, editors);
    const hasEditor = () => edit.current() !== null;
    const needSymbol = (): string | null => {
      const symbol = edit.symbolUnderCursor();
      if (!symbol) {
        Notification.warning('DirEng: put the cursor on a symbol first.', { autoClose: 3000 });
      }
      return symbol;
    };

    app.commands.addCommand(CommandIDs.askSelection, {
      label: 'DirEng: Ask About the Selection',
      caption: 'Ask DirEng what the selected code does',
      isEnabled: hasEditor,
      execute: async () => {
        const sel = edit.selection();
        if (!sel || !sel.text.trim()) {
          Notification.warning('DirEng: select some code first.', { autoClose: 3000 });
          return;
        }
        const code = sel.text.length > 4000 ? `${sel.text.slice(0, 4000)}\n…` : sel.text;
        await chat.ask(`What does this code from ${sel.path} (line ${sel.line}) do?\n\n\`\`\`\n${code}\n\`\`\``);
      }
    });
    app.commands.addCommand(CommandIDs.explainSymbol, {
      label: 'DirEng: Explain the Symbol Under the Cursor',
      caption: 'Ask DirEng to explain the symbol under the cursor',
      isEnabled: hasEditor,
      execute: async () => {
        const symbol = needSymbol();
        if (symbol) {
          await chat.ask(`explain ${symbol}`);
        }
      }
    });
    app.commands.addCommand(CommandIDs.graphSymbol, {
      label: 'DirEng: Graph the Symbol Under the Cursor',
      caption: "Show the call graph of the symbol under the cursor",
      icon: graphIcon,
      isEnabled: hasEditor,
      execute: async () => {
        const symbol = needSymbol();
        if (symbol) {
          await graphs.open(symbol);
        }
      }
    });
    app.commands.addCommand(CommandIDs.openTour, {
      label: 'DirEng: Open the Tour',
      caption: `Open ${TOUR}`,
      execute: async () => {
        if (!(await workspace.openEnginePath(TOUR))) {
          await app.commands.execute('docmanager:open', { path: TOUR });
        }
      }
    });
    for (const command of [CommandIDs.askSelection, CommandIDs.explainSymbol, CommandIDs.graphSymbol, CommandIDs.openTour]) {
      palette?.addItem({ command, category: CATEGORY });
    }

    // The `direng` kernelspec already puts a "DirEng" notebook card in the launcher; offer
    // one here only where that kernelspec is missing (a notebook with the %direng magics).
    if (launcher) {
      const specs = app.serviceManager.kernelspecs;
      void specs.ready.then(() => {
        if (specs.specs?.kernelspecs['direng']) {
          return;
        }
        app.commands.addCommand(CommandIDs.newNotebook, {
          label: 'DirEng Notebook',
          caption: 'A new notebook that loads the %direng magics',
          icon: chatIcon,
          execute: async () => {
            const nb = await app.commands.execute('notebook:create-new', { kernelName: specs.specs?.default ?? 'python3' });
            const cell = nb?.content?.activeCell;
            cell?.model.sharedModel.setSource('%load_ext direng_kernel\n%direng status');
          }
        });
        launcher.add({ command: CommandIDs.newNotebook, category: 'Notebook', rank: 10 });
      });
    }
  }
};

const plugins: JupyterFrontEndPlugin<unknown>[] = [
  apiPlugin,
  settingsPlugin,
  workspacePlugin,
  graphPlugin,
  proposalsPlugin,
  chatPlugin,
  cellDiffsPlugin,
  tasksPlugin,
  statusPlugin,
  commandsPlugin
];

export default plugins;
