/**
 * Following a task live until it ends: what the tasks panel and the chat panel's proposed tasks
 * share.
 *
 * Over the event stream (`GET /tasks/{id}/events/stream`), resuming after the last seq taken
 * whenever a stream ends early (the server's time bound; a lost connection, retried with
 * backoff), so no event is lost or taken twice; against a server without the stream, by polling
 * `GET /tasks/{id}/events?after=N`, with a look at the task now and then, since a task can end
 * without an event the log shows (cancelled before it ran).
 */
import { DirEngAPI, DirEngAPIError } from './api';
import { TaskEvent, isSettledState } from './events';

export const sleep = (ms: number): Promise<void> => new Promise(resolve => window.setTimeout(resolve, ms));

export interface FollowOptions {
  /** The last seq taken: where the next stream or poll resumes. */
  after(): number;
  /** Take a batch of events (in seq order; the caller's reducer drops repeats). */
  take(batch: TaskEvent[]): void;
  /** Whether the events taken say the task has ended. */
  final(): boolean;
  /** Whether anyone still wants the events (the panel is open, the task still selected). */
  live(): boolean;
  onError?(err: unknown): void;
  /** Called as each stream opens (tests count them). */
  onStream?(): void;
  signal?: AbortSignal;
}

/** Follow until the task settles — ends, or escalates — (true) or `live()` says stop (false). */
export async function followTask(api: DirEngAPI, id: string, opts: FollowOptions): Promise<boolean> {
  let streaming = true;
  let failures = 0;
  let polls = 0;
  const take = (ev: TaskEvent) => {
    if (opts.live()) {
      opts.take([ev]);
    }
  };
  while (opts.live()) {
    if (streaming) {
      try {
        opts.onStream?.();
        const { end } = await api.followEvents(id, opts.after(), take, opts.signal);
        failures = 0;
        if (end || opts.final()) {
          return true;
        }
      } catch (err) {
        if (!opts.live()) {
          return false;
        }
        if (err instanceof DirEngAPIError && err.status === 404 && err.code !== 'task_not_found') {
          streaming = false; // a server without the event stream
          continue;
        }
        opts.onError?.(err);
        await sleep(Math.min(500 * 2 ** failures++, 10000));
      }
      continue;
    }
    try {
      opts.take(await api.events(id, opts.after()));
    } catch (err) {
      opts.onError?.(err);
      await sleep(3000);
      continue;
    }
    if (opts.final()) {
      return true;
    }
    if (++polls % 5 === 0) {
      const task = await api.task(id).catch(() => null);
      if (task && isSettledState(task.state)) {
        opts.take(await api.events(id, opts.after()).catch(() => []));
        return true;
      }
    }
    await sleep(1000);
  }
  return false;
}
