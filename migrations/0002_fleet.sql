-- The fleet on Docker/ECS (issue 3): what the reconciler needs to bring an annotator's Label Studio
-- up step by step, keep it up, and clean up after it, surviving a restart of the service at any line.
-- No secret is stored in plain text here: webhook secret and database password are derived from
-- FLEET_SECRET_KEY and start_generation (orchestrator/instance-spec.ts), the annotator's own Label
-- Studio password is sealed (AES-GCM, FLEET_SECRET_KEY).

ALTER TABLE annotators
  -- Bumped by every POST /start: rotates the webhook secret and the database password.
  ADD COLUMN start_generation       integer NOT NULL DEFAULT 0 CHECK (start_generation >= 0),
  ADD COLUMN start_requested_at     timestamptz,
  -- Where a start is: database → container → healthy → token → route → (status active).
  ADD COLUMN start_phase            varchar(16)
                                    CHECK (start_phase IN ('database', 'container', 'healthy', 'token', 'route')),
  ADD COLUMN phase_started_at       timestamptz,
  ADD COLUMN token_reported_at      timestamptz,
  -- Set once the route answers through the router: the status `url` is reported from then on.
  ADD COLUMN routed_at              timestamptz,
  -- Restarts of a container that died or vanished while active (reset by a start or a quiet period).
  ADD COLUMN restart_count          integer NOT NULL DEFAULT 0 CHECK (restart_count >= 0),
  ADD COLUMN last_restart_at        timestamptz,
  ADD COLUMN next_restart_at        timestamptz,
  -- The annotator's own Label Studio login (their email): password sealed, version bumped at each reset.
  ADD COLUMN ls_password_enc        text,
  ADD COLUMN ls_password_version    integer NOT NULL DEFAULT 0 CHECK (ls_password_version >= 0),
  -- The password version the current container was created with (a newer one recreates it at once).
  ADD COLUMN container_password_version integer,
  -- Deleted annotators: when container, route and (per setting) database were removed.
  ADD COLUMN cleaned_up_at          timestamptz;

CREATE INDEX annotators_fleet_work_idx ON annotators (status)
  WHERE status IN ('starting', 'active', 'stopping') OR (status = 'deleted' AND cleaned_up_at IS NULL);
