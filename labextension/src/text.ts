/**
 * Text helpers of the chat input and the editor commands. Pure: no DOM, no JupyterLab.
 */

/** The `/` commands of the chat input. */
export interface SlashCommand {
  name: string;
  usage: string;
  description: string;
  /** Whether the command needs an argument. */
  needsArg: boolean;
}

export const SLASH_COMMANDS: readonly SlashCommand[] = [
  { name: 'search', usage: '/search QUERY', description: 'ranked, citable hits', needsArg: true },
  { name: 'graph', usage: '/graph SYMBOL', description: "a symbol's call graph", needsArg: true },
  { name: 'explain', usage: '/explain SYMBOL', description: 'what a symbol is and does', needsArg: true },
  { name: 'delegate', usage: '/delegate BRIEF', description: 'hand a task to a lane', needsArg: true },
  { name: 'status', usage: '/status', description: 'index size and freshness', needsArg: false },
  { name: 'help', usage: '/help', description: 'what DirEng can do', needsArg: false }
];

export interface SlashInput {
  command: string;
  arg: string;
  /** The known command, or undefined for an unknown `/word`. */
  known?: SlashCommand;
}

/** `/name arg` → {command, arg}; null when `text` is no slash command. */
export function parseSlash(text: string): SlashInput | null {
  const m = /^\s*\/([A-Za-z-]+)(?:\s+([\s\S]*))?$/.exec(text);
  if (!m) {
    return null;
  }
  const command = m[1].toLowerCase();
  return { command, arg: (m[2] ?? '').trim(), known: SLASH_COMMANDS.find(c => c.name === command) };
}

/** The chat message a known slash command sends (the server routes by wording). */
export function slashMessage(input: SlashInput): string {
  switch (input.command) {
    case 'delegate':
      return `delegate: ${input.arg}`;
    case 'status':
    case 'help':
      return input.command;
    default:
      return `${input.command} ${input.arg}`;
  }
}

export interface CompletionContext {
  kind: 'symbol' | 'command';
  prefix: string;
  /** Where the replaced text starts (the `@` or `/`), and ends (the caret). */
  start: number;
  end: number;
}

/**
 * What to complete at `caret`: a symbol after `@` (at the start or after a space or
 * bracket), or a command when the input so far is `/word`. Null otherwise.
 */
export function completionContext(text: string, caret: number): CompletionContext | null {
  const before = text.slice(0, caret);
  const cmd = /^\/([A-Za-z-]*)$/.exec(before);
  if (cmd) {
    return { kind: 'command', prefix: cmd[1], start: 0, end: caret };
  }
  const sym = /(?:^|[\s(\[{,;`'"])@([A-Za-z_][\w.:/-]*|)$/.exec(before);
  if (sym) {
    return { kind: 'symbol', prefix: sym[1], start: caret - sym[1].length - 1, end: caret };
  }
  return null;
}

/** `text` with a completion applied: the token replaced by `@name ` or `/name `. */
export function applyCompletion(
  text: string,
  ctx: CompletionContext,
  value: string
): { text: string; caret: number } {
  const sigil = ctx.kind === 'symbol' ? '@' : '/';
  const insert = `${sigil}${value} `;
  const after = text.slice(ctx.end);
  // The rest of the token being completed goes too, and one space after it.
  const rest = after.slice(/^[\w.:/-]*/.exec(after)![0].length).replace(/^ /, '');
  return { text: text.slice(0, ctx.start) + insert + rest, caret: ctx.start + insert.length };
}

const IDENT = /[\w.]/;

/**
 * The (dotted) identifier at `offset` in `text` — touching the cursor on either side —
 * or null. `foo.bar|(x)` → `foo.bar`; leading and trailing dots are dropped.
 */
export function symbolAt(text: string, offset: number): string | null {
  let start = Math.max(0, Math.min(offset, text.length));
  let end = start;
  while (start > 0 && IDENT.test(text[start - 1])) {
    start--;
  }
  while (end < text.length && IDENT.test(text[end])) {
    end++;
  }
  const word = text.slice(start, end).replace(/^\.+|\.+$/g, '');
  if (!word || /^\d/.test(word) || !/[A-Za-z_]/.test(word)) {
    return null;
  }
  return word;
}

export interface Truncated {
  text: string;
  truncated: boolean;
  /** Characters left out. */
  hidden: number;
}

/**
 * Markdown cut to about `limit` characters at a line end, closing a code fence left open,
 * so a huge answer renders quickly and never breaks the rest of the page.
 */
export function truncateMarkdown(markdown: string, limit: number): Truncated {
  if (markdown.length <= limit) {
    return { text: markdown, truncated: false, hidden: 0 };
  }
  let cut = markdown.lastIndexOf('\n', limit);
  if (cut < limit / 2) {
    cut = limit;
  }
  let text = markdown.slice(0, cut);
  const fences = text.split('\n').filter(line => /^\s*(```|~~~)/.test(line)).length;
  if (fences % 2 === 1) {
    text += '\n```';
  }
  return { text, truncated: true, hidden: markdown.length - cut };
}

/** The conversation key: the file's path when conversations are per file, else `default`. */
export function sessionKey(path: string | null | undefined, perFile: boolean): string {
  return perFile && path ? path : 'default';
}
