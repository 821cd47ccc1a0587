/**
 * One poller per process for every live view: while at least one subscriber listens, it reads the
 * change watermark (src/db/changes.ts) every `intervalMs` and tells each subscriber which topics
 * moved. However many browsers watch, the database sees one small query per interval; with no
 * subscriber it sees none. Reading the database (rather than in-process events) means changes made
 * by another replica, the reconciler or `fleet reconcile` show up too.
 */
import { changedTopics, type ChangeTopic, type Watermark } from '../domain/fleet-changes.ts';

export interface Change {
  topics: ChangeTopic[];
  at: Date;
}

export interface ChangeSubscriber {
  /** Called with the topics that changed since the previous poll (never with an empty list). */
  change(change: Change): void;
  /** The feed is closing (service shutdown): end the stream. */
  close(): void;
}

export interface ChangeFeedOptions {
  intervalMs: number;
  /** Logs a failed poll (the feed keeps polling; a lost connection is an ordinary event). */
  onError?: (err: unknown) => void;
}

export class ChangeFeed {
  private readonly subscribers = new Set<ChangeSubscriber>();
  private timer: NodeJS.Timeout | null = null;
  private last: Watermark | null = null;
  private polling = false;
  private closed = false;

  constructor(
    private readonly read: () => Promise<Watermark>,
    private readonly opts: ChangeFeedOptions,
  ) {}

  /** Adds a subscriber; returns the function that removes it. Polling starts with the first. */
  subscribe(s: ChangeSubscriber): () => void {
    if (this.closed) {
      s.close();
      return () => {};
    }
    this.subscribers.add(s);
    if (this.timer === null && !this.polling) this.schedule(0);
    return () => {
      this.subscribers.delete(s);
      if (this.subscribers.size === 0) this.pause();
    };
  }

  /** How many streams are listening (the tests check that a closed stream lets go). */
  get size(): number {
    return this.subscribers.size;
  }

  /** Ends every stream and stops polling for good. */
  close(): void {
    this.closed = true;
    this.pause();
    for (const s of [...this.subscribers]) s.close();
    this.subscribers.clear();
  }

  private pause() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // Without listeners the baseline goes stale: the next subscriber starts from a fresh one.
    this.last = null;
  }

  private schedule(delayMs: number) {
    this.timer = setTimeout(() => void this.poll(), delayMs);
    this.timer.unref();
  }

  private async poll() {
    this.timer = null;
    if (this.subscribers.size === 0 || this.closed) return;
    this.polling = true;
    try {
      const next = await this.read();
      const topics = this.last ? changedTopics(this.last, next) : [];
      this.last = next;
      if (topics.length > 0) {
        const change = { topics, at: new Date() };
        for (const s of [...this.subscribers]) s.change(change);
      }
    } catch (err) {
      this.opts.onError?.(err);
    } finally {
      this.polling = false;
    }
    if (this.subscribers.size > 0 && !this.closed && this.timer === null) this.schedule(this.opts.intervalMs);
  }
}
