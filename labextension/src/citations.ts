/**
 * Citations in DirEng answers: `path:start-end` (1-based, inclusive line numbers), and for a
 * notebook `path:cell N:start-end` (N the 0-based cell index, lines within that cell).
 *
 * Pure: no DOM, no JupyterLab. A citation's path is a relative or absolute POSIX path
 * whose segments are letters, digits, `_`, `.` and `-` (`direng_kernel/index/indexer.py`,
 * `web-app/src/foo.test.ts`), with at least one `.` or `/` and one letter. Not citations:
 * URLs (`https://host.com:80-90`, anything after `//` or `scheme:`), times and time ranges
 * (`10:30-11:45`, `2024-01-01T10:30-05:00`), or numbers (`1.5:2-3`).
 */

export interface Citation {
  path: string;
  start: number;
  end: number;
  /** The notebook cell (0-based) the lines are in; absent for plain files. */
  cell?: number;
}

export interface CitationMatch extends Citation {
  /** The citation as written (`path:start-end`). */
  text: string;
  /** Offset of `text` in the searched string. */
  index: number;
}

// The character before a citation may not continue a path, a URL, a query or a time.
const BEFORE = String.raw`(?<![\w.\-/:@~#%+=?&\\])`;
const PATH = String.raw`\/?(?:[\w.\-]+\/)*[\w.\-]+`;
// Nor may the character after it continue a word, a number, a time or a path.
const AFTER = String.raw`(?![\w:/\\]|\.\d|-\d)`;
const SOURCE = String.raw`${BEFORE}(${PATH}):(?:cell (\d{1,6}):)?(\d{1,9})-(\d{1,9})${AFTER}`;

function plausiblePath(path: string): boolean {
  return (
    /[A-Za-z_]/.test(path) &&
    /[./]/.test(path) &&
    !path.endsWith('.') &&
    !path.includes('//')
  );
}

/** Every citation in `text`, in order. */
export function findCitations(text: string): CitationMatch[] {
  const out: CitationMatch[] = [];
  const re = new RegExp(SOURCE, 'g');
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    const [whole, path, cell, a, b] = m;
    const start = Number(a);
    const end = Number(b);
    if (plausiblePath(path) && start >= 1 && end >= start) {
      out.push({ path, start, end, ...(cell !== undefined ? { cell: Number(cell) } : {}), text: whole, index: m.index });
    }
  }
  return out;
}

/** The citation `text` is, as a whole (surrounding spaces and backticks allowed), or null. */
export function parseCitation(text: string): Citation | null {
  const trimmed = text.trim().replace(/^`+|`+$/g, '');
  const found = findCitations(trimmed);
  if (found.length === 1 && found[0].index === 0 && found[0].text.length === trimmed.length) {
    const { text: _text, index: _index, ...citation } = found[0];
    return citation;
  }
  return null;
}

/** `path:start-end`, or `path:cell N:start-end` in a notebook. */
export function formatCitation(c: Citation): string {
  return c.cell !== undefined ? `${c.path}:cell ${c.cell}:${c.start}-${c.end}` : `${c.path}:${c.start}-${c.end}`;
}
