/**
 * Wording of the status bar item, answer metadata, estimates and ages. Pure.
 */

/** The REST API's IndexStatus (the fields the UI reads). */
export interface IndexStatus {
  root: string;
  store: string;
  files: number;
  symbols: number;
  chunks: number;
  fresh: boolean;
  commits_behind?: number | null;
  last_refresh?: string | null;
  indexed_commit?: string | null;
  head_commit?: string | null;
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** "DirEng: fresh · N symbols", "DirEng: K commits behind · N symbols", "DirEng: refreshing…". */
export function statusText(
  status: IndexStatus | null,
  opts: { refreshing?: boolean; error?: string | null } = {}
): string {
  if (opts.refreshing) {
    return 'DirEng: refreshing…';
  }
  if (opts.error || !status) {
    return 'DirEng: unavailable';
  }
  if (!status.last_refresh) {
    return 'DirEng: not indexed';
  }
  const symbols = plural(status.symbols ?? 0, 'symbol');
  if (status.fresh) {
    return `DirEng: fresh · ${symbols}`;
  }
  if (typeof status.commits_behind === 'number') {
    return `DirEng: ${plural(status.commits_behind, 'commit')} behind · ${symbols}`;
  }
  return `DirEng: stale · ${symbols}`;
}

/** The tooltip of the status bar item. */
export function statusTitle(status: IndexStatus | null, error?: string | null): string {
  if (error || !status) {
    return `DirEng index: ${error || 'no status'}`;
  }
  const commit = status.indexed_commit ? ` at ${status.indexed_commit.slice(0, 10)}` : '';
  const last = status.last_refresh ? `, last refresh ${status.last_refresh}` : '';
  return (
    `${status.root}: ${status.files} files, ${status.symbols} symbols, ${status.chunks} chunks` +
    `${commit}${last}. Click to refresh the index now.`
  );
}

export interface Usage {
  provider: string;
  model: string;
  input_tokens?: number;
  output_tokens?: number;
  cost?: number;
  latency_ms?: number;
}

export interface UsageSummary {
  provider: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  cost: number;
  latencyMs: number;
}

/** The usages of one answer added up; provider/model of the last call (the one that answered). */
export function summarizeUsage(provider: string | undefined, usages: readonly Usage[] | undefined): UsageSummary {
  const list = usages ?? [];
  const last = list[list.length - 1];
  return {
    provider: last?.provider || provider || 'local',
    model: last?.model || '',
    inputTokens: list.reduce((s, u) => s + (u.input_tokens ?? 0), 0),
    outputTokens: list.reduce((s, u) => s + (u.output_tokens ?? 0), 0),
    cost: list.reduce((s, u) => s + (u.cost ?? 0), 0),
    latencyMs: list.reduce((s, u) => s + (u.latency_ms ?? 0), 0)
  };
}

/** `$0.0012`; small costs keep 4 decimals. */
export function formatCost(cost: number): string {
  return `$${cost.toFixed(cost >= 1 ? 2 : 4)}`;
}

export function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

/** Seconds as `850 ms`, `12.3 s`, `4 min 5 s`, `2 h 3 min`. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '–';
  }
  if (seconds < 1) {
    return formatMs(seconds * 1000);
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  }
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

/** A time (ISO string or epoch seconds) → epoch milliseconds, or NaN. */
export function toMillis(t: string | number | null | undefined): number {
  if (t === null || t === undefined || t === '') {
    return NaN;
  }
  if (typeof t === 'number') {
    return t * 1000;
  }
  return Date.parse(t);
}

/** How long ago: `5 s`, `3 min`, `2 h`, `4 d`. */
export function formatAge(t: string | number | null | undefined, now: number = Date.now()): string {
  const ms = toMillis(t);
  if (isNaN(ms)) {
    return '–';
  }
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 60) {
    return `${Math.floor(s)} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)} h`;
  }
  return `${Math.floor(s / 86400)} d`;
}

export interface Estimate {
  lane?: string;
  duration_p50_s?: number;
  duration_p90_s?: number;
  tokens_p50?: number;
  cost_p50?: number;
  cost_p90?: number;
  n_history?: number;
  prior_only?: boolean;
  drift?: boolean;
  /** Which PLMS model answered: the per-lane one, or scaled by the task's size. */
  model?: 'lane' | 'size';
  /** What drove it, from PLMS: `p90 240 s: 12k-line repo (×1.9 the usual 3.4k), young lane (7 runs)`. */
  explanation?: string;
}

/** `~12.0 s (p90 30.0 s) · $0.0100 · prior` */
export function formatEstimate(e: Estimate | null | undefined): string {
  if (!e || e.duration_p50_s === undefined) {
    return '–';
  }
  const p90 = e.duration_p90_s !== undefined ? ` (p90 ${formatDuration(e.duration_p90_s)})` : '';
  const cost = e.cost_p50 !== undefined ? ` · ${formatCost(e.cost_p50)}` : '';
  const basis = e.prior_only ? ' · prior' : e.n_history ? ` · ${plural(e.n_history, 'run')}` : '';
  return `~${formatDuration(e.duration_p50_s)}${p90}${cost}${basis}`;
}

/** The estimate with what drove it, for tooltips: `formatEstimate`, then PLMS's explanation on its own line. */
export function formatEstimateWhy(e: Estimate | null | undefined): string {
  const text = formatEstimate(e);
  return e?.explanation ? `${text}\n${e.explanation}` : text;
}

/** `~12.0 s`: the p50 duration alone, for narrow tables. */
export function formatEstimateShort(e: Estimate | null | undefined): string {
  return !e || e.duration_p50_s === undefined ? '–' : `~${formatDuration(e.duration_p50_s)}`;
}

/** KPIs as `name=value` pairs, numbers rounded to 4 significant digits. */
export function formatKpis(kpis: Record<string, unknown> | null | undefined): string {
  const entries = Object.entries(kpis ?? {});
  if (!entries.length) {
    return '–';
  }
  return entries
    .map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(4)) : v}`)
    .join(', ');
}
