/**
 * Following a task's event log (`GET /direng/api/tasks/{id}/events?after=N`).
 *
 * A reducer over batches of events: each event is appended once, in sequence order, and the
 * next poll resumes after the last sequence number seen, so no event is lost or repeated.
 * Events at or below that number (a duplicate, or one arriving out of order after a later
 * one) are ignored. `state` events say the task's state; the settled states (final, or
 * escalated) end the follow.
 * Pure: no DOM, no JupyterLab.
 */

/** The states that end a task (models.FINAL_STATES; `interrupted` resumes). */
export const FINAL_STATES: readonly string[] = ['succeeded', 'failed', 'cancelled'];
/**
 * Where a task stops moving by itself (models.SETTLED_STATES): ended, or escalated — waiting
 * for the user's answer. Following a task stops at these.
 */
export const SETTLED_STATES: readonly string[] = [...FINAL_STATES, 'escalated'];

export interface TaskEvent {
  task_id?: string;
  seq: number;
  at?: string;
  kind: string;
  message?: string;
  data?: Record<string, unknown>;
}

export interface EventLog {
  events: TaskEvent[];
  /** The highest sequence number taken: the next poll's `after`. */
  lastSeq: number;
  /** The task's state as the log tells it (null before any state event). */
  state: string | null;
  /** Whether the state is settled (final or escalated): following may stop. */
  final: boolean;
}

export function isFinalState(state: string | null | undefined): boolean {
  return !!state && FINAL_STATES.includes(state);
}

export function isSettledState(state: string | null | undefined): boolean {
  return !!state && SETTLED_STATES.includes(state);
}

/** An empty log, optionally knowing the task's state already (from `GET /tasks/{id}`). */
export function emptyLog(state: string | null = null): EventLog {
  return { events: [], lastSeq: 0, state, final: isSettledState(state) };
}

/** The state an event reports, if it is a state event. */
export function eventState(ev: TaskEvent): string | null {
  if (ev.kind !== 'state') {
    return null;
  }
  const s = ev.data?.state;
  if (typeof s === 'string' && s) {
    return s;
  }
  return ev.message ? ev.message.split(/\s/, 1)[0] : null;
}

/**
 * The log after a batch. A batch is taken in sequence order; events with a sequence number
 * not above the last one taken are ignored. Returns `log` itself when nothing was new.
 */
export function reduceEvents(log: EventLog, batch: readonly TaskEvent[]): EventLog {
  const fresh = batch
    .filter(ev => !!ev && Number.isInteger(ev.seq) && ev.seq > log.lastSeq)
    .sort((a, b) => a.seq - b.seq);
  if (!fresh.length) {
    return log;
  }
  const events = log.events.slice();
  let { lastSeq, state } = log;
  for (const ev of fresh) {
    if (ev.seq <= lastSeq) {
      continue; // a duplicate inside the batch
    }
    events.push(ev);
    lastSeq = ev.seq;
    state = eventState(ev) ?? state;
  }
  return { events, lastSeq, state, final: isSettledState(state) };
}
