/**
 * The annotator list's filter, shared by GET /api/annotators and the console's table (its sorts
 * and search are in ./annotators.ts): the page's columns and order for the API. Without a search
 * the total comes from the maintained counter (`annotatorTotal` in ./counts.ts), which applies the
 * same status and role rule; a search is counted over the matching rows.
 */
import { sql } from 'kysely';
import type { Executor } from './index.ts';
import type { AnnotatorCountFilter } from './counts.ts';
import type { Annotator } from './types.ts';

/** The annotator columns the API shows (`toAnnotator`, src/api/annotators.ts): no fleet internals. */
export const ANNOTATOR_API_COLUMNS = [
  'id',
  'name',
  'email',
  'roleId',
  'status',
  'containerId',
  'containerIp',
  'containerPort',
  'subdomain',
  'databaseName',
  'apiTokenEnc',
  'lsUserId',
  'notes',
  'lastActiveAt',
  'rejectionCount',
  'reviewedCount',
  'autoAssignPaused',
  'createdAt',
  'updatedAt',
] as const satisfies readonly (keyof Annotator)[];

/** An annotator as the API shows it: those columns with its role's name and colour. */
export type AnnotatorApiRow = Pick<Annotator, (typeof ANNOTATOR_API_COLUMNS)[number]> & {
  roleName: string | null;
  roleColor: string | null;
};

export interface AnnotatorFilter extends AnnotatorCountFilter {
  /** Case-insensitive substring of the name or the email (`%` and `_` are literal). */
  q?: string;
}

/** `%` and `_` in a search are literal characters, not patterns. */
export const likePattern = (q: string) => `%${q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;

/**
 * What a search matches: the expression of the trigram index in migrations/0011_console.sql,
 * matched case-insensitively by lower-casing both sides (LIKE on lower-cased text is far cheaper
 * than ILIKE).
 */
const SEARCH_TEXT = sql<string>`(lower(annotators.name) || ' ' || lower(annotators.email))`;

/** The search of a filter, trimmed; empty → none. */
export const searchOf = (f: AnnotatorFilter) => f.q?.trim() || undefined;

/** Annotators matching the filter: that status, or every status but deleted; that role; the search. */
export function filterAnnotators(db: Executor, f: AnnotatorFilter) {
  const search = searchOf(f);
  return db
    .selectFrom('annotators')
    .$if(f.status === undefined, (q) => q.where('annotators.status', '<>', 'deleted'))
    .$if(f.status !== undefined, (q) => q.where('annotators.status', '=', f.status!))
    .$if(f.roleId !== undefined, (q) => q.where('annotators.roleId', '=', f.roleId!))
    .$if(search !== undefined, (q) => q.where(SEARCH_TEXT, 'like', likePattern(search!.toLowerCase())));
}

/** The page's rows (AnnotatorApiRow), by id. */
export function annotatorRows(q: ReturnType<typeof filterAnnotators>) {
  return q
    .leftJoin('roles', 'roles.id', 'annotators.roleId')
    .select(ANNOTATOR_API_COLUMNS.map((c) => `annotators.${c}` as const))
    .select(['roles.name as roleName', 'roles.color as roleColor'])
    .orderBy('annotators.id');
}
