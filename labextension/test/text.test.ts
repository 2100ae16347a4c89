import { describe, expect, it } from 'vitest';

import { formatAge, formatDuration, formatEstimate, formatEstimateWhy, statusText, summarizeUsage } from '../src/format';
import { InputHistory } from '../src/history';
import { normalize, runFiles, toServerPath } from '../src/paths';
import {
  applyCompletion,
  completionContext,
  parseSlash,
  sessionKey,
  slashMessage,
  symbolAt,
  truncateMarkdown
} from '../src/text';

describe('chat input', () => {
  it('finds what to complete', () => {
    expect(completionContext('explain @Cart.to', 16)).toEqual({ kind: 'symbol', prefix: 'Cart.to', start: 8, end: 16 });
    expect(completionContext('@', 1)).toEqual({ kind: 'symbol', prefix: '', start: 0, end: 1 });
    expect(completionContext('/sea', 4)).toEqual({ kind: 'command', prefix: 'sea', start: 0, end: 4 });
    expect(completionContext('mail me@host', 12)).toBeNull();
    expect(completionContext('a /b', 4)).toBeNull();
  });

  it('applies a completion', () => {
    const text = 'explain @Cart.to please';
    const ctx = completionContext(text, 16)!;
    expect(applyCompletion(text, ctx, 'Cart.total')).toEqual({ text: 'explain @Cart.total please', caret: 20 });
    expect(applyCompletion('/se', completionContext('/se', 3)!, 'search')).toEqual({ text: '/search ', caret: 8 });
  });

  it('parses slash commands into server messages', () => {
    expect(parseSlash('/search charge card')).toMatchObject({ command: 'search', arg: 'charge card' });
    expect(slashMessage(parseSlash('/search charge card')!)).toBe('search charge card');
    expect(slashMessage(parseSlash('/delegate write docs')!)).toBe('delegate: write docs');
    expect(slashMessage(parseSlash('/status')!)).toBe('status');
    expect(parseSlash('/nope x')!.known).toBeUndefined();
    expect(parseSlash('not /a command')).toBeNull();
  });

  it('keys conversations by file', () => {
    expect(sessionKey('notebooks/tour.ipynb', true)).toBe('notebooks/tour.ipynb');
    expect(sessionKey('notebooks/tour.ipynb', false)).toBe('default');
    expect(sessionKey(null, true)).toBe('default');
  });

  it('recalls history with Up/Down, keeping the draft', () => {
    const h = new InputHistory();
    h.push('one');
    h.push('two');
    h.push('two');
    expect(h.size).toBe(2);
    expect(h.prev('draft')).toBe('two');
    expect(h.prev('two')).toBe('one');
    expect(h.prev('one')).toBeNull();
    expect(h.next()).toBe('two');
    expect(h.next()).toBe('draft');
    expect(h.next()).toBeNull();
  });
});

describe('editor text', () => {
  it('finds the dotted symbol at the cursor', () => {
    const text = 'x = cart.total(items)';
    expect(symbolAt(text, 6)).toBe('cart.total');
    expect(symbolAt(text, 14)).toBe('cart.total');
    expect(symbolAt(text, 3)).toBeNull();
    expect(symbolAt('f(123)', 3)).toBeNull();
    expect(symbolAt('obj.', 4)).toBe('obj');
  });

  it('cuts huge markdown at a line end and closes an open fence', () => {
    const md = 'intro\n```python\n' + 'x = 1\n'.repeat(100) + '```\nend';
    const t = truncateMarkdown(md, 100);
    expect(t.truncated).toBe(true);
    expect(t.text.endsWith('\n```')).toBe(true);
    expect(t.text.length).toBeLessThan(110);
    expect(t.hidden).toBeGreaterThan(0);
    expect(truncateMarkdown('short', 100)).toEqual({ text: 'short', truncated: false, hidden: 0 });
  });
});

describe('wording', () => {
  const status = { root: '/r', store: '/r/.direng', files: 3, symbols: 42, chunks: 50, fresh: true, last_refresh: 'x' };

  it('says how fresh the index is', () => {
    expect(statusText(status)).toBe('DirEng: fresh · 42 symbols');
    expect(statusText({ ...status, fresh: false, commits_behind: 2 })).toBe('DirEng: 2 commits behind · 42 symbols');
    expect(statusText({ ...status, fresh: false, commits_behind: 1 })).toBe('DirEng: 1 commit behind · 42 symbols');
    expect(statusText(status, { refreshing: true })).toBe('DirEng: refreshing…');
    expect(statusText({ ...status, last_refresh: null })).toBe('DirEng: not indexed');
    expect(statusText(null, { error: 'down' })).toBe('DirEng: unavailable');
  });

  it('adds up usages', () => {
    const u = summarizeUsage('openai', [
      { provider: 'openai', model: 'a', input_tokens: 10, output_tokens: 5, cost: 0.01, latency_ms: 100 },
      { provider: 'anthropic', model: 'b', input_tokens: 1, output_tokens: 2, cost: 0.02, latency_ms: 50 }
    ]);
    expect(u).toEqual({ provider: 'anthropic', model: 'b', inputTokens: 11, outputTokens: 7, cost: 0.03, latencyMs: 150 });
    expect(summarizeUsage(undefined, []).provider).toBe('local');
  });

  it('formats durations, ages and estimates', () => {
    expect(formatDuration(0.25)).toBe('250 ms');
    expect(formatDuration(12.34)).toBe('12.3 s');
    expect(formatDuration(125)).toBe('2 min 5 s');
    expect(formatDuration(null)).toBe('–');
    expect(formatAge(100, 160_000)).toBe('1 min');
    expect(formatAge('2020-01-01T00:00:00Z', Date.parse('2020-01-03T00:00:00Z'))).toBe('2 d');
    expect(formatEstimate({ duration_p50_s: 12, duration_p90_s: 30, cost_p50: 0.01, prior_only: true })).toBe(
      '~12.0 s (p90 30.0 s) · $0.0100 · prior'
    );
    const sized = { duration_p50_s: 60, duration_p90_s: 240, n_history: 7, prior_only: false, model: 'size' as const,
      explanation: 'p90 4 min: 12k-line repo (×1.9 the usual 6.3k), young lane (7 runs)' };
    expect(formatEstimateWhy(sized)).toBe(
      '~1 min 0 s (p90 4 min 0 s) · 7 runs\np90 4 min: 12k-line repo (×1.9 the usual 6.3k), young lane (7 runs)'
    );
    expect(formatEstimateWhy({ duration_p50_s: 12, duration_p90_s: 30 })).toBe('~12.0 s (p90 30.0 s)');
  });
});

describe('paths', () => {
  it('maps engine paths to contents paths', () => {
    expect(normalize('a/./b/../c')).toBe('a/c');
    expect(normalize('../x')).toBeNull();
    expect(toServerPath('/srv/repo/.direng/runs/r1/output.ipynb', '/srv/repo')).toBe('.direng/runs/r1/output.ipynb');
    expect(toServerPath('/elsewhere/x.py', '/srv/repo')).toBeNull();
    expect(toServerPath('/srv/repository/x.py', '/srv/repo')).toBeNull();
    expect(toServerPath('pkg/a.py', '/srv', '/srv/repo')).toBe('repo/pkg/a.py');
    expect(toServerPath('pkg/a.py', '/srv/repo', '/srv/repo')).toBe('pkg/a.py');
    expect(toServerPath('pkg/a.py', '/srv/repo', '/other')).toBeNull();
    expect(toServerPath('pkg/a.py', '')).toBe('pkg/a.py');
  });

  it('knows where run files are', () => {
    expect(runFiles('/r/.direng/', 'abc')).toEqual({
      notebook: '/r/.direng/runs/abc/output.ipynb',
      passport: '/r/.direng/passports/abc.json'
    });
  });
});
