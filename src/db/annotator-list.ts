/**
 * GET /api/annotators' query: the filter and the page's columns and order. The total comes from
 * the maintained counter (`countAnnotators` in ./counts.ts), which applies the same filter rule.
 */
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

/** Annotators matching the filter: that status, or every status but deleted; that role. */
export function filterAnnotators(db: Executor, f: AnnotatorCountFilter) {
  return db
    .selectFrom('annotators')
    .$if(f.status === undefined, (q) => q.where('annotators.status', '<>', 'deleted'))
    .$if(f.status !== undefined, (q) => q.where('annotators.status', '=', f.status!))
    .$if(f.roleId !== undefined, (q) => q.where('annotators.roleId', '=', f.roleId!));
}

/** The page's rows (AnnotatorApiRow), by id. */
export function annotatorRows(q: ReturnType<typeof filterAnnotators>) {
  return q
    .leftJoin('roles', 'roles.id', 'annotators.roleId')
    .select(ANNOTATOR_API_COLUMNS.map((c) => `annotators.${c}` as const))
    .select(['roles.name as roleName', 'roles.color as roleColor'])
    .orderBy('annotators.id');
}
