-- Issue 13: Dawid–Skene fits kept for the per-item consensus (src/workflows/consensus-fit.ts).
--
-- One row per overlap workflow and single-choice control, written by the reconciler's
-- 'consensus-fit' step once the control's scored items (agreement_controls.items) pass the
-- threshold and have grown by 10 % since the last fit. `fit` is null when the last check found
-- too little overlap for Dawid–Skene (the majority vote stays); otherwise
--   {classes: [label…], priors: [π_c…], confusion: {"<annotatorId>" | "__pooled__": [[θ_c,k…]…]}}
-- and each item finishing afterwards gets one E-step on it (src/domain/agreement/dawid-skene.ts).
CREATE TABLE consensus_fits (
  workflow_id   integer NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  from_name     text NOT NULL,
  -- Scored items of the control when it was fitted (or checked): the next fit waits for 10 % more.
  items_fitted  integer NOT NULL CHECK (items_fitted >= 0),
  fit           jsonb,
  iterations    integer,
  fitted_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workflow_id, from_name)
);
