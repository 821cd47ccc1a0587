-- The installation's identity (issue 10, ownership): one random id, created with the fleet
-- database and kept in it, so it travels with a dump/restore of the database and nowhere else.
-- Every resource the fleet makes for an annotator (container, volume, route file, Label Studio
-- role and database) is marked with it beside the annotator id; the fleet never adopts, removes
-- or rewrites a resource marked by another installation (orchestrator/ownership.ts).
--
-- adopts_unmarked: resources made before this migration carry no mark. An installation that had
-- already started annotators when the migration ran made them, so it treats unmarked resources
-- as its own (and marks what it can); a new installation (no annotator ever started) treats an
-- unmarked resource as foreign, like one with another id.
CREATE TABLE installation (
  singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  id               text NOT NULL CHECK (id ~ '^[0-9a-f]{32}$'),
  adopts_unmarked  boolean NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now()
);

INSERT INTO installation (id, adopts_unmarked)
SELECT replace(gen_random_uuid()::text, '-', ''), EXISTS (SELECT 1 FROM annotators WHERE start_generation > 0);
