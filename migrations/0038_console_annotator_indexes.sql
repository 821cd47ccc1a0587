-- The console's annotators table at 10,000+ rows (issue 12), two more of its reads from an index.

-- Sorted by last activity (newest first, never-active last; read backwards for oldest first, with
-- never-active first): the page's rows from the index's head instead of a sort of every live row.
CREATE INDEX annotators_last_active_idx ON annotators (last_active_at DESC NULLS LAST, id DESC) WHERE status <> 'deleted';

-- The search's trigram index (0011) without its pending list: with fastupdate on, rows inserted
-- since the last vacuum (a bulk create of thousands) wait in an unsorted list that every search
-- reads whole, and the planner then prefers scanning the table (~10 ms at 10,000 rows, twice per
-- page: rows and count). Annotators are created rarely, so each insert updates the index itself.
-- Entries already pending are moved into the index now (turning fastupdate off does not).
DO $$
BEGIN
  IF to_regclass('annotators_search_trgm_idx') IS NOT NULL THEN
    ALTER INDEX annotators_search_trgm_idx SET (fastupdate = off);
    PERFORM gin_clean_pending_list('annotators_search_trgm_idx');
  END IF;
END
$$;
