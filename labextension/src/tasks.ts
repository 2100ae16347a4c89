/**
 * The tasks panel (`#direng-tasks`): delegated tasks with lane, state, estimate and age; a
 * form to create one; Estimate → Approve (approve, then start) / Cancel; the live event log
 * of the selected task (resuming after the last seq); at the end its KPIs, links to the
 * output notebook and the passport, and Replay; and a table of runs with KPIs.
 */
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { DirEngAPI, DirEngAPIError, ReplayReport, RoutingDecision, Run, Task, TaskAction } from './api';
import { DirEngConfig } from './config';
import { EventLog, TaskEvent, emptyLog, isSettledState, reduceEvents } from './events';
import { followTask } from './follow';
import {
  formatAge,
  formatCost,
  formatDuration,
  formatEstimate,
  formatEstimateShort,
  formatEstimateWhy,
  formatKpis
} from './format';
import { tasksIcon } from './icons';
import { runFiles } from './paths';
import { IDirEngWorkspace } from './tokens';

export const TASKS_ID = 'direng-tasks';

const BUILTIN_LANES = ['code-impl', 'code-api-design', 'data-schema', 'vector-ops', 'graph-ops', 'narrative'];

/** What a task in a state may do next (the buttons of its row). */
export function taskButtons(state: string): ('estimate' | 'approve' | 'start' | 'cancel')[] {
  switch (state) {
    case 'new':
      return ['estimate', 'cancel'];
    case 'estimated':
      return ['approve', 'cancel'];
    case 'approved':
    case 'interrupted':
      return ['start', 'cancel'];
    case 'queued':
    case 'running':
      return ['cancel'];
    default:
      return [];
  }
}

const LABELS = { estimate: 'Estimate', approve: 'Approve', start: 'Start', cancel: 'Cancel' };

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls = '', text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) {
    e.className = cls;
  }
  if (text !== undefined) {
    e.textContent = text;
  }
  return e;
}

function btn(label: string, cls: string, onClick: () => void, title = ''): HTMLButtonElement {
  const b = el('button', `jp-Button jp-mod-minimal jp-mod-styled direng-button ${cls}`, label);
  b.type = 'button';
  b.title = title;
  b.addEventListener('click', ev => {
    ev.preventDefault();
    ev.stopPropagation();
    onClick();
  });
  return b;
}

function describe(err: unknown): string {
  return err instanceof DirEngAPIError ? err.describe() : err instanceof Error ? err.message : String(err);
}


export interface TasksPanelOptions {
  api: DirEngAPI;
  config: DirEngConfig;
  workspace: IDirEngWorkspace;
  /** Show a JSON document (a passport outside the server root) in the main area. */
  showJSON: (title: string, data: Record<string, unknown>) => void;
  /** Open the planner's calibration (the "DirEng: Show Planner Calibration" command). */
  openCalibration?: () => void;
}

export class TasksPanel extends Widget {
  private readonly api: DirEngAPI;
  private readonly workspace: IDirEngWorkspace;
  private readonly showJSON: TasksPanelOptions['showJSON'];
  private readonly config: DirEngConfig;
  private readonly banner: HTMLElement;
  /** The two lanes to pick from when the router is unsure of a new task's brief. */
  private readonly laneChoice: HTMLElement;
  private readonly formError: HTMLElement;
  private readonly laneSelect: HTMLSelectElement;
  private readonly taskBody: HTMLTableSectionElement;
  private readonly detail: HTMLElement;
  private readonly runsBody: HTMLTableSectionElement;
  private readonly poll: Poll;
  private tasks: Task[] = [];
  private runs: Run[] = [];
  private selected: string | null = null;
  private followSerial = 0;
  /** Aborts the event stream being read (a new follow, or the panel closing, ends it). */
  private followAbort: AbortController | null = null;
  private log: EventLog = emptyLog();
  private lanesLoaded = false;

  constructor(options: TasksPanelOptions) {
    super();
    this.api = options.api;
    this.workspace = options.workspace;
    this.showJSON = options.showJSON;
    this.config = options.config;
    this.id = TASKS_ID;
    this.addClass('direng-tasks');
    this.title.icon = tasksIcon;
    this.title.caption = 'DirEng tasks';

    const header = el('div', 'direng-tasks-header');
    header.appendChild(el('span', 'direng-chat-title', 'DirEng tasks'));
    header.appendChild(btn('Refresh', 'direng-tasks-refresh', () => void this.poll.refresh(), 'Reload tasks and runs'));
    const openCalibration = options.openCalibration;
    if (openCalibration) {
      header.appendChild(
        btn('Calibration', 'direng-open-calibration', () => openCalibration(), "How well the planner's estimates fit the runs")
      );
    }
    this.banner = el('div', 'direng-unavailable');
    this.banner.hidden = true;

    // The form: title, brief, optional lane → POST /tasks.
    const form = el('form', 'direng-task-form');
    const title = el('input', 'jp-mod-styled direng-task-title');
    title.name = 'title';
    title.placeholder = 'Title';
    title.required = true;
    const brief = el('textarea', 'jp-mod-styled direng-task-brief');
    brief.name = 'brief';
    brief.placeholder = 'Brief: what should the lane do?';
    brief.rows = 3;
    this.laneSelect = el('select', 'jp-mod-styled direng-task-lane');
    this.laneSelect.name = 'lane';
    this.setLanes(BUILTIN_LANES);
    const submit = el('button', 'jp-Button jp-mod-accept jp-mod-styled direng-task-create', 'Create task');
    submit.type = 'submit';
    this.formError = el('div', 'direng-error');
    this.formError.hidden = true;
    this.laneChoice = el('div', 'direng-lane-choice');
    this.laneChoice.hidden = true;
    form.append(title, brief, this.laneSelect, submit, this.formError, this.laneChoice);
    form.addEventListener('submit', ev => {
      ev.preventDefault();
      void this.create(title, brief, submit);
    });

    const tasksTable = el('table', 'direng-task-table');
    const th = tasksTable.createTHead().insertRow();
    for (const h of ['Task', 'Lane', 'State', 'Est.', 'Age']) {
      th.appendChild(el('th', `direng-col-${h.replace('.', '').toLowerCase()}`, h));
    }
    this.taskBody = tasksTable.createTBody();

    this.detail = el('div', 'direng-task-detail');
    this.detail.hidden = true;

    const runsTable = el('table', 'direng-runs-table');
    const rh = runsTable.createTHead().insertRow();
    for (const h of ['Run', 'State', 'Duration', 'Cost', 'KPIs']) {
      rh.appendChild(el('th', `direng-col-${h.toLowerCase()}`, h));
    }
    this.runsBody = runsTable.createTBody();

    this.node.append(
      header,
      this.banner,
      form,
      el('h3', 'direng-section', 'Tasks'),
      tasksTable,
      this.detail,
      el('h3', 'direng-section', 'Runs'),
      runsTable
    );

    this.poll = new Poll({
      factory: () => this.reload(),
      frequency: { interval: 5000, backoff: true, max: 60_000 },
      standby: () => !this.isVisible || 'when-hidden',
      name: 'direng-workbench:tasks'
    });
  }

  dispose(): void {
    this.followSerial++;
    this.followAbort?.abort();
    this.poll.dispose();
    super.dispose();
  }

  protected onAfterShow(): void {
    void this.poll.refresh();
  }

  private setLanes(lanes: string[]): void {
    const current = this.laneSelect.value;
    this.laneSelect.textContent = '';
    const auto = el('option', '', 'Lane: route from the brief');
    auto.value = '';
    this.laneSelect.appendChild(auto);
    for (const lane of lanes) {
      const o = el('option', '', lane);
      o.value = lane;
      this.laneSelect.appendChild(o);
    }
    this.laneSelect.value = lanes.includes(current) ? current : '';
  }

  /** Tasks and runs, again. */
  async reload(): Promise<void> {
    try {
      const [tasks, runs] = await Promise.all([this.api.tasks(), this.api.runs()]);
      this.tasks = tasks;
      this.runs = runs;
      this.banner.hidden = true;
    } catch (err) {
      this.banner.textContent = `Tasks unavailable: ${describe(err)}`;
      this.banner.hidden = false;
      throw err;
    }
    if (!this.lanesLoaded) {
      this.lanesLoaded = true;
      this.api
        .pasHealth()
        .then(h => h.lanes && this.setLanes(Object.keys(h.lanes)))
        .catch(() => undefined);
    }
    this.renderTasks();
    this.renderRuns();
    const sel = this.tasks.find(t => t.id === this.selected);
    if (sel) {
      this.renderDetailHead(sel);
    }
  }

  private async create(title: HTMLInputElement, brief: HTMLTextAreaElement, submit: HTMLButtonElement): Promise<void> {
    this.formError.hidden = true;
    if (!title.value.trim()) {
      this.formError.textContent = 'A task needs a title.';
      this.formError.hidden = false;
      return;
    }
    submit.disabled = true;
    this.laneChoice.hidden = true;
    try {
      const lane = this.laneSelect.value || undefined;
      if (!lane && this.config.settings.askLaneWhenUnsure) {
        // routing help is optional: without it PEX routes the task as it always did
        const decision = await this.api.route(title.value.trim(), brief.value).catch(() => null);
        if (decision?.uncertain && decision.candidates.length > 1) {
          this.askLane(decision, title, brief, submit);
          return;
        }
      }
      await this.submitTask(title, brief, lane);
    } catch (err) {
      this.formError.textContent = describe(err);
      this.formError.hidden = false;
    } finally {
      submit.disabled = !this.laneChoice.hidden;
    }
  }

  private async submitTask(title: HTMLInputElement, brief: HTMLTextAreaElement, lane?: string): Promise<void> {
    const task = await this.api.createTask({ title: title.value.trim(), brief: brief.value, ...(lane ? { lane } : {}) });
    title.value = '';
    brief.value = '';
    this.selected = task.id;
    await this.reload().catch(() => undefined);
    this.select(task.id);
  }

  /**
   * The router is unsure: its two lanes, each a button with its reasons. The pick creates the
   * task in that lane, which PEX records as the answer (a labelled example, `asked`).
   */
  private askLane(decision: RoutingDecision, title: HTMLInputElement, brief: HTMLTextAreaElement, submit: HTMLButtonElement): void {
    const box = this.laneChoice;
    box.textContent = '';
    box.appendChild(
      el(
        'div',
        'direng-lane-choice-head',
        `DirEng is unsure which lane fits (margin ${decision.margin.toFixed(2)} < ${decision.threshold.toFixed(2)}); pick one:`
      )
    );
    const buttons: HTMLButtonElement[] = [];
    for (const c of decision.candidates) {
      const option = el('div', 'direng-lane-option');
      option.dataset.lane = c.lane;
      const pick = btn(c.lane, 'direng-lane-pick', () => {
        buttons.forEach(b => (b.disabled = true));
        void this.submitTask(title, brief, c.lane)
          .then(() => {
            box.hidden = true;
          })
          .catch(err => {
            this.formError.textContent = describe(err);
            this.formError.hidden = false;
            buttons.forEach(b => (b.disabled = false));
          })
          .finally(() => {
            submit.disabled = !box.hidden;
          });
      }, c.reasons.join('; '));
      pick.dataset.lane = c.lane;
      buttons.push(pick);
      option.appendChild(pick);
      const reasons = el('ul', 'direng-lane-reasons');
      for (const r of c.reasons) {
        reasons.appendChild(el('li', '', r));
      }
      option.appendChild(reasons);
      box.appendChild(option);
    }
    box.appendChild(
      btn('Back', 'direng-lane-choice-cancel', () => {
        box.hidden = true;
        submit.disabled = false;
      }, 'Edit the brief or choose a lane above')
    );
    box.hidden = false;
  }

  private renderTasks(): void {
    this.taskBody.textContent = '';
    if (!this.tasks.length) {
      const row = this.taskBody.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 5;
      cell.className = 'direng-empty';
      cell.textContent = 'No tasks yet: describe one above.';
      return;
    }
    for (const t of this.tasks) {
      const row = this.taskBody.insertRow();
      row.className = 'direng-task';
      row.classList.toggle('jp-mod-selected', t.id === this.selected);
      row.dataset.taskId = t.id;
      row.dataset.state = t.state;
      row.addEventListener('click', () => this.select(t.id));
      const name = row.insertCell();
      name.className = 'direng-task-name';
      name.appendChild(el('div', 'direng-task-label', t.title));
      name.title = t.brief || t.title;
      const actions = el('div', 'direng-task-actions');
      for (const a of taskButtons(t.state)) {
        actions.appendChild(btn(LABELS[a], `direng-task-${a}`, () => void this.act(t, a)));
      }
      name.appendChild(actions);
      row.insertCell().textContent = t.lane;
      const state = row.insertCell();
      state.appendChild(el('span', `direng-state direng-state-${t.state}`, t.state));
      const est = row.insertCell();
      est.className = 'direng-task-est-cell';
      est.textContent = formatEstimateShort(t.estimate);
      est.title = formatEstimateWhy(t.estimate);
      row.insertCell().textContent = formatAge(t.created_at);
    }
  }

  /** Estimate, Approve (approve, then start), Start or Cancel. */
  private async act(task: Task, action: TaskAction): Promise<void> {
    this.select(task.id);
    try {
      let t = await this.api.taskAction(task.id, action);
      if (action === 'approve') {
        t = await this.api.taskAction(task.id, 'start');
      }
      this.tasks = this.tasks.map(x => (x.id === t.id ? t : x));
      this.renderTasks();
      this.renderDetailHead(t);
      if (action === 'approve' || action === 'start' || action === 'cancel' || isSettledState(t.state)) {
        this.follow(t); // an estimate can escalate: following shows why, and the choices
      }
    } catch (err) {
      this.detailError(describe(err));
    }
    void this.poll.refresh();
  }

  // -- the selected task ---------------------------------------------------------------

  private select(id: string): void {
    const task = this.tasks.find(t => t.id === id);
    if (!task) {
      return;
    }
    const changed = this.selected !== id || this.detail.hidden;
    this.selected = id;
    this.taskBody.querySelectorAll('tr.direng-task').forEach(r => {
      r.classList.toggle('jp-mod-selected', (r as HTMLElement).dataset.taskId === id);
    });
    if (changed) {
      this.detail.hidden = false;
      this.detail.textContent = '';
      this.detail.dataset.taskId = id;
      this.detail.append(
        el('div', 'direng-task-detail-head'),
        el('div', 'direng-error direng-task-error'),
        el('ul', 'direng-event-log'),
        el('div', 'direng-task-result')
      );
      this.renderDetailHead(task);
      this.follow(task);
    }
  }

  private renderDetailHead(task: Task): void {
    if (this.detail.dataset.taskId !== task.id) {
      return;
    }
    const head = this.detail.querySelector('.direng-task-detail-head') as HTMLElement;
    head.textContent = '';
    head.appendChild(el('strong', '', task.title));
    head.appendChild(document.createTextNode(` · ${task.lane} · `));
    head.appendChild(el('span', `direng-state direng-state-${task.state}`, task.state));
    if (task.estimate) {
      head.appendChild(el('div', 'direng-task-estimate', `Estimate: ${formatEstimate(task.estimate)}`));
      if (task.estimate.explanation) {
        head.appendChild(el('div', 'direng-task-estimate-why', `Why: ${task.estimate.explanation}`));
      }
    }
    const err = this.detail.querySelector('.direng-task-error') as HTMLElement;
    err.textContent = task.error ?? '';
    err.hidden = !task.error;
  }

  private detailError(text: string): void {
    const err = this.detail.querySelector('.direng-task-error') as HTMLElement | null;
    if (err) {
      err.textContent = text;
      err.hidden = false;
    } else {
      this.banner.textContent = text;
      this.banner.hidden = false;
    }
  }

  /** Follow a task's events until its state is final (`follow.ts`), then show its result. */
  private follow(task: Task): void {
    const serial = ++this.followSerial;
    this.followAbort?.abort();
    const sameTask = this.detail.dataset.taskId === task.id && this.log.events.length && this.log.events[0].task_id === task.id;
    if (!sameTask) {
      this.log = emptyLog(task.state);
      (this.detail.querySelector('.direng-event-log') as HTMLElement).textContent = '';
      this.detail.dataset.streams = '0';
    }
    const live = () => serial === this.followSerial && !this.isDisposed && this.selected === task.id;
    const take = (batch: TaskEvent[]) => {
      const before = this.log;
      this.log = reduceEvents(before, batch);
      this.appendEvents(this.log.events.slice(before.events.length));
    };
    const abort = new AbortController();
    this.followAbort = abort;
    void (async () => {
      let ended = isSettledState(task.state);
      if (ended) {
        take(await this.api.events(task.id, this.log.lastSeq).catch(() => []));
      } else {
        ended = await followTask(this.api, task.id, {
          after: () => this.log.lastSeq,
          take,
          final: () => this.log.final,
          live,
          onError: err => this.detailError(describe(err)),
          onStream: () => {
            this.detail.dataset.streams = String(Number(this.detail.dataset.streams ?? 0) + 1);
          },
          signal: abort.signal
        });
      }
      if (ended && live()) {
        await this.showResult(task.id);
      }
    })();
  }

  private appendEvents(events: TaskEvent[]): void {
    const list = this.detail.querySelector('.direng-event-log') as HTMLElement | null;
    if (!list || !events.length) {
      return;
    }
    for (const ev of events) {
      const li = el('li', `direng-event direng-event-${ev.kind}`);
      li.dataset.seq = String(ev.seq);
      const time = ev.at ? new Date(ev.at).toLocaleTimeString() : '';
      li.appendChild(el('span', 'direng-event-meta', `${ev.seq} ${time} ${ev.kind}`));
      li.appendChild(el('span', 'direng-event-message', ` ${ev.message ?? ''}`));
      list.appendChild(li);
    }
    list.scrollTop = list.scrollHeight;
  }

  /** The end of a task: its run's KPIs, links to the output notebook and passport, Replay. */
  private async showResult(taskId: string): Promise<void> {
    const box = this.detail.querySelector('.direng-task-result') as HTMLElement | null;
    if (!box) {
      return;
    }
    try {
      const [task, runs] = await Promise.all([this.api.task(taskId), this.api.runs()]);
      this.runs = runs;
      this.renderRuns();
      this.renderDetailHead(task);
      box.textContent = '';
      const run = runs.find(r => r.id === task.run_id) ?? runs.find(r => r.task_id === taskId);
      if (task.state === 'escalated' && task.escalation) {
        box.appendChild(this.escalationBox(task));
      } else {
        box.appendChild(el('div', 'direng-task-final', `Finished: ${task.state}`));
      }
      if (!run) {
        box.appendChild(el('div', 'direng-empty', 'This task has no run.'));
        return;
      }
      const stats = el('div', 'direng-task-kpis');
      stats.textContent =
        `Run ${run.id} · ${run.state} · ${formatDuration(run.duration_s)} · ${run.tokens ?? 0} tokens · ` +
        `${formatCost(run.cost ?? 0)} · sandbox ${run.sandbox ?? '–'}`;
      box.appendChild(stats);
      const kpis = el('table', 'direng-kpi-table');
      for (const [k, v] of Object.entries(run.kpis ?? {})) {
        const row = kpis.insertRow();
        row.insertCell().textContent = k;
        row.insertCell().textContent = String(v);
      }
      if (kpis.rows.length) {
        box.appendChild(kpis);
      }
      box.appendChild(this.runLinks(run));
    } catch (err) {
      box.textContent = describe(err);
    }
  }

  /**
   * An escalated task: why, the evidence, and a button per choice the escalation offers (retry,
   * change the lane, raise the budget, cancel); an answer that queues the task follows it again.
   */
  private escalationBox(task: Task): HTMLElement {
    const esc = task.escalation!;
    const box = el('div', 'direng-escalation');
    box.dataset.kind = esc.kind;
    box.appendChild(el('div', 'direng-escalation-head', `Escalated (${esc.kind}): ${esc.message}`));
    const evidence = el('pre', 'direng-escalation-evidence', JSON.stringify(esc.evidence ?? {}, null, 1));
    box.appendChild(evidence);
    const bar = el('div', 'direng-escalation-actions');
    const answer = async (action: TaskAction, body: { lane?: string; factor?: number } = {}) => {
      bar.querySelectorAll('button, select').forEach(b => ((b as HTMLButtonElement).disabled = true));
      try {
        const t = await this.api.taskAction(task.id, action, body);
        this.tasks = this.tasks.map(x => (x.id === t.id ? t : x));
        this.renderTasks();
        this.renderDetailHead(t);
        box.replaceWith(el('div', 'direng-task-final', `Answered: ${action.replace('_', ' ')} → ${t.state}`));
        if (t.state === 'queued') {
          this.follow(t);
        }
      } catch (err) {
        this.detailError(describe(err));
      }
      void this.poll.refresh();
    };
    for (const option of esc.options) {
      if (option === 'change_lane') {
        const select = el('select', 'direng-escalation-lane');
        for (const lane of BUILTIN_LANES.filter(l => l !== task.lane)) {
          select.appendChild(new Option(lane, lane));
        }
        bar.append(select, btn('Change lane', 'direng-escalation-change_lane', () => void answer('change_lane', { lane: select.value })));
      } else if (option === 'raise_budget') {
        bar.appendChild(btn('Raise budget ×2', 'direng-escalation-raise_budget', () => void answer('raise_budget', { factor: 2 })));
      } else if (option === 'retry' || option === 'cancel') {
        bar.appendChild(btn(option === 'retry' ? 'Retry' : 'Cancel', `direng-escalation-${option}`, () => void answer(option)));
      }
    }
    box.appendChild(bar);
    return box;
  }

  /** Output notebook and passport links, and the Replay button with its result. */
  private runLinks(run: Run): HTMLElement {
    const bar = el('div', 'direng-run-links');
    const note = el('div', 'direng-run-note');
    note.hidden = true;
    const say = (text: string) => {
      note.textContent = text;
      note.hidden = false;
    };
    const link = (label: string, cls: string, open: () => Promise<void>) => {
      const a = el('a', cls, label);
      a.href = '#';
      a.addEventListener('click', ev => {
        ev.preventDefault();
        ev.stopPropagation();
        void open();
      });
      return a;
    };
    const files = async () => runFiles((await this.api.health()).store ?? '', run.id);
    bar.appendChild(
      link('output notebook', 'direng-open-notebook', async () => {
        const f = await files();
        if (!(await this.workspace.openEnginePath(f.notebook))) {
          say(
            `The output notebook ${f.notebook} cannot be opened here: it is outside the server root or hidden ` +
              '(start Jupyter with --ContentsManager.allow_hidden=True, as `make run` does).'
          );
        }
      })
    );
    bar.appendChild(document.createTextNode(' · '));
    bar.appendChild(
      link('passport', 'direng-open-passport', async () => {
        const f = await files();
        if (!(await this.workspace.openEnginePath(f.passport, 'JSON'))) {
          try {
            this.showJSON(`Passport ${run.id}`, await this.api.passport(run.id));
          } catch (err) {
            say(describe(err));
          }
        }
      })
    );
    bar.appendChild(document.createTextNode(' · '));
    const result = el('span', 'direng-replay-result');
    const replay = btn('Replay', 'direng-replay', () => {
      replay.disabled = true;
      result.textContent = 'replaying…';
      result.dataset.match = '';
      this.api
        .replay(run.id)
        .then(r => showReplay(result, r))
        .catch(err => {
          result.textContent = describe(err);
          result.dataset.match = 'error';
        })
        .finally(() => {
          replay.disabled = false;
          void this.poll.refresh();
        });
    }, 'Replay this run from its passport and compare outputs and KPIs');
    bar.append(replay, result, note);
    return bar;
  }

  private renderRuns(): void {
    this.runsBody.textContent = '';
    if (!this.runs.length) {
      const row = this.runsBody.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 5;
      cell.className = 'direng-empty';
      cell.textContent = 'No runs yet.';
      return;
    }
    for (const r of this.runs.slice(0, 50)) {
      const row = this.runsBody.insertRow();
      row.className = 'direng-run';
      row.dataset.runId = r.id;
      row.dataset.state = r.state;
      const id = row.insertCell();
      id.appendChild(el('div', 'direng-run-id', r.id.replace(/^run-/, '').slice(0, 8)));
      id.appendChild(el('div', 'direng-run-lane', r.lane));
      id.title = `${r.id} (task ${r.task_id}, lane ${r.lane})`;
      row.insertCell().appendChild(el('span', `direng-state direng-state-${r.state}`, r.state));
      row.insertCell().textContent = formatDuration(r.duration_s);
      const cost = row.insertCell();
      cost.textContent = formatCost(r.cost ?? 0);
      cost.title = `${r.tokens ?? 0} tokens`;
      const kpis = row.insertCell();
      kpis.className = 'direng-run-kpis';
      kpis.textContent = formatKpis(r.kpis);
      if (r.finished_at) {
        const links = this.runsBody.insertRow();
        links.className = 'direng-run-actions';
        links.dataset.runId = r.id;
        const cell = links.insertCell();
        cell.colSpan = 5;
        cell.appendChild(this.runLinks(r));
      }
    }
  }
}

function showReplay(host: HTMLElement, r: ReplayReport): void {
  host.dataset.match = String(r.match);
  host.textContent = r.match ? 'replay matches ✓' : 'replay differs ✗';
  const detail = `original: ${formatKpis(r.kpis_original)}; replay: ${formatKpis(r.kpis_replay)}`;
  host.title = `${r.replay_run_id ? `replay run ${r.replay_run_id}; ` : ''}${detail}`;
  const small = el('div', 'direng-replay-kpis', detail);
  host.appendChild(small);
}
