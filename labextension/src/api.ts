/**
 * The client of the DirEng REST API (`{base_url}direng/api/`, docs/api.yaml).
 *
 * Every request goes through `ServerConnection.makeRequest`, which adds the XSRF token and
 * Jupyter's authentication. Error replies are `{status, code, message}`; they become a
 * `DirEngAPIError` with those fields (a network failure is status 0, code `network`).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { Citation } from './citations';
import { TaskEvent } from './events';
import { SSEEvent, readEvents } from './sse';
import { Estimate, IndexStatus, Usage } from './format';
import { GraphData } from './graphModel';

export interface Health {
  status: string;
  root: string;
  store?: string;
  indexed: boolean;
  version?: string;
  policy?: { path: string | null; valid: boolean; errors: string[] };
}

export interface Hit {
  path: string;
  symbol?: string | null;
  kind: string;
  start_line: number;
  end_line: number;
  score: number;
  snippet?: string;
  signature?: string;
}

/** What the panel tells DirEng about the document the user is in (never kernel values). */
export interface NotebookContext {
  path?: string;
  cell?: number;
  cell_source?: string;
}

export interface Answer {
  markdown: string;
  intent: string;
  citations?: Hit[];
  provider?: string;
  usages?: Usage[];
  notices?: string[];
  /** Large work handed to PEX: created and estimated, waiting for approval. */
  proposed_task?: Task | null;
  /** Edits DirEng proposes with this answer (nothing changed yet). */
  proposals?: Proposal[];
}

/** An edit DirEng proposes (models.Proposal): a cell's new source, or a file patch. */
export interface Proposal {
  id: string;
  kind: 'cell' | 'file';
  path: string;
  cell?: number | null;
  /** A cell edit's proposed source, and the source it was proposed against (applying refuses if the cell moved). */
  new_source?: string;
  old_source?: string | null;
  diff: string;
  paths: string[];
  task_id?: string | null;
  state: 'proposed' | 'applied' | 'rejected';
  provider?: string;
  model?: string;
  created_at?: string;
}

export interface ChatMessage {
  role: string;
  content: string;
}

export interface Task {
  id: string;
  title: string;
  brief?: string;
  lane: string;
  state: string;
  estimate?: Estimate | null;
  run_id?: string | null;
  error?: string | null;
  escalation?: Escalation | null;
  budget_factor?: number;
  created_at?: string;
  updated_at?: string;
}

export interface Run {
  id: string;
  task_id: string;
  lane: string;
  state: string;
  created_at?: number;
  started_at?: number | null;
  finished_at?: number | null;
  duration_s?: number | null;
  tokens?: number | null;
  cost?: number | null;
  sandbox?: string | null;
  error?: string | null;
  kpis?: Record<string, unknown>;
}

export interface ReplayReport {
  run_id: string;
  replay_run_id?: string | null;
  match: boolean;
  dry_run?: boolean;
  kpis_original?: Record<string, unknown>;
  kpis_replay?: Record<string, unknown>;
  outputs?: Record<string, unknown>[];
}

/** One lane the router considered (models.LaneChoice). */
export interface LaneChoice {
  lane: string;
  probability: number;
  reasons: string[];
}

/** `POST /plms/route`: the lane PEX would choose, the top two, and whether to ask (models.RoutingDecision). */
export interface RoutingDecision {
  lane: string;
  candidates: LaneChoice[];
  margin: number;
  threshold: number;
  uncertain: boolean;
  corrections?: number;
  /** The policy's lane override that decided, if one did. */
  override?: string | null;
}

/** `GET /plms/calibration`: the calibration report, one row per lane, and its figure. */
export interface Calibration {
  runs: number;
  lanes: Record<string, string | number | boolean | null>[];
  /** The figure as a base64 PNG (null when not asked for). */
  png: string | null;
}

export type TaskAction = 'estimate' | 'approve' | 'start' | 'cancel' | 'retry' | 'change_lane' | 'raise_budget';

/** Why PEX escalated a task to the user (models.Escalation). */
export interface Escalation {
  kind: string;
  message: string;
  evidence?: Record<string, unknown>;
  options: string[];
  run_id?: string | null;
}

export class DirEngAPIError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: Record<string, unknown> = {}
  ) {
    super(message);
    this.name = 'DirEngAPIError';
  }

  /** `404 unknown_symbol: unknown symbol 'x'` — what the UI shows inline. */
  describe(): string {
    const head = this.status ? `${this.status}${this.code ? ` ${this.code}` : ''}` : 'network error';
    return `${head}: ${this.message}`;
  }

  get suggestions(): string[] {
    const s = this.body.suggestions;
    return Array.isArray(s) ? s.map(String) : [];
  }
}

type Query = Record<string, string | number | boolean | undefined>;

/** How a task event stream ended: `end` when the task's state is final, else null (reconnect). */
export interface StreamEnd {
  end: { state: string; last_seq: number } | null;
}

function parseJSON(text: string): unknown {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/** The error an API reply stands for (`{status, code, message}`, or what the response says). */
function replyError(response: Response, data: unknown, text: string): DirEngAPIError {
  const body = (data && typeof data === 'object' ? data : {}) as Record<string, unknown>;
  const message =
    typeof body.message === 'string' && body.message ? body.message : response.statusText || text.slice(0, 200) || 'request failed';
  const code = typeof body.code === 'string' ? body.code : response.status === 404 ? 'not_found' : '';
  return new DirEngAPIError(response.status, code, message, body);
}

/** An `error` event of a stream: the reply a plain request would have had. */
function eventError(data: Record<string, unknown>): DirEngAPIError {
  return new DirEngAPIError(Number(data.status) || 500, String(data.code ?? ''), String(data.message ?? 'error'), data);
}

export class DirEngAPI {
  private healthPromise: Promise<Health> | null = null;

  constructor(readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  /** The URL of an API path; each part is one path segment (percent-encoded here). */
  url(parts: string[], query?: Query): string {
    const base = URLExt.join(this.serverSettings.baseUrl, 'direng/api', ...parts.map(encodeURIComponent));
    const q: Record<string, string> = {};
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) {
        q[k] = String(v);
      }
    }
    return Object.keys(q).length ? base + URLExt.objectToQueryString(q) : base;
  }

  async request<T>(method: 'GET' | 'POST', parts: string[], opts: { query?: Query; body?: unknown } = {}): Promise<T> {
    const init: RequestInit = { method };
    if (opts.body !== undefined) {
      init.body = JSON.stringify(opts.body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(this.url(parts, opts.query), init, this.serverSettings);
    } catch (err) {
      throw new DirEngAPIError(0, 'network', err instanceof Error ? err.message : String(err));
    }
    const text = await response.text();
    const data = parseJSON(text);
    if (!response.ok) {
      throw replyError(response, data, text);
    }
    return data as T;
  }

  /**
   * A request answered with server-sent events: `onEvent` is called for each as it arrives and
   * the promise resolves when the stream ends. A JSON reply instead (a server that does not
   * stream this) resolves with its data; an error reply rejects as `request` does.
   */
  async stream(
    method: 'GET' | 'POST',
    parts: string[],
    onEvent: (ev: SSEEvent) => void,
    opts: { query?: Query; body?: unknown; signal?: AbortSignal } = {}
  ): Promise<unknown> {
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    const init: RequestInit = { method, headers, signal: opts.signal };
    if (opts.body !== undefined) {
      init.body = JSON.stringify(opts.body);
      headers['Content-Type'] = 'application/json';
    }
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(this.url(parts, opts.query), init, this.serverSettings);
    } catch (err) {
      throw new DirEngAPIError(0, 'network', err instanceof Error ? err.message : String(err));
    }
    if (!response.ok || !(response.headers.get('Content-Type') ?? '').includes('text/event-stream') || !response.body) {
      const text = await response.text();
      const data = parseJSON(text);
      if (!response.ok) {
        throw replyError(response, data, text);
      }
      return data;
    }
    try {
      await readEvents(response.body, onEvent);
    } catch (err) {
      // A connection lost mid-stream: the caller decides whether to resume.
      throw new DirEngAPIError(0, 'network', err instanceof Error ? err.message : String(err));
    }
    return null;
  }

  /** `GET /health`, remembered once it succeeded (`refresh` asks again). */
  health(refresh = false): Promise<Health> {
    if (!this.healthPromise || refresh) {
      const p = this.request<Health>('GET', ['health']);
      this.healthPromise = p;
      p.catch(() => {
        if (this.healthPromise === p) {
          this.healthPromise = null;
        }
      });
    }
    return this.healthPromise;
  }

  indexStatus(): Promise<IndexStatus> {
    return this.request('GET', ['index', 'status']);
  }

  refresh(): Promise<Record<string, unknown>> {
    return this.request('POST', ['index', 'refresh'], { body: {} });
  }

  /** Ask DirEng; `context` is where the user is (`NotebookContext` in docs/api.yaml). */
  chat(message: string, session: string, context?: NotebookContext | null): Promise<Answer> {
    return this.request('POST', ['chat'], { body: context ? { message, session, context } : { message, session } });
  }

  /**
   * Ask DirEng with the answer streamed: `onEvent(kind, data)` gets the events before the final
   * answer (`chatStream.ts`), which the promise resolves with.
   */
  async chatStream(
    message: string,
    session: string,
    context: NotebookContext | null | undefined,
    onEvent: (kind: string, data: Record<string, unknown>) => void,
    signal?: AbortSignal
  ): Promise<Answer> {
    let answer: Answer | null = null;
    let error: DirEngAPIError | null = null;
    const body = { message, session, stream: true, ...(context ? { context } : {}) };
    const plain = await this.stream(
      'POST',
      ['chat'],
      ev => {
        const data = (parseJSON(ev.data) ?? {}) as Record<string, unknown>;
        if (ev.event === 'answer') {
          answer = data as unknown as Answer;
        } else if (ev.event === 'error') {
          error = eventError(data);
        } else {
          onEvent(ev.event, data);
        }
      },
      { body, signal }
    );
    if (error) {
      throw error;
    }
    answer = answer ?? (plain as Answer | null);
    if (!answer) {
      throw new DirEngAPIError(0, 'network', 'the answer stream ended before the answer');
    }
    return answer;
  }

  resetChat(session: string): Promise<{ ok: boolean }> {
    return this.request('POST', ['chat', 'reset'], { body: { session } });
  }

  history(session: string): Promise<{ messages: ChatMessage[] }> {
    return this.request('GET', ['chat', 'history'], { query: { session } });
  }

  async complete(prefix: string, limit = 20): Promise<string[]> {
    const r = await this.request<{ matches: string[] }>('GET', ['symbols', 'complete'], { query: { prefix, limit } });
    return r.matches ?? [];
  }

  async search(q: string, k: number): Promise<Hit[]> {
    const r = await this.request<{ hits: Hit[] }>('GET', ['search'], { query: { q, k } });
    return r.hits ?? [];
  }

  /** `GET /graph/{symbol}`: the symbol (a name or node id) is sent as one encoded segment. */
  graph(symbol: string, opts: { depth?: number; maxNodes?: number; code?: boolean; direction?: string } = {}): Promise<GraphData> {
    return this.request('GET', ['graph', symbol], {
      query: {
        depth: opts.depth ?? 1,
        max_nodes: opts.maxNodes,
        code: opts.code ? 1 : undefined,
        direction: opts.direction
      }
    });
  }

  async tasks(): Promise<Task[]> {
    const r = await this.request<{ tasks: Task[] }>('GET', ['tasks']);
    return r.tasks ?? [];
  }

  task(id: string): Promise<Task> {
    return this.request('GET', ['tasks', id]);
  }

  createTask(body: { title: string; brief?: string; lane?: string }): Promise<Task> {
    return this.request('POST', ['tasks'], { body });
  }

  /** A task action; `change_lane` takes `{ lane }`, `raise_budget` `{ factor }`. */
  taskAction(id: string, action: TaskAction, body: { lane?: string; factor?: number } = {}): Promise<Task> {
    return this.request('POST', ['tasks', id, action], { body });
  }

  async events(id: string, after: number): Promise<TaskEvent[]> {
    const r = await this.request<{ events: TaskEvent[] }>('GET', ['tasks', id, 'events'], { query: { after } });
    return r.events ?? [];
  }

  /**
   * Follow `GET /tasks/{id}/events/stream` after sequence `after` until the server ends that
   * stream: with `end` once the task's state is final, else (its time bound, a lost connection
   * is a rejection) the caller resumes after the last seq it took.
   */
  async followEvents(id: string, after: number, onEvent: (ev: TaskEvent) => void, signal?: AbortSignal): Promise<StreamEnd> {
    let end: StreamEnd['end'] = null;
    let error: DirEngAPIError | null = null;
    await this.stream(
      'GET',
      ['tasks', id, 'events', 'stream'],
      ev => {
        const data = (parseJSON(ev.data) ?? {}) as Record<string, unknown>;
        if (ev.event === 'task') {
          onEvent(data as unknown as TaskEvent);
        } else if (ev.event === 'end') {
          end = data as unknown as StreamEnd['end'];
        } else if (ev.event === 'error') {
          error = eventError(data);
        }
      },
      { query: { after }, signal }
    );
    if (error) {
      throw error;
    }
    return { end };
  }

  /** `GET /proposals`: every proposal the engine holds, newest first. */
  async proposals(): Promise<Proposal[]> {
    const r = await this.request<{ proposals: Proposal[] }>('GET', ['proposals']);
    return r.proposals ?? [];
  }

  proposal(id: string): Promise<Proposal> {
    return this.request('GET', ['proposals', id]);
  }

  /** `POST /proposals/{id}/{apply|reject}`. */
  proposalAction(id: string, action: 'apply' | 'reject'): Promise<Proposal> {
    return this.request('POST', ['proposals', id, action], { body: {} });
  }

  async runs(): Promise<Run[]> {
    const r = await this.request<{ runs: Run[] }>('GET', ['runs']);
    return r.runs ?? [];
  }

  passport(runId: string): Promise<Record<string, unknown>> {
    return this.request('GET', ['runs', runId]);
  }

  replay(runId: string): Promise<ReplayReport> {
    return this.request('POST', ['runs', runId, 'replay'], { body: { dry_run: false } });
  }

  pasHealth(): Promise<{ lanes?: Record<string, { ok: boolean }> }> {
    return this.request('GET', ['pas', 'health']);
  }

  /** Where PEX would route a task with this title and brief; nothing is created. */
  route(title: string, brief = ''): Promise<RoutingDecision> {
    return this.request('POST', ['plms', 'route'], { body: { title, brief } });
  }

  /** PLMS's calibration report and figure (`GET /plms/calibration`). */
  calibration(plot = true): Promise<Calibration> {
    return this.request('GET', ['plms', 'calibration'], { query: { plot: plot ? 1 : 0 } });
  }
}

/** One line saying why the DirEng API cannot be used, for an error of `GET /health`. */
export function unavailableMessage(err: unknown): string {
  if (err instanceof DirEngAPIError) {
    if (err.status === 404) {
      return 'The DirEng server extension is not running on this Jupyter server (GET /direng/api/health: 404).';
    }
    if (err.status === 0) {
      return `The Jupyter server cannot be reached: ${err.message}`;
    }
    if (err.status === 401 || err.status === 403) {
      return `Not allowed to use the DirEng API (${err.describe()}).`;
    }
    if (err.status === 503) {
      return `The DirEng engine is unavailable: ${err.message}`;
    }
    return `The DirEng API failed: ${err.describe()}`;
  }
  return `The DirEng API failed: ${String(err)}`;
}

/** A hit as a citation. */
export function hitCitation(h: Hit): Citation {
  return { path: h.path, start: h.start_line, end: h.end_line };
}
