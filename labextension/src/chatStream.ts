/**
 * A chat answer while it streams (`POST /direng/api/chat` with `"stream": true`).
 *
 * The events before the final `answer` say what the user sees meanwhile: `delta` appends,
 * `replace` swaps in the whole text (the server's redaction changed something already sent),
 * `reset` drops it (the model fell back or turned to its tools), `tool` names the tool the model
 * is calling. The final `answer` replaces all of it. Pure: no DOM, no JupyterLab.
 */

export interface StreamedAnswer {
  text: string;
  /** The tool the model is calling now, if any (cleared when text arrives). */
  tool: string | null;
  /** How many events were taken (for tests and the "streaming" indicator). */
  events: number;
}

export const emptyStream = (): StreamedAnswer => ({ text: '', tool: null, events: 0 });

export function reduceChatEvent(s: StreamedAnswer, kind: string, data: Record<string, unknown>): StreamedAnswer {
  const text = typeof data.text === 'string' ? data.text : '';
  const events = s.events + 1;
  switch (kind) {
    case 'delta':
      return { text: s.text + text, tool: null, events };
    case 'replace':
      return { text, tool: null, events };
    case 'reset':
      return { text: '', tool: s.tool, events };
    case 'tool':
      return { ...s, tool: typeof data.name === 'string' ? data.name : 'a tool', events };
    default:
      return s; // an event kind this client does not know: ignored, as the standard's clients do
  }
}
