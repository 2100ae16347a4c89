import { describe, expect, it } from 'vitest';

import {
  FINAL_STATES,
  SETTLED_STATES,
  TaskEvent,
  emptyLog,
  eventState,
  isFinalState,
  isSettledState,
  reduceEvents
} from '../src/events';

const ev = (seq: number, kind = 'log', message = `line ${seq}`, data: Record<string, unknown> = {}): TaskEvent => ({
  task_id: 't1',
  seq,
  kind,
  message,
  data
});
const state = (seq: number, s: string) => ev(seq, 'state', s, { state: s });

describe('reduceEvents', () => {
  it('appends events after the last seq, once, and resumes from it', () => {
    let log = emptyLog();
    log = reduceEvents(log, [state(1, 'queued'), ev(2)]);
    expect(log.lastSeq).toBe(2);
    // The next poll asks ?after=2; a server that repeats events is ignored.
    log = reduceEvents(log, [ev(2), ev(3), ev(4)]);
    expect(log.events.map(e => e.seq)).toEqual([1, 2, 3, 4]);
    expect(log.lastSeq).toBe(4);
  });

  it('ignores duplicates and out-of-order events', () => {
    let log = reduceEvents(emptyLog(), [ev(1), ev(3)]);
    log = reduceEvents(log, [ev(2)]); // arrives after 3: ignored
    log = reduceEvents(log, [ev(3), ev(3), ev(1)]);
    expect(log.events.map(e => e.seq)).toEqual([1, 3]);
    expect(log.lastSeq).toBe(3);
  });

  it('takes one batch in sequence order, without duplicates inside it', () => {
    const log = reduceEvents(emptyLog(), [ev(3), ev(1), ev(2), ev(2)]);
    expect(log.events.map(e => e.seq)).toEqual([1, 2, 3]);
  });

  it('returns the same log when nothing is new', () => {
    const log = reduceEvents(emptyLog(), [ev(1)]);
    expect(reduceEvents(log, [])).toBe(log);
    expect(reduceEvents(log, [ev(1)])).toBe(log);
  });

  it('ignores malformed events', () => {
    const log = reduceEvents(emptyLog(), [{ kind: 'log' } as TaskEvent, ev(1.5), ev(1)]);
    expect(log.events.map(e => e.seq)).toEqual([1]);
  });

  it('follows state events and detects the final states', () => {
    let log = reduceEvents(emptyLog('approved'), [state(1, 'queued'), state(2, 'running'), ev(3, 'kpi', 'tests=3')]);
    expect(log.state).toBe('running');
    expect(log.final).toBe(false);
    log = reduceEvents(log, [state(4, 'succeeded')]);
    expect(log.state).toBe('succeeded');
    expect(log.final).toBe(true);
    for (const s of ['failed', 'cancelled']) {
      expect(reduceEvents(emptyLog(), [state(1, s)]).final).toBe(true);
    }
    expect(reduceEvents(emptyLog(), [state(1, 'interrupted')]).final).toBe(false);
  });

  it('does not mutate the previous log', () => {
    const before = reduceEvents(emptyLog(), [ev(1)]);
    const after = reduceEvents(before, [ev(2)]);
    expect(before.events).toHaveLength(1);
    expect(after.events).toHaveLength(2);
  });
});

describe('states', () => {
  it('knows the final states', () => {
    expect([...FINAL_STATES].sort()).toEqual(['cancelled', 'failed', 'succeeded']);
    expect(isFinalState('running')).toBe(false);
    expect(isFinalState(null)).toBe(false);
    expect(emptyLog('failed').final).toBe(true);
  });

  it('stops following at an escalation, which is settled but not final', () => {
    expect(isFinalState('escalated')).toBe(false);
    expect(isSettledState('escalated')).toBe(true);
    expect(SETTLED_STATES).toContain('escalated');
    const log = reduceEvents(emptyLog('running'), [state(1, 'escalated')]);
    expect(log.final).toBe(true);
  });

  it('reads the state from data, else from the message', () => {
    expect(eventState(state(1, 'running'))).toBe('running');
    expect(eventState(ev(1, 'state', 'cancelled by user'))).toBe('cancelled');
    expect(eventState(ev(1, 'log', 'running'))).toBeNull();
  });
});
