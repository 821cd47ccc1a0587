-- Batches through the workflow graph (issue 4): the S3 catalog, the work queue of every workflow,
-- and what provisioning, ingestion, completion and review need to be idempotent and crash-safe.

-- Incremental S3 listing per root workflow (src/workflows/catalog.ts): where the last listing
-- stopped (StartAfter cursor) and when the last full resync ran.
CREATE TABLE catalog_syncs (
  workflow_id        integer PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
  bucket             varchar(255) NOT NULL,
  prefix             varchar(1024) NOT NULL,
  last_key           varchar(1024),                  -- greatest key seen: the next incremental listing starts after it
  object_count       integer NOT NULL DEFAULT 0 CHECK (object_count >= 0),
  last_sync_at       timestamptz,
  last_full_sync_at  timestamptz,
  error              text,
  updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Work items: one image waiting for, reserved by, or done in one workflow. Root workflows get them
-- from the S3 catalog; chained workflows from their upstream's completed batches; rework from
-- rejections. An item is in at most one open batch (status 'reserved' + assignment_id).
CREATE TABLE work_items (
  id                  bigserial PRIMARY KEY,
  workflow_id         integer NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  image_key           varchar(1024) NOT NULL CHECK (length(image_key) >= 1),
  source              varchar(16) NOT NULL CHECK (source IN ('catalog', 'chain', 'rework')),
  status              varchar(16) NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'reserved', 'done', 'rejected', 'escalated', 'gone')),
  -- Lower first: rework 0, chain 1, catalog 2.
  priority            smallint NOT NULL DEFAULT 2,
  -- Random rank drawn once: shuffled workflows take items in this order.
  sort_key            double precision NOT NULL DEFAULT random(),
  assignment_id       integer REFERENCES assignments (id) ON DELETE SET NULL,
  -- Only this annotator may take the item (rejectionReturnToOriginal).
  target_annotator_id integer REFERENCES annotators (id) ON DELETE SET NULL,
  -- The assignment task this item was made from (chain: the finished upstream task; rework: the
  -- reviewer's task): one item per upstream task and workflow.
  upstream_task_id    integer REFERENCES assignment_tasks (id) ON DELETE SET NULL,
  -- The task whose annotation this item carries (the annotation a review judges).
  origin_task_id      integer REFERENCES assignment_tasks (id) ON DELETE SET NULL,
  -- Label Studio result imported as a prediction (the upstream annotation).
  prediction          jsonb,
  -- Rejections this image has had along its chain.
  rework_iteration    integer NOT NULL DEFAULT 0 CHECK (rework_iteration >= 0),
  last_seen_at        timestamptz,                   -- catalog: the listing that last saw the key
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
-- A catalog key enters a workflow once.
CREATE UNIQUE INDEX work_items_catalog_key ON work_items (workflow_id, image_key) WHERE source = 'catalog';
-- Chaining and routing are keyed by the task they come from: a retried completion adds nothing.
CREATE UNIQUE INDEX work_items_upstream_key ON work_items (workflow_id, upstream_task_id) WHERE upstream_task_id IS NOT NULL;
-- No image in two open batches of one workflow, whatever path it took.
CREATE UNIQUE INDEX work_items_reserved_image_key ON work_items (workflow_id, image_key) WHERE status = 'reserved';
CREATE INDEX work_items_queue_shuffled_idx ON work_items (workflow_id, priority, sort_key) WHERE status = 'queued' AND target_annotator_id IS NULL;
CREATE INDEX work_items_queue_ordered_idx ON work_items (workflow_id, priority, image_key) WHERE status = 'queued' AND target_annotator_id IS NULL;
CREATE INDEX work_items_targeted_idx ON work_items (target_annotator_id, workflow_id) WHERE status = 'queued' AND target_annotator_id IS NOT NULL;
CREATE INDEX work_items_assignment_idx ON work_items (assignment_id);
CREATE INDEX work_items_workflow_status_idx ON work_items (workflow_id, status);

ALTER TABLE assignments
  ADD COLUMN provision_attempts integer NOT NULL DEFAULT 0 CHECK (provision_attempts >= 0),
  ADD COLUMN ls_webhook_id      integer,
  -- The annotator's start generation whose webhook secret the registered webhook carries.
  ADD COLUMN webhook_generation integer,
  -- Last comparison of this batch with its Label Studio project (reconcile).
  ADD COLUMN ls_checked_at      timestamptz;
CREATE INDEX assignments_open_idx ON assignments (annotator_id, workflow_id) WHERE status IN ('pending', 'in_progress');

ALTER TABLE assignment_tasks
  ADD COLUMN position                 integer NOT NULL DEFAULT 0,
  ADD COLUMN work_item_id             bigint REFERENCES work_items (id) ON DELETE SET NULL,
  -- updated_at of the annotation applied last: older events never overwrite newer ones.
  ADD COLUMN ls_annotation_updated_at timestamptz,
  ADD COLUMN skipped                  boolean NOT NULL DEFAULT false,
  ADD COLUMN review_decision          varchar(8) CHECK (review_decision IN ('accept', 'reject')),
  ADD COLUMN review_reason            text,
  -- Set once the decision's effects (counts, rejection row, routing, archive) are done; final.
  ADD COLUMN review_applied_at        timestamptz;
CREATE INDEX assignment_tasks_ls_task_idx ON assignment_tasks (ls_task_id);
CREATE INDEX assignment_tasks_ls_annotation_idx ON assignment_tasks (ls_annotation_id) WHERE ls_annotation_id IS NOT NULL;
CREATE INDEX assignment_tasks_work_item_idx ON assignment_tasks (work_item_id);
CREATE INDEX assignment_tasks_review_pending_idx ON assignment_tasks (assignment_id)
  WHERE review_decision IS NOT NULL AND review_applied_at IS NULL;
CREATE INDEX assignment_tasks_gold_seen_idx ON assignment_tasks (gold_task_id) WHERE gold_task_id IS NOT NULL;

-- The rework item a routed rejection created: its batch becomes routed_to_assignment_id when assigned.
ALTER TABLE rejections ADD COLUMN routed_work_item_id bigint REFERENCES work_items (id) ON DELETE SET NULL;
CREATE INDEX rejections_routed_work_item_idx ON rejections (routed_work_item_id) WHERE routed_work_item_id IS NOT NULL;
-- One rejection per reviewer task, whatever retries happen.
ALTER TABLE rejections ADD COLUMN reviewer_task_id integer REFERENCES assignment_tasks (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX rejections_reviewer_task_key ON rejections (reviewer_task_id) WHERE reviewer_task_id IS NOT NULL;
