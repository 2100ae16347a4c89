/**
 * The tokens the DirEng plugins provide and require.
 */
import { Token } from '@lumino/coreutils';

import { DirEngAPI } from './api';
import { Citation } from './citations';
import { DirEngConfig } from './config';
import { GraphData } from './graphModel';
import { IEditProposals } from './proposals';

/** The REST API client (`{base_url}direng/api/`). */
export const IDirEngAPI = new Token<DirEngAPI>('direng-workbench:IDirEngAPI', 'The DirEng REST API client.');

/** The extension's settings (schema `plugin.json`) and shared hooks. */
export const IDirEngConfig = new Token<DirEngConfig>(
  'direng-workbench:IDirEngConfig',
  'DirEng settings: hits, graph node cap, conversation per file.'
);

/** Opening files at a citation and knowing the engine's root and store. */
export interface IDirEngWorkspace {
  /** Open `path:start-end` in JupyterLab's editor, the cursor on `start`. */
  openCitation(c: Citation): Promise<void>;
  /** Open a path of the engine (relative to its root, or absolute) through the contents API. */
  openEnginePath(path: string, factory?: string): Promise<boolean>;
  /** The contents path of an engine path, or null when it is outside the server root. */
  serverPath(path: string): Promise<string | null>;
  /**
   * Reload an open document from disk when it has no unsaved changes (after DirEng wrote it):
   * `reloaded`, `unsaved` (left alone: never drop the user's work) or `not-open`.
   */
  reload(path: string): Promise<'reloaded' | 'unsaved' | 'not-open'>;
}

export const IDirEngWorkspace = new Token<IDirEngWorkspace>(
  'direng-workbench:IDirEngWorkspace',
  'Opens DirEng citations and engine paths in JupyterLab.'
);

/** The chat panel, for commands that ask DirEng something. */
export interface IDirEngChat {
  /** Show the panel and send `message` in the current conversation. */
  ask(message: string): Promise<void>;
  /** Show the panel and focus its input. */
  open(): void;
  /** Forget the current conversation and start a new one. */
  newConversation(): Promise<void>;
}

export const IDirEngChat = new Token<IDirEngChat>('direng-workbench:IDirEngChat', 'The DirEng chat panel.');

/** The graph viewer in the main area. */
export interface IDirEngGraphs {
  /** Open a symbol's graph (or a graph payload) in a main-area tab. */
  open(what: string | GraphData): Promise<void>;
}

export const IDirEngGraphs = new Token<IDirEngGraphs>('direng-workbench:IDirEngGraphs', 'DirEng graph viewer tabs.');

/**
 * The edits DirEng proposed, shared by the chat panel's cards and the diffs at notebook cells:
 * deciding in one view updates the other.
 */
export type IDirEngProposals = IEditProposals;

export const IDirEngProposals = new Token<IDirEngProposals>(
  'direng-workbench:IDirEngProposals',
  'The edits DirEng proposed (cell edits, patches) and their Accept / Reject.'
);
