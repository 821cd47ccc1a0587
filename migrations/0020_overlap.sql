-- Issue 13: overlap, agreement, consensus and adjudication.
--
-- Overlap. A workflow with overlap k > 1 has each item labeled by k distinct annotators. Its items
-- keep one work_items row; each annotator who takes it holds a seat (work_item_seats). The item
-- stays 'queued' while a seat is free and becomes 'reserved' (assignment_id NULL: it is in several
-- batches) when the last seat is taken; it is 'done' when every seat's batch has completed, and
-- only then flows downstream (src/workflows/overlap.ts). Overlap 1 never writes a seat: today's
-- path exactly.

ALTER TABLE workflows
  ADD COLUMN overlap                  smallint NOT NULL DEFAULT 1 CHECK (overlap BETWEEN 1 AND 10),
  -- Minimum item agreement (0..1) to accept the consensus; below it the item is adjudicated.
  ADD COLUMN consensus_threshold      double precision CHECK (consensus_threshold BETWEEN 0 AND 1),
  ADD COLUMN adjudication_workflow_id integer REFERENCES workflows (id) ON DELETE SET NULL;

CREATE TABLE work_item_seats (
  work_item_id  bigint NOT NULL REFERENCES work_items (id) ON DELETE CASCADE,
  seat          smallint NOT NULL CHECK (seat BETWEEN 1 AND 10),
  annotator_id  integer NOT NULL REFERENCES annotators (id) ON DELETE CASCADE,
  assignment_id integer NOT NULL REFERENCES assignments (id) ON DELETE CASCADE,
  -- 'done' when the seat's batch completed; task_id is the batch's task for the item.
  status        varchar(8) NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
  task_id       integer REFERENCES assignment_tasks (id) ON DELETE SET NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (work_item_id, seat),
  -- Never twice by the same person: the database's word, whatever the race.
  UNIQUE (work_item_id, annotator_id)
);
CREATE INDEX work_item_seats_assignment_idx ON work_item_seats (assignment_id);

-- A failed or cancelled batch frees its seats, whichever path closed it; an item that was full
-- is queued again. (Batches of overlap 1 hold no seats: nothing happens for them.)
CREATE FUNCTION work_item_seats_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  WITH freed AS (
    DELETE FROM work_item_seats WHERE assignment_id = NEW.id AND status = 'open' RETURNING work_item_id)
  UPDATE work_items SET status = 'queued', updated_at = now()
   WHERE id IN (SELECT work_item_id FROM freed) AND status = 'reserved' AND assignment_id IS NULL;
  RETURN NULL;
END $$;
CREATE TRIGGER assignments_release_seats AFTER UPDATE OF status ON assignments
  FOR EACH ROW WHEN (NEW.status IN ('failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION work_item_seats_release();

-- Consensus of an item once all its seats are done: merged result, agreement (null with fewer than
-- two answers), confidence, and each annotator's answer. outcome: 'accepted' (flowed downstream
-- with the consensus), 'adjudication' (sent to the adjudication workflow), 'adjudicated' (the
-- adjudicator's annotation became the result).
CREATE TABLE item_consensus (
  work_item_id       bigint PRIMARY KEY REFERENCES work_items (id) ON DELETE CASCADE,
  workflow_id        integer NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  image_key          varchar(1024) NOT NULL,
  agreement          double precision,
  confidence         double precision NOT NULL,
  method             varchar(16) NOT NULL,
  result             jsonb NOT NULL,
  -- [{annotatorId, taskId, skipped, result}]
  answers            jsonb NOT NULL,
  controls           jsonb NOT NULL,
  outcome            varchar(16) NOT NULL CHECK (outcome IN ('accepted', 'adjudication', 'adjudicated')),
  adjudication_item_id bigint REFERENCES work_items (id) ON DELETE SET NULL,
  adjudicated_result jsonb,
  adjudicator_id     integer REFERENCES annotators (id) ON DELETE SET NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX item_consensus_workflow_idx ON item_consensus (workflow_id, work_item_id);
CREATE INDEX item_consensus_adjudication_idx ON item_consensus (adjudication_item_id) WHERE adjudication_item_id IS NOT NULL;

-- Agreement rollups, added to as items finish (src/workflows/consensus.ts), so that
-- GET /api/workflows/:id/agreement reads sums instead of every annotation.
-- Per workflow and control: items scored and their summed agreement.
CREATE TABLE agreement_controls (
  workflow_id     integer NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  from_name       text NOT NULL,
  type            varchar(32) NOT NULL,
  items           integer NOT NULL DEFAULT 0,
  agreement_sum   double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (workflow_id, from_name)
);
-- Krippendorff's coincidences o_ck of categorical and numeric controls (values as text).
CREATE TABLE agreement_coincidences (
  workflow_id integer NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  from_name   text NOT NULL,
  value_a     text NOT NULL,
  value_b     text NOT NULL,
  o           double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (workflow_id, from_name, value_a, value_b)
);
-- Pairs of annotators who shared items: items, summed similarity, and (categorical controls)
-- their joint label counts, from which Cohen's kappa is read.
CREATE TABLE agreement_pairs (
  workflow_id    integer NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  from_name      text NOT NULL,
  annotator_a    integer NOT NULL,
  annotator_b    integer NOT NULL,
  items          integer NOT NULL DEFAULT 0,
  similarity_sum double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (workflow_id, from_name, annotator_a, annotator_b)
);
CREATE TABLE agreement_pair_labels (
  workflow_id integer NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  from_name   text NOT NULL,
  annotator_a integer NOT NULL,
  annotator_b integer NOT NULL,
  label_a     text NOT NULL,
  label_b     text NOT NULL,
  n           integer NOT NULL DEFAULT 0,
  PRIMARY KEY (workflow_id, from_name, annotator_a, annotator_b, label_a, label_b)
);
-- Each annotator's agreement with the consensus: items, summed similarity over answered controls.
CREATE TABLE agreement_annotators (
  workflow_id    integer NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  annotator_id   integer NOT NULL,
  items          integer NOT NULL DEFAULT 0,
  answers        integer NOT NULL DEFAULT 0,
  similarity_sum double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (workflow_id, annotator_id)
);
CREATE INDEX agreement_annotators_annotator_idx ON agreement_annotators (annotator_id);
