-- Webhook events set aside get a table of their own, read by whichever process reports them.
--
-- Migration 0042 kept an event that fails alone in webhook_inbox with failed_at: every drain then
-- walked past those rows at the head of the queue (its first ids skip them), and only the process
-- whose drain set an event aside ever named it in a reconcile report (the names lived in its
-- memory) — `fleet reconcile`, another replica or the service after a restart named nothing.
-- Now the failing row moves here in the transaction that sets it aside (src/workflows/inbox.ts),
-- webhook_inbox holds only events waiting to be applied, and the reconcile pass of any process
-- names each set-aside event once (reported_at), then forgets it after 30 days.
CREATE TABLE webhook_inbox_set_aside (
  id          bigint PRIMARY KEY,                  -- its webhook_inbox id
  event       jsonb NOT NULL,
  received_at timestamptz NOT NULL,
  failed_at   timestamptz NOT NULL DEFAULT now(),
  error       text NOT NULL,
  reported_at timestamptz                          -- named in a reconcile report
);
CREATE INDEX webhook_inbox_set_aside_unreported_idx ON webhook_inbox_set_aside (id) WHERE reported_at IS NULL;

INSERT INTO webhook_inbox_set_aside (id, event, received_at, failed_at, error)
  SELECT id, event, received_at, failed_at, coalesce(error, '') FROM webhook_inbox WHERE failed_at IS NOT NULL;
DELETE FROM webhook_inbox WHERE failed_at IS NOT NULL;
ALTER TABLE webhook_inbox DROP COLUMN failed_at, DROP COLUMN error;
