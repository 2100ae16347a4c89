import { describe, expect, it } from 'vitest';

import { emptyStream, reduceChatEvent } from '../src/chatStream';
import { EventStreamParser, readEvents } from '../src/sse';

describe('EventStreamParser', () => {
  it('dispatches events at their blank line, however the text is cut', () => {
    const text = 'id: 1\nevent: task\ndata: {"seq":1}\n\n: keep-alive\n\nid: 2\r\nevent: task\r\ndata: {"seq":2}\r\n\r\n';
    for (const size of [1, 2, 3, 7, text.length]) {
      const parser = new EventStreamParser();
      const got = [];
      for (let i = 0; i < text.length; i += size) {
        got.push(...parser.push(text.slice(i, i + size)));
      }
      expect(got).toEqual([
        { event: 'task', data: '{"seq":1}', id: '1' },
        { event: 'task', data: '{"seq":2}', id: '2' }
      ]);
      expect(parser.lastId).toBe('2');
    }
  });

  it('joins data lines, defaults the name, carries the id over and holds back a cut event', () => {
    const parser = new EventStreamParser();
    expect(parser.push('id: 7\ndata: one\ndata:two\n\ndata: three\n\nevent: cut\ndata: half')).toEqual([
      { event: 'message', data: 'one\ntwo', id: '7' },
      { event: 'message', data: 'three', id: '7' }
    ]);
    expect(parser.push('\n\n')).toEqual([{ event: 'cut', data: 'half', id: '7' }]);
  });

  it('reads a fetch body split inside a multi-byte character', async () => {
    const bytes = new TextEncoder().encode('event: delta\ndata: {"text":"café ✓"}\n\n');
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 3) {
          c.enqueue(bytes.slice(i, i + 3));
        }
        c.close();
      }
    });
    const got: string[] = [];
    await readEvents(body, ev => got.push(JSON.parse(ev.data).text));
    expect(got).toEqual(['café ✓']);
  });
});

describe('reduceChatEvent', () => {
  it('appends deltas, swaps in a replacement, drops the text on reset and names tools', () => {
    let s = emptyStream();
    s = reduceChatEvent(s, 'tool', { name: 'search' });
    expect(s.tool).toBe('search');
    s = reduceChatEvent(s, 'delta', { text: 'Cards are ' });
    s = reduceChatEvent(s, 'delta', { text: 'charged' });
    expect(s).toMatchObject({ text: 'Cards are charged', tool: null });
    s = reduceChatEvent(s, 'replace', { text: 'Cards [redacted]' });
    expect(s.text).toBe('Cards [redacted]');
    s = reduceChatEvent(s, 'reset', {});
    expect(s.text).toBe('');
    expect(reduceChatEvent(s, 'unknown-kind', { text: 'x' })).toBe(s);
    expect(s.events).toBe(5);
  });
});
