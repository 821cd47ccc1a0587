/**
 * Server-sent events (text/event-stream) for live views — the console uses them; any client may.
 *
 * - GET /api/annotators/{id}/progress: the annotator's start, phase by phase (as JupyterHub's
 *   spawn progress). `event: progress` with {status, phase, percent, message, ready, failed, url,
 *   phases}; sent at once, then on every change. The stream ends after an event with
 *   `ready: true` (status active) or `failed: true` (status error); for an annotator that is not
 *   starting it stays open and reports the next start.
 * - GET /api/changes: `event: change` with {topics, at} whenever something in a topic changed
 *   (src/domain/fleet-changes.ts); a client reads again what it shows. The first event is
 *   `event: ready` with every topic, once the stream is subscribed.
 *
 * Both send a `: keepalive` comment every LIVE_HEARTBEAT_SECONDS so proxies keep idle streams
 * open, end at the heartbeat after the session that opened them ended (expired or signed out), ask clients to reconnect after 3 s (`retry`), and let go of everything when the client
 * leaves or the service stops. Data comes from the change feed (src/live/): one watermark query
 * per LIVE_POLL_MS for all streams together, plus one read per progress stream when annotators
 * changed.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { AppContext } from '../context.ts';
import { readStartProgress } from '../db/annotators.ts';
import { CHANGE_TOPICS } from '../domain/fleet-changes.ts';
import { sameProgress, START_PHASES, startProgress, type StartProgress } from '../domain/start-progress.ts';
import { notFound } from '../errors.ts';
import { changeFeed } from '../live/index.ts';
import { sessionAdmin } from '../auth/sessions.ts';
import type { Change } from '../live/change-feed.ts';
import { publicUrl } from '../../orchestrator/instance-spec.ts';
import { errors, IdParam, Timestamp } from './common.ts';
import { createRouter } from './router.ts';

const RETRY_MS = 3_000;
const PHASE_VALUES = [...START_PHASES, 'active'] as const;

export const ProgressEventSchema = z
  .object({
    status: z.string().openapi({ description: "The annotator's status" }),
    phase: z.enum(PHASE_VALUES).nullable().openapi({ description: 'The phase under way, active when ready, null when no start is under way' }),
    percent: z.number().int().min(0).max(100),
    message: z.string().openapi({ example: 'starting: waiting for Label Studio' }),
    ready: z.boolean().openapi({ description: 'The instance is up; the stream ends after this event' }),
    failed: z.boolean().openapi({ description: 'The start ended in error; the stream ends after this event' }),
    url: z.string().nullable().openapi({ description: "The annotator's Label Studio once ready" }),
    phases: z.array(
      z.object({
        phase: z.enum(PHASE_VALUES),
        label: z.string(),
        state: z.enum(['done', 'current', 'pending', 'failed']),
        startedAt: Timestamp.nullable(),
        message: z.string().nullable(),
      }),
    ),
  })
  .openapi('StartProgressEvent', {
    description:
      'The JSON in `data:` of each `event: progress`. The stream also carries `: keepalive` comment lines and a `retry:` hint.',
  });

export const ChangeEventSchema = z
  .object({
    topics: z.array(z.enum(CHANGE_TOPICS)),
    at: Timestamp,
  })
  .openapi('FleetChangeEvent', {
    description: 'The JSON in `data:` of each `event: change` (and of the first, `event: ready`, listing every topic).',
  });

const eventStream = (schema: z.ZodType, description: string) => ({
  content: { 'text/event-stream': { schema } },
  description,
});

/** Runs a stream until the client leaves or the service stops, with heartbeats. */
async function holdOpen(
  ctx: AppContext,
  c: Context,
  stream: SSEStreamingApi,
  setup: (end: () => void) => { change(change: Change): void; opened?(): void },
): Promise<void> {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    finish();
  };
  stream.onAbort(end);
  const handler = setup(end);
  const unsubscribe = changeFeed(ctx).subscribe({ change: (ch) => !ended && handler.change(ch), close: end });
  handler.opened?.();
  // A stream opened with a session lasts only as long as the session: checked at each heartbeat,
  // so a sign-out elsewhere, a revocation or the expiry ends it (the browser's reconnect then gets
  // the 401 that tells the console the session has ended).
  const bySession = c.get('credential') === 'cookie';
  const heartbeat = setInterval(() => {
    if (ended) return;
    stream.write(': keepalive\n\n').catch(end);
    if (bySession) {
      sessionAdmin(ctx.database.db, c).then(
        (admin) => admin === null && end(),
        () => {},
      );
    }
  }, ctx.config.LIVE_HEARTBEAT_SECONDS * 1000);
  heartbeat.unref();
  try {
    await done;
  } finally {
    clearInterval(heartbeat);
    unsubscribe();
    c.get('log')?.debug({ path: c.req.path }, 'live stream closed');
  }
}

export function liveRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  const progressOf = async (id: number): Promise<StartProgress | null> => {
    const read = await readStartProgress(db, id);
    if (!read) return null;
    const a = read.annotator;
    return startProgress({
      ...a,
      url: a.status === 'active' && a.routedAt ? publicUrl(ctx.config, a.subdomain) : null,
      events: read.events,
    });
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/annotators/{id}/progress',
      tags: ['annotators'],
      summary: "Live start progress of the annotator's Label Studio (server-sent events)",
      description:
        'text/event-stream. `event: progress`, data as StartProgressEvent: sent at once and on every change; the stream ends ' +
        'after `ready: true` or `failed: true`. Phases: database → container → healthy → token → route → active, with the ' +
        'reason of each. `: keepalive` comments every LIVE_HEARTBEAT_SECONDS (default 15). 404 (JSON) for an unknown annotator.',
      request: { params: IdParam },
      responses: {
        200: eventStream(ProgressEventSchema, 'An event stream of StartProgressEvent'),
        400: errors[400],
        401: errors[401],
        404: errors[404],
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const first = await progressOf(id);
      if (!first) throw notFound('Annotator');
      c.header('X-Accel-Buffering', 'no');
      return streamSSE(c, async (stream) => {
        let last = first;
        let seq = 1;
        const send = (p: StartProgress) => stream.writeSSE({ event: 'progress', id: String(seq++), data: JSON.stringify(p) });
        await stream.write(`retry: ${RETRY_MS}\n\n`);
        await send(first);
        if (first.ready || first.failed) return;
        await holdOpen(ctx, c, stream, (end) => {
          let reading = Promise.resolve();
          return {
            change(change) {
              if (!change.topics.includes('annotators')) return;
              // One read at a time, in order: a slow read never lets an older state overwrite a newer one.
              reading = reading.then(async () => {
                try {
                  const next = await progressOf(id);
                  if (!next || sameProgress(next, last)) return;
                  last = next;
                  await send(next);
                  if (next.ready || next.failed) end();
                } catch (err) {
                  c.get('log')?.warn({ err, annotatorId: id }, 'progress stream: read failed');
                }
              });
            },
          };
        });
      });
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/changes',
      tags: ['system'],
      summary: 'Fleet changes as they happen (server-sent events): which topics to read again',
      description:
        'text/event-stream. First `event: ready` (every topic), then `event: change` with the topics that changed since the ' +
        'previous poll (annotators, annotations, batches, quality, workflows, configs, settings). `: keepalive` comments every ' +
        'LIVE_HEARTBEAT_SECONDS. The console subscribes once per page and re-reads the parts that show a changed topic.',
      responses: { 200: eventStream(ChangeEventSchema, 'An event stream of FleetChangeEvent'), 401: errors[401] },
    }),
    async (c) => {
      c.header('X-Accel-Buffering', 'no');
      return streamSSE(c, async (stream) => {
        let seq = 1;
        await stream.write(`retry: ${RETRY_MS}\n\n`);
        const write = (event: string, topics: readonly string[], at: Date, end: () => void) =>
          stream.writeSSE({ event, id: String(seq++), data: JSON.stringify({ topics, at: at.toISOString() }) }).catch(end);
        await holdOpen(ctx, c, stream, (end) => ({
          opened: () => write('ready', CHANGE_TOPICS, new Date(), end),
          change: (change) => write('change', change.topics, change.at, end),
        }));
      }) as never;
    },
  );

  return app;
}
