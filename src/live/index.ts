/**
 * The process's live-update machinery, one per AppContext: the change feed that the SSE routes
 * (src/api/live.ts) subscribe to, and its shutdown (service.stop ends every open stream, so a
 * graceful stop never waits on a browser that keeps a stream open).
 */
import type { AppContext } from '../context.ts';
import { readWatermark } from '../db/changes.ts';
import { ChangeFeed } from './change-feed.ts';

const feeds = new WeakMap<AppContext, ChangeFeed>();

/** The context's change feed, created on first use. */
export function changeFeed(ctx: AppContext): ChangeFeed {
  let feed = feeds.get(ctx);
  if (!feed) {
    let lastError = '';
    feed = new ChangeFeed(() => readWatermark(ctx.database.db), {
      intervalMs: ctx.config.LIVE_POLL_MS,
      onError: (err) => {
        // Once per distinct error: a database that is down for a minute is one line, not sixty.
        const text = err instanceof Error ? err.message : String(err);
        if (text !== lastError) ctx.logger.warn({ err }, 'change feed: reading the watermark failed');
        lastError = text;
      },
    });
    feeds.set(ctx, feed);
  }
  return feed;
}

/** Ends every live stream of this context (service shutdown). */
export function closeLiveStreams(ctx: AppContext): void {
  feeds.get(ctx)?.close();
}
