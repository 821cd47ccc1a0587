-- The admin console (issue 12): indexes for the annotators table at 10,000+ rows.

-- The default listing (live annotators by name, ties by id): one page, even a deep one, is read
-- from this index alone (index-only), and the count of live annotators too. Byte order ("C") on
-- the lower-cased name: the same order for every locale, and no locale-aware comparisons.
CREATE INDEX annotators_name_idx ON annotators ((lower(name) COLLATE "C"), id) WHERE status <> 'deleted';

-- Search by any part of a name or email (LIKE '%…%' on the lower-cased "name email") through a
-- trigram index, where the pg_trgm extension can be had (PostgreSQL's contrib; a trusted
-- extension, so the database owner may create it). Without it the search still works, by scanning.
DO $$
BEGIN
  BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
  EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%); annotator search will scan', SQLERRM;
  END;
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
    EXECUTE $sql$CREATE INDEX annotators_search_trgm_idx ON annotators
                 USING gin ((lower(name) || ' ' || lower(email)) gin_trgm_ops)$sql$;
  END IF;
END
$$;
