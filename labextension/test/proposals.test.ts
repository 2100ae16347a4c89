import { describe, expect, it } from 'vitest';

import { DirEngAPIError, Proposal } from '../src/api';
import {
  EditProposals,
  EditStatus,
  ProposalAction,
  ProposalSource,
  ReloadOutcome,
  decidedNote,
  merged,
  pendingCellEdits
} from '../src/proposals';

const prop = (id: string, extra: Partial<Proposal> = {}): Proposal => ({
  id,
  kind: 'cell',
  path: 'nb.ipynb',
  cell: 1,
  old_source: 'print(total)',
  new_source: 'print(total * 2)',
  diff: '',
  paths: ['nb.ipynb'],
  state: 'proposed',
  created_at: '2026-01-01T10:00:00Z',
  ...extra
});

/** A server holding `held`, deciding as told; the calls it got. */
function server(held: Proposal[], refuse: (id: string, action: ProposalAction) => DirEngAPIError | null = () => null) {
  const calls: string[] = [];
  const byId = new Map(held.map(p => [p.id, p]));
  const api: ProposalSource = {
    proposals: async () => [...byId.values()],
    proposal: async id => byId.get(id)!,
    proposalAction: async (id, action) => {
      calls.push(`${action} ${id}`);
      const err = refuse(id, action);
      if (err) {
        throw err;
      }
      const done = { ...byId.get(id)!, state: action === 'apply' ? ('applied' as const) : ('rejected' as const) };
      byId.set(id, done);
      return done;
    }
  };
  return { api, calls, byId };
}

function hub(api: ProposalSource, reloadAs: ReloadOutcome = 'reloaded') {
  const reloads: string[] = [];
  const seen: EditStatus[] = [];
  const h = new EditProposals(api, async path => {
    reloads.push(path);
    return reloadAs;
  });
  h.changed.connect((_, s) => seen.push(s));
  return { h, reloads, seen };
}

describe('decidedNote', () => {
  it('says where the applied edit went', () => {
    const done = prop('p1', { state: 'applied' });
    expect(decidedNote(done, 'reloaded')).toBe('applied: nb.ipynb reloaded');
    expect(decidedNote(done, 'not-open')).toBe('applied: written to nb.ipynb');
    expect(decidedNote(done, 'unsaved')).toMatch(/^applied on disk; nb\.ipynb has unsaved changes here/);
    expect(decidedNote(prop('p2', { state: 'rejected' }), null)).toBe('rejected');
  });
});

describe('pendingCellEdits', () => {
  it("keeps this notebook's open cell edits, by cell and newest first", () => {
    const list = [
      prop('old', { cell: 2, created_at: '2026-01-01T09:00:00Z' }),
      prop('new', { cell: 2, created_at: '2026-01-01T11:00:00Z' }),
      prop('first', { cell: 0 }),
      prop('done', { state: 'applied' }),
      prop('other', { path: 'other.ipynb' }),
      prop('patch', { kind: 'file', cell: null })
    ];
    const got = pendingCellEdits(list, 'work/nb.ipynb', p => `work/${p.path}`).map(p => p.id);
    expect(got).toEqual(['first', 'new', 'old']);
  });

  it('leaves out a proposal whose path is outside the server', () => {
    expect(pendingCellEdits([prop('p1')], 'nb.ipynb', () => null)).toEqual([]);
  });
});

describe('merged', () => {
  it('never takes a decision back', () => {
    const applied: EditStatus = { proposal: prop('p1', { state: 'applied' }), busy: false, note: 'applied: nb.ipynb reloaded', error: false };
    expect(merged(applied, prop('p1'))).toBe(applied);
  });

  it('keeps a refusal shown while the proposal is open, and follows a decision taken elsewhere', () => {
    const refused: EditStatus = { proposal: prop('p1'), busy: false, note: '409 conflict: cell 1 changed', error: true };
    expect(merged(refused, prop('p1'))).toBe(refused);
    expect(merged(refused, prop('p1', { state: 'rejected' }))).toEqual({
      proposal: prop('p1', { state: 'rejected' }),
      busy: false,
      note: 'rejected',
      error: false
    });
  });

  it('leaves a decision on its way to finish', () => {
    const busy: EditStatus = { proposal: prop('p1'), busy: true, note: 'proposed', error: false };
    expect(merged(busy, prop('p1', { state: 'applied' }))).toBe(busy);
  });
});

describe('EditProposals', () => {
  it('applies once, reloads the notebook, and tells every view', async () => {
    const { api, calls } = server([prop('p1')]);
    const { h, reloads, seen } = hub(api);
    h.track(prop('p1'));
    h.track(prop('p1')); // the same answer seen twice is one proposal
    expect(seen.map(s => s.note)).toEqual(['proposed']);
    const a = h.decide('p1', 'apply');
    const b = h.decide('p1', 'apply'); // the other view's button, while the first is on its way
    await Promise.all([a, b]);
    expect(calls).toEqual(['apply p1']);
    expect(reloads).toEqual(['nb.ipynb']);
    expect(seen.slice(1).map(s => [s.proposal.state, s.busy, s.note])).toEqual([
      ['proposed', true, 'proposed'],
      ['applied', false, 'applied: nb.ipynb reloaded']
    ]);
    expect(h.status('p1')).toMatchObject({ proposal: { state: 'applied' }, reloaded: 'reloaded' });
  });

  it('says when the notebook it wrote has unsaved changes here', async () => {
    const { api } = server([prop('p1')]);
    const { h } = hub(api, 'unsaved');
    h.track(prop('p1'));
    const s = await h.decide('p1', 'apply');
    expect(s.reloaded).toBe('unsaved');
    expect(s.note).toMatch(/^applied on disk; nb\.ipynb has unsaved changes here/);
  });

  it('tells an edit written but not shown when the reload fails', async () => {
    const { api } = server([prop('p1')]);
    const h = new EditProposals(api, () => Promise.reject(new Error('the notebook is closing')));
    h.track(prop('p1'));
    expect(await h.decide('p1', 'apply')).toMatchObject({ proposal: { state: 'applied' }, note: 'applied: written to nb.ipynb', error: false });
  });

  it('rejects without reloading', async () => {
    const { api } = server([prop('p1')]);
    const { h, reloads } = hub(api);
    h.track(prop('p1'));
    const s = await h.decide('p1', 'reject');
    expect([s.proposal.state, s.note, reloads]).toEqual(['rejected', 'rejected', []]);
  });

  it('shows the refusal and keeps the proposal open to decide again', async () => {
    const { api, calls } = server([prop('p1')], (_, action) =>
      action === 'apply' ? new DirEngAPIError(409, 'proposal_error', 'cell 1 of nb.ipynb changed since the proposal') : null
    );
    const { h } = hub(api);
    h.track(prop('p1'));
    const refused = await h.decide('p1', 'apply');
    expect(refused).toMatchObject({ busy: false, error: true, note: '409 proposal_error: cell 1 of nb.ipynb changed since the proposal' });
    expect(refused.proposal.state).toBe('proposed');
    await h.refresh(); // a listing does not wipe the refusal
    expect(h.status('p1')?.error).toBe(true);
    expect((await h.decide('p1', 'reject')).proposal.state).toBe('rejected');
    expect(calls).toEqual(['apply p1', 'reject p1']);
  });

  it('follows a decision taken elsewhere when the server refuses this one', async () => {
    const { api, byId } = server([prop('p1')], () => new DirEngAPIError(400, 'proposal_error', 'proposal p1 was applied already'));
    const { h } = hub(api);
    h.track(prop('p1'));
    byId.set('p1', prop('p1', { state: 'applied' }));
    const s = await h.decide('p1', 'reject');
    expect(s).toMatchObject({ error: false, note: 'applied already: 400 proposal_error: proposal p1 was applied already' });
    expect(s.proposal.state).toBe('applied');
  });

  it("learns the server's proposals, and says when it cannot", async () => {
    const { api } = server([prop('p1'), prop('p2', { state: 'rejected' })]);
    const { h } = hub(api);
    expect(await h.refresh()).toBe(true);
    expect(h.all().map(s => [s.proposal.id, s.proposal.state])).toEqual([
      ['p1', 'proposed'],
      ['p2', 'rejected']
    ]);
    const down = hub({ ...api, proposals: () => Promise.reject(new DirEngAPIError(0, 'network', 'down')) });
    expect(await down.h.refresh()).toBe(false);
  });
});
