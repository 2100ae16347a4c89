/**
 * The status bar item (`.direng-status`): the index's freshness from
 * `GET /direng/api/index/status`, polled every few seconds; a click runs
 * `POST /direng/api/index/refresh`.
 */
import { Notification } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { DirEngAPI, DirEngAPIError } from './api';
import { DirEngConfig } from './config';
import { IndexStatus, statusText, statusTitle } from './format';

export class IndexStatusItem extends Widget {
  private status: IndexStatus | null = null;
  private error: string | null = null;
  private refreshing = false;
  private readonly poll: Poll;

  constructor(
    private readonly api: DirEngAPI,
    private readonly config: DirEngConfig
  ) {
    super();
    this.addClass('direng-status');
    this.addClass('jp-StatusBar-TextItem');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this.node.addEventListener('click', () => void this.refreshIndex());
    this.node.addEventListener('keydown', ev => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        void this.refreshIndex();
      }
    });
    this.poll = new Poll({
      factory: () => this.fetch(),
      frequency: this.frequency(),
      standby: 'when-hidden',
      name: 'direng-workbench:index-status'
    });
    this.config.changed.connect(() => {
      this.poll.frequency = this.frequency();
    });
    this.render();
  }

  dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  private frequency() {
    const interval = Math.max(1, this.config.settings.statusInterval) * 1000;
    return { interval, backoff: true, max: Math.max(interval, 60_000) };
  }

  private async fetch(): Promise<void> {
    try {
      this.status = await this.api.indexStatus();
      this.error = null;
    } catch (err) {
      this.error = err instanceof DirEngAPIError ? err.describe() : String(err);
      this.render();
      throw err; // the poll backs off while the server does not answer
    }
    this.render();
  }

  /** Run one incremental index pass now. */
  async refreshIndex(): Promise<void> {
    if (this.refreshing) {
      return;
    }
    this.refreshing = true;
    this.render();
    try {
      await this.api.refresh();
    } catch (err) {
      Notification.error(`DirEng: refresh failed: ${err instanceof DirEngAPIError ? err.describe() : String(err)}`, {
        autoClose: 6000
      });
    } finally {
      this.refreshing = false;
      this.render();
      void this.poll.refresh();
    }
  }

  private render(): void {
    this.node.textContent = statusText(this.status, { refreshing: this.refreshing, error: this.error });
    this.node.title = this.refreshing ? 'Refreshing the DirEng index…' : statusTitle(this.status, this.error);
    this.node.dataset.fresh = String(!!this.status?.fresh);
  }
}
