/**
 * Mapping the engine's paths onto the Jupyter server's contents paths. Pure (POSIX paths).
 *
 * Citations are relative to the DirEng root (`health().root`); run files live in the store
 * (`health().store`). JupyterLab opens paths relative to the server's root directory
 * (page config `serverRoot`). A path outside the server root cannot be opened: null.
 */

/** `a/./b/../c` → `a/c`; keeps a leading `/`; null when `..` climbs above the start. */
export function normalize(path: string): string | null {
  const abs = path.startsWith('/');
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (!part || part === '.') {
      continue;
    }
    if (part === '..') {
      if (!out.length) {
        return null;
      }
      out.pop();
    } else {
      out.push(part);
    }
  }
  return (abs ? '/' : '') + out.join('/');
}

/** `child` relative to `parent` when it lies inside it (`''` for itself), else null. */
export function relativeTo(parent: string, child: string): string | null {
  const p = normalize(parent);
  const c = normalize(child);
  if (p === null || c === null) {
    return null;
  }
  if (c === p) {
    return '';
  }
  const prefix = p.endsWith('/') ? p : `${p}/`;
  return c.startsWith(prefix) ? c.slice(prefix.length) : null;
}

/**
 * The contents path of `path` for a server rooted at `serverRoot`. An absolute `path` must
 * lie under `serverRoot`; a relative one is relative to `base` (the DirEng root; the server
 * root itself when unknown).
 */
export function toServerPath(path: string, serverRoot: string | null | undefined, base?: string | null): string | null {
  if (path.startsWith('/')) {
    if (!serverRoot || !serverRoot.startsWith('/')) {
      return null;
    }
    return relativeTo(serverRoot, path);
  }
  if (base && base.startsWith('/') && serverRoot && serverRoot.startsWith('/')) {
    const prefix = relativeTo(serverRoot, base);
    if (prefix === null) {
      return null;
    }
    return normalize(prefix ? `${prefix}/${path}` : path);
  }
  return normalize(path);
}

/** Where a run's files are in the store (absolute when the store is). */
export function runFiles(store: string, runId: string): { notebook: string; passport: string } {
  const s = store.replace(/\/+$/, '');
  return { notebook: `${s}/runs/${runId}/output.ipynb`, passport: `${s}/passports/${runId}.json` };
}
