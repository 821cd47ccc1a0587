-- Keys the catalog skips because a presigned URL cannot address them byte-for-byte
-- (src/domain/object-keys.ts): how many the last full listing and the incremental ones since found,
-- and up to 10 examples [{key, problem}], shown on the workflow (catalogSkippedKeys).
ALTER TABLE catalog_syncs
  ADD COLUMN skipped_count integer NOT NULL DEFAULT 0 CHECK (skipped_count >= 0),
  ADD COLUMN skipped_examples jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(skipped_examples) = 'array');
