-- Issue 9: sign-in throttle keyed per client (src/auth/throttle.ts), and what the scheduled purge
-- (src/auth/purge.ts) looks rows up by.

-- One row per throttle key: 'pair:<client>|<email>' (one client trying one email) or
-- 'client:<client>' (one client, every email). An attempt is counted here BEFORE its password is
-- verified; a round ends in a block (blocked_until) whose length doubles with each strike.
CREATE TABLE login_throttle (
  key             varchar(400) PRIMARY KEY,
  attempts        integer NOT NULL CHECK (attempts >= 0),   -- attempts counted in the current round
  strikes         integer NOT NULL DEFAULT 0 CHECK (strikes >= 0), -- rounds that ended blocked (backoff exponent)
  blocked_until   timestamptz,
  last_attempt_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_throttle_last_attempt_at_idx ON login_throttle (last_attempt_at);

-- Replaced by login_throttle: it was keyed by email alone, so anyone could lock an admin out.
DROP TABLE login_failures;

CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
