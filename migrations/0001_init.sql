-- LabelFleet initial schema: every entity of the admin API reference.
-- Enums are CHECK constraints (cheap to extend in a later migration); bounds mirror the API's.

CREATE TABLE admin_users (
  id            serial PRIMARY KEY,
  email         varchar(255) NOT NULL,
  password_hash text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX admin_users_email_key ON admin_users (lower(email));

CREATE TABLE sessions (
  id            serial PRIMARY KEY,
  token_hash    char(64) NOT NULL UNIQUE,            -- sha256 of the cookie value; the token itself is never stored
  admin_user_id integer NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_admin_user_id_idx ON sessions (admin_user_id);

-- Failed logins per email, for throttling (shared by every replica).
CREATE TABLE login_failures (
  email        varchar(255) PRIMARY KEY,             -- lower-cased
  failures     integer NOT NULL DEFAULT 0,
  locked_until timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE roles (
  id          serial PRIMARY KEY,
  name        varchar(100) NOT NULL CHECK (length(name) >= 1),
  description varchar(500),
  color       varchar(7) CHECK (color ~ '^#[0-9A-Fa-f]{6}$'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX roles_name_key ON roles (lower(name));

CREATE TABLE labeling_configs (
  id          serial PRIMARY KEY,
  name        varchar(100) NOT NULL CHECK (length(name) >= 1),
  description varchar(500),
  config_xml  text NOT NULL CHECK (length(config_xml) BETWEEN 1 AND 50000),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workflows (
  id                            serial PRIMARY KEY,
  name                          varchar(255) NOT NULL CHECK (length(name) >= 1),
  role_id                       integer REFERENCES roles (id) ON DELETE RESTRICT,
  labeling_config_id            integer REFERENCES labeling_configs (id) ON DELETE RESTRICT,
  previous_workflow_id          integer REFERENCES workflows (id) ON DELETE RESTRICT,
  s3_source_path                varchar(1024) NOT NULL,
  s3_export_path                varchar(1024) NOT NULL,
  images_per_project            integer NOT NULL DEFAULT 100 CHECK (images_per_project BETWEEN 1 AND 10000),
  max_projects                  integer CHECK (max_projects >= 1),
  estimated_time_minutes        integer CHECK (estimated_time_minutes >= 0),
  auto_assign                   boolean NOT NULL DEFAULT true,
  gold_standard_rate            double precision NOT NULL DEFAULT 0 CHECK (gold_standard_rate BETWEEN 0 AND 1),
  shuffle_images                boolean NOT NULL DEFAULT true,
  is_active                     boolean NOT NULL DEFAULT true,
  total_images_available        integer NOT NULL DEFAULT 0 CHECK (total_images_available >= 0),
  total_images_assigned         integer NOT NULL DEFAULT 0 CHECK (total_images_assigned >= 0),
  rejection_mode                varchar(32) NOT NULL DEFAULT 'none'
                                CHECK (rejection_mode IN ('none', 'archive', 'route_to_workflow')),
  rejection_archive_bucket      varchar(1024),
  rejection_route_workflow_id   integer REFERENCES workflows (id) ON DELETE RESTRICT,
  rejection_return_to_original  boolean NOT NULL DEFAULT false,
  rejection_flag_annotator      boolean NOT NULL DEFAULT true,
  max_rework_iterations         integer CHECK (max_rework_iterations >= 0),
  created_at                    timestamptz NOT NULL DEFAULT now(),
  updated_at                    timestamptz NOT NULL DEFAULT now(),
  CHECK (rejection_mode <> 'route_to_workflow' OR rejection_route_workflow_id IS NOT NULL),
  CHECK (previous_workflow_id IS DISTINCT FROM id)
);
CREATE INDEX workflows_role_id_idx ON workflows (role_id);
CREATE INDEX workflows_labeling_config_id_idx ON workflows (labeling_config_id);
CREATE INDEX workflows_previous_workflow_id_idx ON workflows (previous_workflow_id);
CREATE INDEX workflows_rejection_route_workflow_id_idx ON workflows (rejection_route_workflow_id);

CREATE TABLE gold_tasks (
  id                 serial PRIMARY KEY,
  name               varchar(255),
  s3_image_key       varchar(1024) NOT NULL CHECK (length(s3_image_key) >= 1),
  expected_labels    jsonb NOT NULL CHECK (jsonb_typeof(expected_labels) = 'array' AND jsonb_array_length(expected_labels) >= 1),
  labeling_config_id integer NOT NULL REFERENCES labeling_configs (id) ON DELETE RESTRICT,
  category           varchar(100),
  difficulty         varchar(16) CHECK (difficulty IN ('easy', 'medium', 'hard')),
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gold_tasks_labeling_config_id_idx ON gold_tasks (labeling_config_id);
CREATE INDEX gold_tasks_category_idx ON gold_tasks (category);

CREATE TABLE annotators (
  id                  serial PRIMARY KEY,
  name                varchar(255) NOT NULL CHECK (length(name) >= 1),
  email               varchar(255) NOT NULL,
  role_id             integer REFERENCES roles (id) ON DELETE RESTRICT,
  status              varchar(16) NOT NULL DEFAULT 'created'
                      CHECK (status IN ('created', 'starting', 'active', 'stopping', 'stopped', 'error', 'deleted')),
  status_reason       text,
  status_changed_at   timestamptz NOT NULL DEFAULT now(),
  container_id        varchar(255),
  container_ip        varchar(255),
  container_port      integer CHECK (container_port BETWEEN 1 AND 65535),
  subdomain           varchar(63) NOT NULL CHECK (subdomain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  database_name       varchar(63),
  api_token_enc       text,                           -- encrypted with FLEET_SECRET_KEY; API shows a prefix only
  ls_user_id          integer,
  notes               varchar(2000),
  last_active_at      timestamptz,
  rejection_count     integer NOT NULL DEFAULT 0 CHECK (rejection_count >= 0),
  reviewed_count      integer NOT NULL DEFAULT 0 CHECK (reviewed_count >= 0),
  webhook_secret_hash char(64),                       -- sha256 of the secret handed to the instance
  auto_assign_paused  boolean NOT NULL DEFAULT false,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
-- Email and subdomain are unique among annotators that are not deleted, so a person can come back.
CREATE UNIQUE INDEX annotators_email_key ON annotators (lower(email)) WHERE status <> 'deleted';
CREATE UNIQUE INDEX annotators_subdomain_key ON annotators (subdomain) WHERE status <> 'deleted';
CREATE INDEX annotators_role_id_idx ON annotators (role_id);
CREATE INDEX annotators_status_idx ON annotators (status);

CREATE TABLE assignments (
  id               serial PRIMARY KEY,
  workflow_id      integer NOT NULL REFERENCES workflows (id) ON DELETE RESTRICT,
  annotator_id     integer NOT NULL REFERENCES annotators (id) ON DELETE RESTRICT,
  ls_project_id    integer,
  task_count       integer NOT NULL DEFAULT 0 CHECK (task_count >= 0),
  gold_task_count  integer NOT NULL DEFAULT 0 CHECK (gold_task_count >= 0),
  completed_count  integer NOT NULL DEFAULT 0 CHECK (completed_count >= 0),
  status           varchar(16) NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'cancelled')),
  error            text,
  export_key       varchar(1024),
  started_at       timestamptz,
  completed_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assignments_workflow_id_idx ON assignments (workflow_id, status);
CREATE INDEX assignments_annotator_id_idx ON assignments (annotator_id, status);
CREATE INDEX assignments_status_idx ON assignments (status);
CREATE INDEX assignments_created_at_idx ON assignments (created_at DESC, id DESC);

CREATE TABLE assignment_tasks (
  id                 serial PRIMARY KEY,
  assignment_id      integer NOT NULL REFERENCES assignments (id) ON DELETE CASCADE,
  s3_image_key       varchar(1024) NOT NULL,
  gold_task_id       integer REFERENCES gold_tasks (id) ON DELETE SET NULL,
  is_gold            boolean NOT NULL DEFAULT false,
  ls_task_id         integer,
  ls_annotation_id   integer,
  result             jsonb,
  lead_time_seconds  double precision,
  status             varchar(16) NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'annotated')),
  annotated_at       timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assignment_tasks_assignment_id_idx ON assignment_tasks (assignment_id, status);
CREATE UNIQUE INDEX assignment_tasks_ls_task_key ON assignment_tasks (assignment_id, ls_task_id) WHERE ls_task_id IS NOT NULL;

CREATE TABLE gold_results (
  id                 serial PRIMARY KEY,
  assignment_task_id integer NOT NULL UNIQUE REFERENCES assignment_tasks (id) ON DELETE CASCADE,
  assignment_id      integer NOT NULL REFERENCES assignments (id) ON DELETE CASCADE,
  annotator_id       integer NOT NULL REFERENCES annotators (id) ON DELETE RESTRICT,
  gold_task_id       integer REFERENCES gold_tasks (id) ON DELETE SET NULL,
  score              double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
  details            jsonb,
  evaluated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gold_results_annotator_id_idx ON gold_results (annotator_id, evaluated_at DESC);
CREATE INDEX gold_results_assignment_id_idx ON gold_results (assignment_id);
CREATE INDEX gold_results_evaluated_at_idx ON gold_results (evaluated_at DESC);

CREATE TABLE rejections (
  id                       serial PRIMARY KEY,
  workflow_id              integer NOT NULL REFERENCES workflows (id) ON DELETE RESTRICT,   -- the reviewer's workflow
  original_annotator_id    integer REFERENCES annotators (id) ON DELETE RESTRICT,
  reviewer_annotator_id    integer REFERENCES annotators (id) ON DELETE RESTRICT,
  original_assignment_id   integer REFERENCES assignments (id) ON DELETE SET NULL,
  reviewer_assignment_id   integer REFERENCES assignments (id) ON DELETE SET NULL,
  routed_to_assignment_id  integer REFERENCES assignments (id) ON DELETE SET NULL,
  image_key                varchar(1024) NOT NULL,
  reason                   text,
  action_taken             varchar(32) NOT NULL DEFAULT 'none'
                           CHECK (action_taken IN ('none', 'archive', 'route_to_workflow')),
  rework_iteration         integer NOT NULL DEFAULT 0 CHECK (rework_iteration >= 0),
  created_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejections_workflow_id_idx ON rejections (workflow_id, created_at DESC);
CREATE INDEX rejections_original_annotator_id_idx ON rejections (original_annotator_id, created_at DESC);
CREATE INDEX rejections_action_taken_idx ON rejections (action_taken, created_at DESC);
CREATE INDEX rejections_created_at_idx ON rejections (created_at DESC, id DESC);

-- Container lifecycle audit trail: every annotator status transition writes one.
CREATE TABLE container_events (
  id           bigserial PRIMARY KEY,
  annotator_id integer NOT NULL REFERENCES annotators (id) ON DELETE CASCADE,
  event_type   varchar(64) NOT NULL,
  from_status  varchar(16),
  to_status    varchar(16),
  message      text,
  details      jsonb,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX container_events_annotator_idx ON container_events (annotator_id, created_at DESC);
CREATE INDEX container_events_created_at_idx ON container_events (created_at DESC, id DESC);

-- Annotation events ingested from Label Studio webhooks (and from reconciliation).
CREATE TABLE annotation_events (
  id                    bigserial PRIMARY KEY,
  annotator_id          integer NOT NULL REFERENCES annotators (id) ON DELETE CASCADE,
  assignment_id         integer REFERENCES assignments (id) ON DELETE SET NULL,
  event_type            varchar(64) NOT NULL,        -- annotation_created | annotation_updated | annotation_deleted
  ls_project_id         integer,
  ls_task_id            integer,
  ls_annotation_id      integer NOT NULL,
  annotation_updated_at timestamptz,
  time_spent_ms         integer,
  source                varchar(16) NOT NULL DEFAULT 'webhook' CHECK (source IN ('webhook', 'reconcile')),
  created_at            timestamptz NOT NULL DEFAULT now()
);
-- Idempotency: a redelivered or re-discovered event inserts nothing.
CREATE UNIQUE INDEX annotation_events_dedup_key
  ON annotation_events (annotator_id, ls_annotation_id, event_type, (coalesce(annotation_updated_at, 'epoch'::timestamptz)));
CREATE INDEX annotation_events_annotator_idx ON annotation_events (annotator_id, created_at DESC);
CREATE INDEX annotation_events_created_at_idx ON annotation_events (created_at DESC, id DESC);

CREATE TABLE settings (
  id          serial PRIMARY KEY,
  key         varchar(255) NOT NULL UNIQUE CHECK (length(key) >= 1),
  value       jsonb NOT NULL,
  description varchar(500),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
