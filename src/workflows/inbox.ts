/**
 * The webhook inbox (migrations/0042_webhook_inbox.sql): CREATED/UPDATED events are acknowledged
 * once durable and applied a moment later, many at a time.
 *
 * - append(args): the event (ingest.ts FastArgs) INSERTed — committed before the webhook's 200,
 *   so nothing acknowledged is lost — then wakes this process's drainer. Group commit: the
 *   appends that arrive while one INSERT is in flight go together in the next, one statement and
 *   one commit; each webhook is still answered only once its own row is committed.
 * - The drainer: one loop per process, one drain at a time across processes (a transaction-level
 *   advisory lock). Each drain takes the oldest rows (up to GROUP) and applies them in one
 *   statement — the rows deleted and handed to labelfleet_ingest_annotations (idempotency, order,
 *   tombstones) — then scores gold tasks (ingest.ts applyGold), in one transaction: each event
 *   applied exactly once, an annotator's events in inbox order. A group costs one call and one
 *   commit however many events it holds: under load the events that arrived during a drain go
 *   together in the next, which begins DRAIN_INTERVAL_MS after the one before at the soonest.
 * - A group that fails (a concurrent record, a deadlock, a bad value) is rolled back and its events
 *   applied one by one; an event that fails alone with a fault of its own (eventFault) is set
 *   aside — moved to webhook_inbox_set_aside with its error (migration 0051) —, logged and
 *   counted, its batch made due for comparison with Label Studio (compare.ts markForComparison:
 *   the comparison applies what Label Studio holds), and the drain goes on. The next reconcile
 *   pass of any process names it once (takeSetAside).
 *   The database unreachable: the drain stops and runs again DRAIN_RETRY_MS later, and at every
 *   reconcile pass (orchestrator/steps.ts), so a crash between the 200 and the apply loses nothing.
 *
 * After the drain's commit: webhook metrics by outcome (recorded, duplicate), and ctx.wake when a
 * batch became ready or a review decision was recorded.
 */
import { CompiledQuery } from 'kysely';
import type { AppContext } from '../context.ts';
import type { Db, Tx } from '../db/index.ts';
import { isDatabaseUnavailable } from '../db/connect-errors.ts';
import { pgCode } from '../errors.ts';
import { metrics, type WebhookAction } from '../metrics.ts';
import { markForComparison } from './compare.ts';
import { applyGold, noOutcome, tally, type FastArgs, type FastRow, type IngestOutcome } from './ingest.ts';

/** Events applied per drain transaction at most. */
export const GROUP = 1_000;
/** After a drain failed (the database away), the next one waits this long unless woken. */
export const DRAIN_RETRY_MS = 1_000;
/**
 * A drain begins at most this long after the one before began, while webhooks keep arriving:
 * under a burst, fewer and larger groups (each drain costs a transaction, and gold scoring and
 * quality checks per annotator in it) leave the cores to acknowledging. An event waits this
 * long at most before its drain begins; a webhook after a quiet spell is drained at once.
 */
export const DRAIN_INTERVAL_MS = 100;
/** Set-aside events named in one reconcile report at most; the rest are counted. */
const SET_ASIDE_NAMED = 20;
/** Set-aside events are kept this long (days) after a report named them, for an operator to read. */
export const SET_ASIDE_KEPT_DAYS = 30;
/** The drainers' advisory lock (db/index.ts LOCKS holds the session-level ones). */
const DRAIN_LOCK = 7_404_010;

/** Appends written by one INSERT at most: a bound on one statement's size, far above what concurrent webhooks queue. */
export const APPEND_GROUP = 500;

// Fixed statement texts: built once, not per event.
/** The events of $1 (a JSON array), one row each, in the array's order: inbox ids follow arrival. */
const APPEND = `INSERT INTO webhook_inbox (event)
  SELECT e FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY n`;
const LOCK = `SELECT pg_advisory_xact_lock(${DRAIN_LOCK})`;
/**
 * Takes the rows `which` selects (with $1) and applies them in one statement: the events never
 * travel to this process and back. One row per event, by index in inbox order: the function's
 * outcome, the event's type, and for a gold task's event the event itself (applyGold applies it).
 */
const takeAndApply = (which: string) => `WITH taken AS (
    DELETE FROM webhook_inbox WHERE id IN (${which}) RETURNING id, event),
  n AS (SELECT (row_number() OVER (ORDER BY id))::int - 1 AS i, id, event FROM taken)
  SELECT n.i AS idx, r.outcome, r.batch_id, r.ready, r.review_recorded, r.task_id,
         n.event->>'event_type' AS event_type, CASE WHEN r.outcome = 'gold' THEN n.event END AS event
    FROM labelfleet_ingest_annotations((SELECT coalesce(jsonb_agg(n.event || jsonb_build_object('i', n.i) ORDER BY n.i), '[]') FROM n)) r
   RIGHT JOIN n ON n.i = r.idx`;
/** The oldest rows not set aside, $1 at most: what a drain takes. */
const FIRST_IDS = `SELECT id FROM webhook_inbox ORDER BY id LIMIT $1`;
const TAKE = takeAndApply(FIRST_IDS);
const TAKE_ONE = takeAndApply(`SELECT id FROM webhook_inbox WHERE id = $1`);
/** Moves inbox row $1 to the set-aside events with its error $2 (migration 0051). */
const FAIL = `WITH moved AS (DELETE FROM webhook_inbox WHERE id = $1 RETURNING id, event, received_at)
  INSERT INTO webhook_inbox_set_aside (id, event, received_at, error) SELECT id, event, received_at, $2 FROM moved RETURNING event`;
/**
 * Marks every set-aside event not reported yet as reported, and returns the first SET_ASIDE_NAMED
 * of them with the count of all; forgets those reported more than SET_ASIDE_KEPT_DAYS ago.
 */
const REPORT = `WITH purged AS (DELETE FROM webhook_inbox_set_aside WHERE reported_at < now() - make_interval(days => $2)),
  marked AS (UPDATE webhook_inbox_set_aside SET reported_at = now() WHERE reported_at IS NULL RETURNING id, event, error)
  SELECT id, event, error, count(*) OVER ()::int AS total FROM marked ORDER BY id LIMIT $1`;

interface TakenRow extends FastRow {
  idx: number;
  eventType: string;
  event: FastArgs | null;
}

interface Applied {
  rows: FastRow[];
  types: string[];
}

const ACTION: Record<string, WebhookAction> = { annotation_created: 'ANNOTATION_CREATED', annotation_updated: 'ANNOTATION_UPDATED' };

/**
 * A fault of the event itself, not of the database's state: a bad value, a constraint or the
 * rules (SQLSTATE class 22, 23, P0), or an error of our own code on its values (no SQLSTATE, not
 * a lost connection — e.g. a result Label Studio let through that gold scoring cannot read).
 */
const eventFault = (err: unknown) => {
  const code = pgCode(err);
  return code ? /^(22|23|P0)/.test(code) : !isDatabaseUnavailable(err);
};

/** An event waiting for its INSERT: its JSON, and its webhook's answer. */
interface Append {
  json: string;
  resolve(): void;
  reject(err: unknown): void;
}

/** A drain() caller: answered once round `round` of the loop has finished (or a drain failed). */
interface DrainWaiter {
  round: number;
  resolve(): void;
  reject(err: unknown): void;
}

export class WebhookInbox {
  #queued: Append[] = [];
  #writing = false;
  #running: Promise<void> | null = null;
  #again = false;
  /** Rounds of draining begun and finished by the loop; who waits for which (drain()). */
  #roundsBegun = 0;
  #roundsDone = 0;
  #waiting: DrainWaiter[] = [];
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(private readonly ctx: Pick<AppContext, 'database' | 'wake' | 'logger'>) {}

  get #db(): Db {
    return this.ctx.database.db;
  }

  /**
   * Stores one event: resolves once it is committed, rejects (storing nothing of it) when its
   * INSERT failed. Group commit: appends that arrive while one INSERT is being written wait for it
   * and go together in the next, one statement and one commit for the lot, so concurrent webhooks
   * share the round trip and the WAL flush; an append with none in flight is written at once.
   * A group refused for one event's value (eventFault) is written one event at a time, so only
   * that event's append fails. Wakes the drainer.
   */
  append(args: FastArgs): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queued.push({ json: JSON.stringify(args), resolve, reject });
      if (!this.#writing) void this.#writeQueued();
    });
  }

  /** Writes what is queued, a group per INSERT, until nothing is. One writer at a time. */
  async #writeQueued(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queued.length) {
        const group = this.#queued.splice(0, APPEND_GROUP);
        try {
          await this.#insert(group);
          for (const a of group) a.resolve();
        } catch (err) {
          if (group.length > 1 && eventFault(err)) {
            for (const a of group) await this.#insert([a]).then(a.resolve, a.reject);
          } else for (const a of group) a.reject(err);
        }
        void this.drain().catch(() => {});
      }
    } finally {
      this.#writing = false;
    }
  }

  #insert(group: Append[]): Promise<unknown> {
    let events = '[';
    for (let i = 0; i < group.length; i++) events += (i ? ',' : '') + group[i]!.json;
    return this.#db.executeQuery(CompiledQuery.raw(APPEND, [`${events}]`]));
  }

  /**
   * Applies what the inbox holds: resolves once a round of draining that began after this call
   * has found the inbox empty (so every event stored before the call is applied or set aside),
   * whether or not more webhooks keep the drainer going; started now or joined. Rejects when a
   * drain failed (the database away; logged, and retried DRAIN_RETRY_MS later).
   */
  drain(): Promise<void> {
    this.#again = true;
    const round = this.#roundsBegun + 1;
    const done = new Promise<void>((resolve, reject) => this.#waiting.push({ round, resolve, reject }));
    this.#running ??= this.#loop();
    return done;
  }

  /** Resolves once the drainer of this process (if running) has stopped, whatever its outcome. */
  async idle(): Promise<void> {
    await this.#running;
  }

  /**
   * The events set aside (by any process's drain) that no report named yet, one line each (inbox
   * id, annotator, Label Studio project and task, the error), at most SET_ASIDE_NAMED lines plus
   * one counting the rest; marked as named, in one statement. The reconciler's webhook-inbox step
   * reports them. Rejects when the database is away.
   */
  async takeSetAside(): Promise<string[]> {
    const { rows } = await this.#db.executeQuery<{ id: string; event: FastArgs; error: string; total: number }>(
      CompiledQuery.raw(REPORT, [SET_ASIDE_NAMED, SET_ASIDE_KEPT_DAYS]),
    );
    const out = rows.map(
      ({ id, event, error }) =>
        `webhook event set aside (webhook_inbox_set_aside id ${id}; annotator ${event.annotator}, Label Studio project ${event.project ?? '?'}, task ${event.ls_task}): ${error}; its batch is compared with Label Studio`,
    );
    const more = (rows[0]?.total ?? 0) - rows.length;
    if (more > 0) out.push(`${more} more webhook events set aside (rows of webhook_inbox_set_aside)`);
    return out;
  }

  /** No retry timer after this; a drain in flight finishes. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
  }

  /** Rounds of draining while someone asks for one (drain()), DRAIN_INTERVAL_MS apart at least. Never rejects. */
  async #loop(): Promise<void> {
    try {
      while (this.#again) {
        this.#again = false;
        const begun = performance.now();
        this.#roundsBegun++;
        // A full take may have more behind it (rows set aside count as taken).
        while ((await this.#drainOnce()) === GROUP);
        this.#roundsDone++;
        this.#settle((w) => w.round <= this.#roundsDone, (w) => w.resolve());
        const wait = DRAIN_INTERVAL_MS - (performance.now() - begun);
        if (this.#again && wait > 0 && !this.#closed) await new Promise((r) => setTimeout(r, wait));
      }
    } catch (err) {
      this.ctx.logger.error({ err }, 'webhook inbox: drain failed, retrying');
      metrics.errors.inc({ source: 'webhook' });
      if (!this.#closed) {
        clearTimeout(this.#retry);
        this.#retry = setTimeout(() => void this.drain().catch(() => {}), DRAIN_RETRY_MS).unref();
      }
      this.#settle(() => true, (w) => w.reject(err));
    } finally {
      this.#running = null;
    }
  }

  /** Answers the drain() callers that `which` picks with `answer`. */
  #settle(which: (w: DrainWaiter) => boolean, answer: (w: DrainWaiter) => void): void {
    const answered = this.#waiting.filter(which);
    this.#waiting = this.#waiting.filter((w) => !which(w));
    for (const w of answered) answer(w);
  }

  /** One drain transaction, or one per event after a group failed. Returns the number of inbox rows taken off (applied or set aside). */
  async #drainOnce(): Promise<number> {
    let applied: Applied[];
    let taken: number;
    try {
      applied = [await this.#db.transaction().execute((trx) => this.#apply(trx, TAKE, GROUP))];
      taken = applied[0]!.rows.length;
    } catch (err) {
      // The connection lost: stop, retry later. Else (the database's answer, or our code failing on
      // one of the events) one by one, so one event cannot hold back everyone else's.
      if (isDatabaseUnavailable(err)) throw err;
      const { rows } = await this.#db.executeQuery<{ id: string }>(CompiledQuery.raw(FIRST_IDS, [GROUP]));
      if (!rows.length) throw err;
      applied = [];
      for (const { id } of rows) applied.push(await this.#applyOne(id));
      taken = rows.length;
    }
    const out = noOutcome();
    for (const { rows, types } of applied) {
      for (const [i, r] of rows.entries()) {
        tally(out, r);
        metrics.webhookEvents.inc({ action: ACTION[types[i]!] ?? 'other', result: r.outcome === 'duplicate' ? 'duplicate' : 'recorded' });
      }
    }
    this.#wake(out);
    return taken;
  }

  /** Takes the rows `text` selects (`param`) and applies them, gold tasks' events included, in `trx`. */
  async #apply(trx: Tx, text: string, param: number | string): Promise<Applied> {
    await trx.executeQuery(CompiledQuery.raw(LOCK));
    const { rows } = await trx.executeQuery<TakenRow>(CompiledQuery.raw(text, [param]));
    // An event taken without its outcome would be deleted unapplied: roll back instead.
    if (rows.some((r) => r.outcome == null)) throw new Error('event missing from the ingestion result');
    const taken = [...rows].sort((a, b) => a.idx - b.idx);
    const applied: FastRow[] = [...taken];
    await applyGold(trx, applied, (i) => taken[i]!.event!);
    return { rows: applied, types: taken.map((r) => r.eventType) };
  }

  /** Inbox row `id` alone (retried once: a concurrent record is then a duplicate); nothing when it failed and was set aside or is gone. */
  async #applyOne(id: string): Promise<Applied> {
    let err: unknown;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        return await this.#db.transaction().execute((trx) => this.#apply(trx, TAKE_ONE, id));
      } catch (e) {
        err = e;
        if (isDatabaseUnavailable(e)) throw e;
      }
    }
    if (!eventFault(err)) throw err;
    const message = (err as Error).message.slice(0, 500);
    const event = await this.#db.transaction().execute(async (trx) => {
      const { rows } = await trx.executeQuery<{ event: FastArgs }>(CompiledQuery.raw(FAIL, [id, message]));
      const ev = rows[0]?.event;
      if (ev) await markForComparison(trx, ev.annotator, ev.project);
      return ev;
    });
    this.ctx.logger.error({ err, inboxId: id }, 'webhook inbox: event set aside');
    metrics.errors.inc({ source: 'webhook' });
    if (event) this.ctx.wake('webhook: an event set aside, compare with Label Studio');
    return { rows: [], types: [] };
  }

  #wake(out: IngestOutcome) {
    if (out.readyAssignmentIds.length || out.reviewRecorded) {
      this.ctx.wake(`webhook: ${out.readyAssignmentIds.length ? `batch ${[...new Set(out.readyAssignmentIds)].join(',')} annotated` : 'review decision'}`);
    }
  }
}

const inboxes = new WeakMap<Db, WebhookInbox>();

/** The inbox of `ctx`'s database (one drainer per database handle in this process). */
export function webhookInbox(ctx: Pick<AppContext, 'database' | 'wake' | 'logger'>): WebhookInbox {
  let inbox = inboxes.get(ctx.database.db);
  if (!inbox) inboxes.set(ctx.database.db, (inbox = new WebhookInbox(ctx)));
  return inbox;
}
