-- Webhook ingestion at the database's pace (issue 15): a durable inbox.
--
-- POST /api/webhook authenticates, validates and appends the event here in one INSERT (one index:
-- the primary key), then answers 200: the event is committed before Label Studio hears back, so
-- nothing acknowledged is lost. One drainer at a time across replicas (a transaction-level
-- advisory lock, src/workflows/inbox.ts) takes the oldest rows in large groups, applies them
-- through labelfleet_ingest_annotations (migration 0025: idempotency, order, tombstones) and gold
-- scoring, and deletes them in the same transaction: applied exactly once, per annotator in inbox
-- (arrival) order. Duplicates are not filtered here: the ingestion's unique event key makes a
-- duplicate change nothing when it is applied.
--
-- A row whose event fails alone (no group retry helps) is kept with failed_at and error set, out
-- of the drainer's way, for an operator to read; the comparison with Label Studio repairs its task.
CREATE TABLE webhook_inbox (
  id          bigserial PRIMARY KEY,
  -- labelfleet_ingest_annotations' event object without "i" (src/workflows/ingest.ts FastArgs).
  event       jsonb NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  failed_at   timestamptz,
  error       text
);

-- A queue: every row is deleted soon after it is written, so vacuum it by row count, not by size.
ALTER TABLE webhook_inbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
