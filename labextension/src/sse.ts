/**
 * Reading server-sent events (`text/event-stream`) from a fetch body, piece by piece.
 *
 * `EventStreamParser.push` takes text as it arrives, in pieces cut anywhere (inside a line, or
 * between a CR and its LF), and returns the events completed by it; an event is dispatched at
 * the blank line that ends it, as the HTML standard says, so an event cut off by a lost
 * connection is never half-delivered. Comments (`: keep-alive`) are skipped, several `data`
 * lines join with newlines, and the last `id` carries over (what a reconnect resumes after).
 * Pure: no DOM, no JupyterLab.
 */

export interface SSEEvent {
  event: string;
  data: string;
  id: string | null;
}

export class EventStreamParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  /** The last event id seen (carried over between events, as the standard says). */
  lastId: string | null = null;

  push(text: string): SSEEvent[] {
    this.buffer += text;
    const out: SSEEvent[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      // A lone CR at the end may be the first half of CRLF: wait for the next piece.
      if (!m || (m[0] === '\r' && m.index === this.buffer.length - 1)) {
        break;
      }
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const ev = this.line(line);
      if (ev) {
        out.push(ev);
      }
    }
    return out;
  }

  private line(line: string): SSEEvent | null {
    if (!line) {
      const ev = this.data.length ? { event: this.event || 'message', data: this.data.join('\n'), id: this.lastId } : null;
      this.event = '';
      this.data = [];
      return ev;
    }
    if (line.startsWith(':')) {
      return null;
    }
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    if (name === 'event') {
      this.event = value;
    } else if (name === 'data') {
      this.data.push(value);
    } else if (name === 'id' && !value.includes('\0')) {
      this.lastId = value;
    }
    return null;
  }
}

/** Read a fetch response's body as events, calling `onEvent` for each; resolves at the end. */
export async function readEvents(body: ReadableStream<Uint8Array>, onEvent: (ev: SSEEvent) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new EventStreamParser();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        break;
      }
      for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
        onEvent(ev);
      }
    }
    for (const ev of parser.push(decoder.decode())) {
      onEvent(ev);
    }
  } finally {
    reader.releaseLock();
  }
}
