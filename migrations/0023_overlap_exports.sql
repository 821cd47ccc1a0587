-- Issue 13: the JSONL export of an overlap batch carries each finished item's consensus (or the
-- adjudicator's result). Both are settled after the batch's own export was written — when the
-- item's last batch completes, when its adjudication batch completes — so the batches whose items
-- changed are listed here, in the transaction that changed them, and the reconciler writes their
-- JSONL again (src/workflows/overlap-exports.ts). `version` goes up with each new request, so a
-- request made while a rewrite runs is never cleared by that rewrite.
CREATE TABLE batch_export_refresh (
  assignment_id integer PRIMARY KEY REFERENCES assignments (id) ON DELETE CASCADE,
  version       bigint NOT NULL DEFAULT 1,
  requested_at  timestamptz NOT NULL DEFAULT now()
);
