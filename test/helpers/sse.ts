/**
 * A server-sent-events client for tests, over a real HTTP connection (fetch + a stream reader):
 * collects events and comment lines as they arrive and can leave the stream as a browser would.
 */
import { waitUntil } from './process.ts';

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

export interface SseStream {
  status: number;
  headers: Headers;
  events: SseEvent[];
  comments: string[];
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  isEnded(): boolean;
  waitFor(what: string, predicate: (events: SseEvent[]) => boolean, timeoutMs?: number): Promise<SseEvent[]>;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let done = false;
  const ended = (async () => {
    if (!res.body || !res.ok) return;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { value, done: finished } = await reader.read();
        if (finished) break;
        buffer += value;
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const ev: SseEvent = { event: 'message', data: '' };
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) ev.event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
            else if (line.startsWith('id: ')) ev.id = line.slice(4);
          }
          if (data.length) events.push({ ...ev, data: data.join('\n') });
        }
      }
    } catch {
      // aborted by close()
    } finally {
      done = true;
    }
  })();
  return {
    status: res.status,
    headers: res.headers,
    events,
    comments,
    ended,
    isEnded: () => done,
    async waitFor(what, predicate, timeoutMs = 20_000) {
      await waitUntil(what, async () => predicate(events), timeoutMs, 50);
      return events;
    },
    close: () => abort.abort(),
  };
}
