/**
 * Whose a resource is (issue 10, ownership). Every resource the fleet creates for an annotator —
 * container, Docker volume, route file, Label Studio role and database — is marked with the
 * installation id (table `installation`, migrations/0016_installation.sql: random, made with the
 * fleet database and restored with it) beside the annotator id. Names alone (`fleet-ls-1`,
 * `ls_annotator_1`) collide between installations: a recreated fleet database numbers annotators
 * from 1 again, and two fleets on one Docker host share the default namespace.
 *
 * The rule, in one place: a resource is ours when its mark names our installation, or when it
 * carries no mark and this installation adopts unmarked resources (it had started annotators
 * before marks existed). Anything else is foreign: never adopted, removed or rewritten; a start
 * that meets one fails with ForeignResourceError (status error, the reason says what to do).
 *
 * Marks: Docker label `labelfleet.installation=<id>`; route files start with the comment line
 * `# labelfleet installation=<id> annotator=<n>`; PostgreSQL roles and databases carry the same
 * text as their COMMENT.
 */
import type { Executor } from '../src/db/index.ts';

export interface Owner {
  /** 32 lowercase hex digits. */
  installationId: string;
  /** Treat resources without a mark as this installation's (it made them before marks existed). */
  adoptsUnmarked: boolean;
}

/** The Docker label carrying the installation id (the annotator id is labelfleet.annotator-id). */
export const INSTALLATION_LABEL = 'labelfleet.installation';

/** A start (or restart) met a resource of another installation; no retry can fix it. */
export class ForeignResourceError extends Error {}

/** The mark text of route files and PostgreSQL comments. */
export const markText = (owner: Owner, annotatorId: number) => `labelfleet installation=${owner.installationId} annotator=${annotatorId}`;

/** The installation id in a mark text; undefined when the text is no mark (or absent). */
export function markedInstallation(text: string | null | undefined): string | undefined {
  return text ? /^(?:#\s*)?labelfleet installation=([0-9a-f]{32})\b/.exec(text)?.[1] : undefined;
}

/** Is a resource with this mark (its installation id, undefined when unmarked) ours? No owner set: no checks (tools, tests). */
export function isOurs(owner: Owner | undefined, installationId: string | undefined): boolean {
  if (!owner) return true;
  return installationId === owner.installationId || (installationId === undefined && owner.adoptsUnmarked);
}

/** What a foreign resource's refusal says: whose it is and what to do. */
export function foreignMessage(what: string, installationId: string | undefined, remedy: string): string {
  const whose = installationId ? `another LabelFleet installation (${installationId})` : 'no LabelFleet installation (it carries no installation mark)';
  return `${what} already exists and belongs to ${whose}; this fleet does not take it over. ${remedy}`;
}

/** This installation's id, read from the fleet database. */
export async function readInstallation(db: Executor): Promise<Owner> {
  const row = await db.selectFrom('installation').select(['id', 'adoptsUnmarked']).executeTakeFirstOrThrow();
  return { installationId: row.id, adoptsUnmarked: row.adoptsUnmarked };
}
