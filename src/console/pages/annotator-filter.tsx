/**
 * The "Annotator" filter of the batches and events pages: a person types a name or an email, or
 * follows a link carrying `annotatorId`, and the page shows that one annotator's rows.
 *
 * Query in: `annotator` (text) and `annotatorId` (a link's; it wins). Out: the annotator meant,
 * or why there is none. The text picks, in order: the annotator whose email or name it is
 * (case-insensitive, deleted ones included, as their batches and events remain; of several, the
 * only live one); else the only annotator whose name or email contains it (the annotators table's
 * search). Several matches are
 * offered as links to pick from (at most 10); then, as when nothing matches, no row is shown —
 * a filter that names no single annotator matches nothing rather than silently everything.
 */
import { sql } from 'kysely';
import type { Executor } from '../../db/index.ts';
import { likePattern } from '../../db/annotator-list.ts';
import { intParam } from './params.ts';

const CANDIDATES = 10;

interface Candidate {
  id: number;
  name: string;
  email: string;
  deleted: boolean;
}

export type AnnotatorChoice =
  /** No annotator filter. */
  | { kind: 'none' }
  /** Filter by this annotator. */
  | { kind: 'one'; annotator: Candidate }
  /** The text names no single annotator: show no rows; `candidates` are the first matches (maybe none). */
  | { kind: 'unresolved'; text: string; candidates: Candidate[]; more: boolean };

/** The annotator a page's query means (see the module comment). Reads only. */
export async function resolveAnnotatorFilter(db: Executor, query: Record<string, string | undefined>): Promise<AnnotatorChoice> {
  const id = intParam(query.annotatorId);
  if (id !== undefined) {
    const a = await db.selectFrom('annotators').select(['id', 'name', 'email', sql<boolean>`status = 'deleted'`.as('deleted')]).where('id', '=', id).executeTakeFirst();
    return a ? { kind: 'one', annotator: a } : { kind: 'unresolved', text: `#${id}`, candidates: [], more: false };
  }
  const text = query.annotator?.trim().slice(0, 320);
  if (!text) return { kind: 'none' };
  // Lower-cased by PostgreSQL on both sides (JavaScript's lower case differs: "İ"), exact email or
  // name first, live annotators before deleted ones (an email is unique among the live), then the
  // table's search (its trigram index: migrations/0011_console.sql), one statement.
  const { rows } = await sql<Candidate & { exact: boolean }>`
    SELECT id, name, email, status = 'deleted' AS deleted, (lower(email) = lower(${text}) OR lower(name) = lower(${text})) AS exact
      FROM annotators
     WHERE (lower(name) || ' ' || lower(email)) LIKE lower(${likePattern(text)})
     ORDER BY exact DESC, status = 'deleted', name, id
     LIMIT ${CANDIDATES + 1}`.execute(db);
  const exact = rows.filter((r) => r.exact);
  const liveExact = exact.filter((r) => !r.deleted);
  const pick = exact.length === 1 ? exact[0] : liveExact.length === 1 ? liveExact[0] : rows.length === 1 ? rows[0] : undefined;
  if (pick) return { kind: 'one', annotator: { id: pick.id, name: pick.name, email: pick.email, deleted: pick.deleted } };
  return { kind: 'unresolved', text, candidates: rows.slice(0, CANDIDATES).map(({ id, name, email, deleted }) => ({ id, name, email, deleted })), more: rows.length > CANDIDATES };
}

/** The chosen annotator's id for the list query: undefined = no filter, null = show no rows. */
export const annotatorIdOf = (c: AnnotatorChoice): number | undefined | null => (c.kind === 'one' ? c.annotator.id : c.kind === 'none' ? undefined : null);

/**
 * The filter form's field (`<id>` names the input), and under it what the text matched: several
 * annotators as links that filter by each (`link(id)` builds the page's URL), or none.
 */
export function AnnotatorFilterField({ id, choice, link }: { id: string; choice: AnnotatorChoice; link: (annotatorId: number) => string }) {
  const value = choice.kind === 'one' ? choice.annotator.email : choice.kind === 'unresolved' ? choice.text : '';
  return (
    <div class="field">
      <label for={id}>Annotator</label>
      <input id={id} name="annotator" type="search" value={value} placeholder="Name or email" aria-describedby={choice.kind === 'unresolved' ? `${id}-matches` : undefined} />
      {choice.kind === 'unresolved' ? (
        <p class="help" id={`${id}-matches`} role="status">
          {choice.candidates.length === 0 ? (
            <>No annotator matches “{choice.text}”.</>
          ) : (
            <>
              Several annotators match; pick one:{' '}
              {choice.candidates.map((c, i) => (
                <>
                  {i > 0 ? ', ' : ''}
                  <a href={link(c.id)}>
                    {c.name} ({c.email}){c.deleted ? ', deleted' : ''}
                  </a>
                </>
              ))}
              {choice.more ? ', …' : ''}
            </>
          )}
        </p>
      ) : null}
    </div>
  );
}

