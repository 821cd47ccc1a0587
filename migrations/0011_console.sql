-- The admin console (issue 12): indexes for the annotators table at 10,000+ rows.

-- The default sort (by name; ties by id) reads the first page from an index instead of sorting
-- every row.
CREATE INDEX annotators_name_idx ON annotators (lower(name), id);

-- Search by any part of a name or email (ILIKE '%…%') through trigram indexes, where the pg_trgm
-- extension can be had (PostgreSQL's contrib; a trusted extension, so the database owner may
-- create it). Without it the search still works, by scanning the table.
DO $$
BEGIN
  BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
  EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%); annotator search will scan', SQLERRM;
  END;
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
    EXECUTE 'CREATE INDEX annotators_name_trgm_idx ON annotators USING gin (name gin_trgm_ops)';
    EXECUTE 'CREATE INDEX annotators_email_trgm_idx ON annotators USING gin (email gin_trgm_ops)';
  END IF;
END
$$;
