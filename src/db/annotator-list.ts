/**
 * GET /api/annotators' query: the filter and the page's columns and order. The total comes from
 * the maintained counter (`countAnnotators` in ./counts.ts), which applies the same filter rule.
 */
import type { Executor } from './index.ts';
import type { AnnotatorCountFilter } from './counts.ts';

/** Annotators matching the filter: that status, or every status but deleted; that role. */
export function filterAnnotators(db: Executor, f: AnnotatorCountFilter) {
  return db
    .selectFrom('annotators')
    .$if(f.status === undefined, (q) => q.where('annotators.status', '<>', 'deleted'))
    .$if(f.status !== undefined, (q) => q.where('annotators.status', '=', f.status!))
    .$if(f.roleId !== undefined, (q) => q.where('annotators.roleId', '=', f.roleId!));
}

/** The page's rows: every annotator column with its role's name and colour, by id. */
export function annotatorRows(q: ReturnType<typeof filterAnnotators>) {
  return q
    .leftJoin('roles', 'roles.id', 'annotators.roleId')
    .selectAll('annotators')
    .select(['roles.name as roleName', 'roles.color as roleColor'])
    .orderBy('annotators.id');
}
