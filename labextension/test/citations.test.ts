import { describe, expect, it } from 'vitest';

import { findCitations, formatCitation, parseCitation } from '../src/citations';

const paths = (text: string) => findCitations(text).map(c => [c.path, c.start, c.end]);

describe('findCitations', () => {
  it('finds path:start-end with its offsets', () => {
    const text = 'see direng_kernel/index/indexer.py:10-42 for the pipeline';
    const [c] = findCitations(text);
    expect(c).toEqual({
      path: 'direng_kernel/index/indexer.py',
      start: 10,
      end: 42,
      text: 'direng_kernel/index/indexer.py:10-42',
      index: 4
    });
    expect(text.slice(c.index, c.index + c.text.length)).toBe(c.text);
  });

  it('accepts dots, dashes, underscores and slashes in paths', () => {
    expect(paths('web-app/src/foo.test.ts:3-9')).toEqual([['web-app/src/foo.test.ts', 3, 9]]);
    expect(paths('a.b/c-d/e_f.g.py:1-1')).toEqual([['a.b/c-d/e_f.g.py', 1, 1]]);
    expect(paths('../shared/x.py:2-5')).toEqual([['../shared/x.py', 2, 5]]);
    expect(paths('/abs/dir/file.rs:100-120')).toEqual([['/abs/dir/file.rs', 100, 120]]);
    expect(paths('.github/workflows/ci.yml:4-8')).toEqual([['.github/workflows/ci.yml', 4, 8]]);
    expect(paths('src/no_extension/Makefile:1-2')).toEqual([['src/no_extension/Makefile', 1, 2]]);
  });

  it('finds several, inside punctuation, backticks and brackets', () => {
    const text = 'In `a.py:1-3`, (b/c.ts:4-5) and [d.go:6-7]. Also e.rs:8-9.';
    expect(paths(text)).toEqual([
      ['a.py', 1, 3],
      ['b/c.ts', 4, 5],
      ['d.go', 6, 7],
      ['e.rs', 8, 9]
    ]);
  });

  it('does not match URLs', () => {
    expect(paths('https://example.com:8080-9090')).toEqual([]);
    expect(paths('http://host.org/path/file.py:10-20')).toEqual([]);
    expect(paths('see https://github.com/o/r/blob/main/a.py:1-2 now')).toEqual([]);
    expect(paths('file:///tmp/x.py:1-2')).toEqual([]);
    expect(paths('git@github.com:org/repo.git:1-2')).toEqual([]);
    expect(paths('http://a.b/c?x=d.py:1-2')).toEqual([]);
  });

  it('does not match times, dates or plain numbers', () => {
    expect(paths('the meeting is 10:30-11:45 today')).toEqual([]);
    expect(paths('open 9:00-17:00')).toEqual([]);
    expect(paths('at 2024-01-01T10:30-05:00')).toEqual([]);
    expect(paths('ratio 1.5:2-3')).toEqual([]);
    expect(paths('12:00-13')).toEqual([]);
    expect(paths('Mon:9-17')).toEqual([]);
  });

  it('does not match partial numbers or reversed ranges', () => {
    expect(paths('a.py:10-20.5')).toEqual([]);
    expect(paths('a.py:10-20-30')).toEqual([]);
    expect(paths('a.py:10-20:3')).toEqual([]);
    expect(paths('a.py:20-10')).toEqual([]);
    expect(paths('a.py:0-3')).toEqual([]);
    expect(paths('e.g.:1-2')).toEqual([]);
  });
});

describe('parseCitation', () => {
  it('parses a whole citation, with backticks or spaces', () => {
    expect(parseCitation('shop/payment.py:12-30')).toEqual({ path: 'shop/payment.py', start: 12, end: 30 });
    expect(parseCitation(' `shop/payment.py:12-30` ')).toEqual({ path: 'shop/payment.py', start: 12, end: 30 });
  });

  it('is null for text that is more or less than a citation', () => {
    expect(parseCitation('see shop/payment.py:12-30')).toBeNull();
    expect(parseCitation('shop/payment.py:12')).toBeNull();
    expect(parseCitation('https://x.org:1-2')).toBeNull();
    expect(parseCitation('')).toBeNull();
  });

  it('round-trips with formatCitation', () => {
    const c = { path: 'a-b/c.d.ts', start: 3, end: 4 };
    expect(parseCitation(formatCitation(c))).toEqual(c);
  });
});

describe('notebook cell citations', () => {
  it('finds path:cell N:start-end with the cell', () => {
    const [c] = findCitations('the loader runs in notebooks/clean.ipynb:cell 4:1-3 first');
    expect(c).toMatchObject({ path: 'notebooks/clean.ipynb', cell: 4, start: 1, end: 3,
                              text: 'notebooks/clean.ipynb:cell 4:1-3' });
  });

  it('round-trips through parse and format, and plain citations have no cell', () => {
    expect(parseCitation('`a/b.ipynb:cell 0:2-5`')).toEqual({ path: 'a/b.ipynb', cell: 0, start: 2, end: 5 });
    expect(formatCitation({ path: 'a/b.ipynb', cell: 0, start: 2, end: 5 })).toBe('a/b.ipynb:cell 0:2-5');
    expect(parseCitation('a/b.py:2-5')).toEqual({ path: 'a/b.py', start: 2, end: 5 });
    expect(findCitations('x.ipynb:cell :1-2').map(c => c.cell)).toEqual([]);
  });
});
