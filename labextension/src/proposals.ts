/**
 * The edits DirEng proposed, as one shared state: the chat panel's Accept / Reject cards and the
 * diffs shown at notebook cells both read it and decide through it, so a decision taken in one
 * shows in the other and the REST action (and the reload after an applied cell edit) runs once.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { DirEngAPIError, Proposal } from './api';

export type ProposalAction = 'apply' | 'reject';

/** What `IDirEngWorkspace.reload` did with the notebook an applied edit wrote. */
export type ReloadOutcome = 'reloaded' | 'unsaved' | 'not-open';

/** One proposal as the views show it. */
export interface EditStatus {
  readonly proposal: Proposal;
  /** A decision is on its way to the server: the buttons wait. */
  readonly busy: boolean;
  /** Its state, what became of the decision, or why the server refused it. */
  readonly note: string;
  /** `note` is a refusal; the proposal is still open and can be decided again. */
  readonly error: boolean;
  /** What became of the open notebook an applied cell edit wrote. */
  readonly reloaded?: ReloadOutcome;
}

/** The part of the REST client the proposals need. */
export interface ProposalSource {
  proposals(): Promise<Proposal[]>;
  proposal(id: string): Promise<Proposal>;
  proposalAction(id: string, action: ProposalAction): Promise<Proposal>;
}

/** The shared proposals (token `IDirEngProposals`). */
export interface IEditProposals {
  /** A proposal's status changed (arrived, decided, refused). */
  readonly changed: ISignal<IEditProposals, EditStatus>;
  status(id: string): EditStatus | undefined;
  all(): EditStatus[];
  /** A proposal seen elsewhere (a chat answer): known from now on. */
  track(proposal: Proposal): EditStatus;
  /** Learn every proposal the server holds (`GET /proposals`); false when it cannot be asked. */
  refresh(): Promise<boolean>;
  /** Apply or reject; an applied cell edit reloads its open, unmodified notebook. */
  decide(id: string, action: ProposalAction): Promise<EditStatus>;
}

/** What the card says once a decision went through. */
export function decidedNote(done: Proposal, shown: ReloadOutcome | null): string {
  if (shown === 'reloaded') {
    return `${done.state}: ${done.path} reloaded`;
  }
  if (shown === 'unsaved') {
    return (
      `${done.state} on disk; ${done.path} has unsaved changes here: File → Reload Notebook from Disk to see ` +
      'the edit (saving first would overwrite it)'
    );
  }
  if (shown === 'not-open') {
    return `${done.state}: written to ${done.path}`;
  }
  return done.state;
}

export function errorText(err: unknown): string {
  return err instanceof DirEngAPIError ? err.describe() : String(err);
}

/** The pending cell edits whose notebook is `path` (as `toPath` maps a proposal's path), by cell, newest first. */
export function pendingCellEdits(proposals: Iterable<Proposal>, path: string, toPath: (p: Proposal) => string | null): Proposal[] {
  const out: Proposal[] = [];
  for (const p of proposals) {
    if (p.kind === 'cell' && p.state === 'proposed' && typeof p.cell === 'number' && toPath(p) === path) {
      out.push(p);
    }
  }
  const time = (p: Proposal) => Date.parse(p.created_at ?? '') || 0;
  return out.sort((a, b) => (a.cell as number) - (b.cell as number) || time(b) - time(a));
}

function fresh(p: Proposal): EditStatus {
  return { proposal: p, busy: false, note: p.state, error: false };
}

/**
 * The status once the server told us `incoming`: a decision is final (a listing read before it
 * may arrive after it), one on its way is left to finish, and an open proposal keeps its note
 * (a refusal stays shown) until it is decided.
 */
export function merged(known: EditStatus | undefined, incoming: Proposal): EditStatus {
  if (!known) {
    return fresh(incoming);
  }
  if (known.busy || known.proposal.state !== 'proposed' || incoming.state === 'proposed') {
    return known;
  }
  return fresh(incoming);
}

export class EditProposals implements IEditProposals {
  private readonly known = new Map<string, EditStatus>();
  private readonly changedSignal = new Signal<IEditProposals, EditStatus>(this);

  constructor(
    private readonly api: ProposalSource,
    private readonly reload: (path: string) => Promise<ReloadOutcome>
  ) {}

  get changed(): ISignal<IEditProposals, EditStatus> {
    return this.changedSignal;
  }

  status(id: string): EditStatus | undefined {
    return this.known.get(id);
  }

  all(): EditStatus[] {
    return [...this.known.values()];
  }

  track(proposal: Proposal): EditStatus {
    const before = this.known.get(proposal.id);
    const after = merged(before, proposal);
    return after === before ? after : this.set(after);
  }

  async refresh(): Promise<boolean> {
    let listed: Proposal[];
    try {
      listed = await this.api.proposals();
    } catch {
      return false; // the chat panel's health banner says why the API cannot be reached
    }
    listed.forEach(p => this.track(p));
    return true;
  }

  async decide(id: string, action: ProposalAction): Promise<EditStatus> {
    const start = this.known.get(id);
    if (!start) {
      throw new Error(`unknown proposal ${id}`);
    }
    if (start.busy || start.proposal.state !== 'proposed') {
      return start; // a second click, or the other view, while it is decided
    }
    this.set({ ...start, busy: true });
    try {
      const done = await this.api.proposalAction(id, action);
      // Known as decided before the reload rebuilds the notebook's cells, so no diff comes back on them.
      this.known.set(id, { proposal: done, busy: true, note: done.state, error: false });
      // the edit is on disk whatever the reload does: a failed one is told as a notebook not shown
      const shown =
        action === 'apply' && done.kind === 'cell' ? await this.reload(done.path).catch(() => 'not-open' as const) : null;
      return this.set({ ...fresh(done), note: decidedNote(done, shown), reloaded: shown ?? undefined });
    } catch (err) {
      const now = await this.api.proposal(id).catch(() => start.proposal);
      // decided elsewhere meanwhile (another tab, `%direng apply`): say so, and its views close
      const note = now.state === 'proposed' ? errorText(err) : `${now.state} already: ${errorText(err)}`;
      return this.set({ proposal: now, busy: false, note, error: now.state === 'proposed' });
    }
  }

  private set(status: EditStatus): EditStatus {
    this.known.set(status.proposal.id, status);
    this.changedSignal.emit(status);
    return status;
  }
}
