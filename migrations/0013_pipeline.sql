-- LabelFleet in a data pipeline (issue 14): API keys, idempotent writes, rate limits, outbound
-- webhooks (subscriptions, an outbox written with each fact, deliveries and their attempts), and
-- the indexes exports and throughput by period read through.

-- API keys: `Authorization: Bearer lf_…`. Only the key's sha256 is kept; the prefix tells keys apart.
CREATE TABLE api_keys (
  id            serial PRIMARY KEY,
  name          varchar(255) NOT NULL CHECK (length(name) >= 1),
  prefix        varchar(16) NOT NULL,
  key_hash      char(64) NOT NULL,
  scopes        text[] NOT NULL CHECK (cardinality(scopes) >= 1 AND scopes <@ ARRAY['read', 'write', 'admin']::text[]),
  expires_at    timestamptz,
  revoked_at    timestamptz,
  last_used_at  timestamptz,
  created_by    integer NOT NULL REFERENCES admin_users (id),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);

-- Idempotency-Key: the first request with a key (per credential) runs and its response is kept
-- for 24 h; the same key and body replays it. A request in flight holds the key until
-- locked_until (a process that died mid-request lets go then).
CREATE TABLE idempotency_keys (
  id                bigserial PRIMARY KEY,
  credential        varchar(64) NOT NULL,          -- 'key:<api key id>' or 'admin:<admin user id>'
  key               varchar(255) NOT NULL,
  fingerprint       char(64) NOT NULL,             -- sha256 of method, path and query, and body
  state             varchar(16) NOT NULL DEFAULT 'in_flight' CHECK (state IN ('in_flight', 'done')),
  locked_until      timestamptz,
  response_status   integer,
  response_headers  jsonb,
  response_body     text,
  created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX idempotency_keys_credential_key ON idempotency_keys (credential, key);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- rate-limiter-flexible's PostgreSQL store (fixed windows per key; every replica counts here).
CREATE TABLE rate_limits (
  key     varchar(255) PRIMARY KEY,
  points  integer NOT NULL DEFAULT 0,
  expire  bigint
);

-- Outbound webhook subscriptions. The signing secret (whsec_…) and the extra headers are read back
-- to send, so they are sealed under FLEET_SECRET_KEY; responses show the secret's prefix and the
-- header names only.
CREATE TABLE webhook_subscriptions (
  id             serial PRIMARY KEY,
  url            varchar(2048) NOT NULL,
  description    varchar(500),
  event_types    text[] NOT NULL CHECK (cardinality(event_types) >= 1),
  workflow_id    integer REFERENCES workflows (id) ON DELETE CASCADE,
  header_names   text[] NOT NULL DEFAULT '{}',
  headers_enc    text,
  secret_enc     text NOT NULL,
  secret_prefix  varchar(16) NOT NULL,
  is_active      boolean NOT NULL DEFAULT true,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscriptions_active_idx ON webhook_subscriptions (id) WHERE is_active;

-- The outbox: one row per fact, written in the fact's transaction. Its id is the webhook-id every
-- delivery and retry of it carries; dedupe_key (the fact's own key) makes a fact one event.
CREATE TABLE webhook_events (
  id           varchar(64) PRIMARY KEY,
  type         varchar(64) NOT NULL,
  workflow_id  integer,                              -- no foreign key: the event outlives its workflow
  dedupe_key   varchar(255),
  payload      jsonb NOT NULL,                       -- the body sent: {type, timestamp, data}
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX webhook_events_dedupe_key ON webhook_events (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX webhook_events_created_at_idx ON webhook_events (created_at);

-- One delivery per (subscription, event), made in the same transaction. Pending deliveries are due
-- at next_attempt_at; a sender claims one by pushing next_attempt_at out by a lease, so a process
-- that dies mid-send leaves it due again later (with the same webhook-id).
CREATE TABLE webhook_deliveries (
  id                 bigserial PRIMARY KEY,
  subscription_id    integer NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
  event_id           varchar(64) NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
  status             varchar(16) NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempt_count      integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
  next_attempt_at    timestamptz,
  window_started_at  timestamptz NOT NULL DEFAULT now(),  -- retries stop webhooks.retryWindowHours after this
  last_attempt_at    timestamptz,
  last_status_code   integer,
  last_error         text,
  delivered_at       timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX webhook_deliveries_subscription_event_key ON webhook_deliveries (subscription_id, event_id);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_subscription_idx ON webhook_deliveries (subscription_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

-- The delivery log: every attempt, its HTTP status (null when none came back) and how long it took.
CREATE TABLE webhook_attempts (
  id                bigserial PRIMARY KEY,
  delivery_id       bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  attempted_at      timestamptz NOT NULL,
  duration_ms       integer NOT NULL CHECK (duration_ms >= 0),
  status_code       integer,
  error             text,
  response_excerpt  varchar(1024)
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempted_at, id);

-- Exports walk a workflow's batches and each batch's tasks in id order (keyset pages).
CREATE INDEX assignment_tasks_assignment_order_idx ON assignment_tasks (assignment_id, id);
-- Throughput by period counts batches completed in each period.
CREATE INDEX assignments_completed_at_idx ON assignments (completed_at) WHERE status = 'completed';
