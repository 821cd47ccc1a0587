/**
 * Bulk creation input for the console (pure; the browser runs it before POST /api/annotators/bulk).
 * One annotator per line, in any of these forms:
 *
 *   Ada Lovelace <ada@example.com>
 *   Ada Lovelace, ada@example.com[, role]
 *   ada@example.com                      (the name is the part before the @)
 *
 * or CSV (RFC 4180 quoting, parsed by papaparse) whose first row may be a header naming the
 * columns `name`, `email` and `role` in any order. A role is a role's name (case-insensitive) or
 * id; a line without one gets `defaultRoleId`. Blank lines are skipped. Every problem is reported
 * with its line number; nothing is returned as valid while any line is wrong, so the API's
 * all-or-nothing bulk create gets a clean batch.
 */
import Papa from 'papaparse';

export interface ImportedAnnotator {
  name: string;
  email: string;
  roleId: number | null;
  /** The line it came from (1-based), to place the API's errors; not sent to the API. */
  line: number;
}

export interface ImportProblem {
  line: number;
  message: string;
}

export interface ImportResult {
  annotators: ImportedAnnotator[];
  problems: ImportProblem[];
}

/** The API's own limit for one bulk create (src/api/annotators.ts BULK_MAX). */
export const IMPORT_MAX = 100;

const ANGLE = /^(.*?)\s*<\s*([^<>\s]+)\s*>\s*$/;
// The shape of an address, as far as a quick look can tell; the API checks it properly.
const EMAIL = /^[^\s@,;<>]+@[^\s@,;<>]+\.[^\s@,;<>]+$/;

interface Cells {
  name: string;
  email: string;
  role: string;
}

export function parseAnnotatorLines(
  text: string,
  roles: readonly { id: number; name: string }[],
  defaultRoleId: number | null = null,
): ImportResult {
  const problems: ImportProblem[] = [];
  const annotators: ImportedAnnotator[] = [];
  const byName = new Map(roles.map((r) => [r.name.trim().toLowerCase(), r.id]));
  const ids = new Set(roles.map((r) => r.id));

  const lines = text.split(/\r\n|\r|\n/);
  let columns: (keyof Cells)[] = ['name', 'email', 'role'];
  let first = true;
  const seen = new Map<string, number>();
  lines.forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (!trimmed) return;
    let cells: Cells;
    const angle = ANGLE.exec(trimmed);
    if (angle) {
      cells = { name: angle[1]!.replace(/^"|"$/g, '').trim(), email: angle[2]!, role: '' };
    } else {
      const parsed = Papa.parse<string[]>(trimmed, { delimiter: trimmed.includes('\t') ? '\t' : ',' });
      const row = (parsed.data[0] ?? []).map((c) => c.trim());
      if (first && row.some((c) => /^e-?mail$/i.test(c))) {
        // A header row: the columns it names, in its order.
        columns = row.map((c) => (/^e-?mail$/i.test(c) ? 'email' : /^role/i.test(c) ? 'role' : 'name'));
        first = false;
        return;
      }
      cells = { name: '', email: '', role: '' };
      if (row.length === 1) cells.email = row[0]!;
      else row.forEach((value, i) => (cells[columns[i] ?? 'name'] ||= value));
    }
    first = false;
    if (!cells.name && EMAIL.test(cells.email)) cells.name = cells.email.split('@')[0]!;
    if (!EMAIL.test(cells.email)) {
      problems.push({ line, message: cells.email ? `"${cells.email}" is not an email address` : 'no email address' });
      return;
    }
    const key = cells.email.toLowerCase();
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      problems.push({ line, message: `${cells.email} is already on line ${earlier}` });
      return;
    }
    seen.set(key, line);
    let roleId = defaultRoleId;
    if (cells.role) {
      const asId = /^\d+$/.test(cells.role) ? Number(cells.role) : NaN;
      const found = byName.get(cells.role.toLowerCase()) ?? (ids.has(asId) ? asId : undefined);
      if (found === undefined) {
        problems.push({ line, message: `no role is called "${cells.role}"` });
        return;
      }
      roleId = found;
    }
    annotators.push({ name: cells.name.slice(0, 255), email: cells.email, roleId, line });
  });
  if (annotators.length + problems.length === 0) problems.push({ line: 0, message: 'Paste at least one annotator' });
  if (annotators.length > IMPORT_MAX) problems.push({ line: 0, message: `At most ${IMPORT_MAX} annotators at once (${annotators.length} given)` });
  return problems.length ? { annotators: [], problems } : { annotators, problems };
}
