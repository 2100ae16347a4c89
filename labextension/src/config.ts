/**
 * State shared by the plugins and the MIME renderer (one module instance per page: the
 * extension and the MIME extension are modules of the same federated bundle).
 *
 * The MIME renderer gets no plugin tokens, so the settings it needs (the graph node cap)
 * and the actions it offers (open a citation, open a graph in the main area) are published
 * here by the plugins once they are activated.
 */
import { Signal } from '@lumino/signaling';

import { DirEngAPI } from './api';
import { Citation } from './citations';
import { GraphData } from './graphModel';

export interface DirEngSettings {
  /** Hits of `/search` in the chat panel. */
  hits: number;
  /** Most nodes the graph viewer draws (also its `max_nodes` when expanding). */
  graphNodeCap: number;
  /** One conversation per notebook/file path (else one for all). */
  conversationPerFile: boolean;
  /** Answers longer than this (characters) are cut, with a "show more" button. */
  answerCutoff: number;
  sendContext: boolean;
  /** Seconds between polls of the index status (status bar). */
  statusInterval: number;
  /** A new task without a lane: when the router is unsure, ask which of its two lanes. */
  askLaneWhenUnsure: boolean;
}

export const DEFAULT_SETTINGS: DirEngSettings = {
  hits: 10,
  graphNodeCap: 150,
  conversationPerFile: true,
  answerCutoff: 12000,
  sendContext: true,
  statusInterval: 5,
  askLaneWhenUnsure: true
};

export class DirEngConfig {
  private _settings: DirEngSettings = { ...DEFAULT_SETTINGS };
  private _changed = new Signal<this, DirEngSettings>(this);
  private _api: DirEngAPI | null = null;

  /** Opens `path:start-end` in the editor (set by the chat plugin). */
  openCitation: ((c: Citation) => void) | null = null;
  /** Shows a graph in a main-area tab (set by the graph plugin). */
  openGraph: ((what: string | GraphData) => void) | null = null;

  get settings(): DirEngSettings {
    return this._settings;
  }

  get changed(): Signal<this, DirEngSettings> {
    return this._changed;
  }

  update(values: Partial<DirEngSettings>): void {
    this._settings = { ...this._settings, ...values };
    this._changed.emit(this._settings);
  }

  /** The page's one API client. */
  get api(): DirEngAPI {
    if (!this._api) {
      this._api = new DirEngAPI();
    }
    return this._api;
  }
}

export const config = new DirEngConfig();
