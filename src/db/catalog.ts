/**
 * Reads of the fleet's catalogue — roles, labeling configs, gold tasks, settings — shared by the
 * API routes and the console, so each query is written once. Functions take `db | trx` first and
 * return rows (mapping to JSON or HTML is the caller's); lists return `{ rows, total }`.
 */
import { sql, type Expression } from 'kysely';
import type { Executor } from './index.ts';
import { listPage, type Page } from './list-page.ts';

// ---------------------------------------------------------------------------------------------
// Roles

/** Live (not deleted) annotators holding the role `role` (an id expression). */
const annotatorsOfRole = (role: Expression<number>) =>
  sql<number>`(SELECT count(*)::int FROM annotators a WHERE a.role_id = ${role} AND a.status <> 'deleted')`;
/** Workflows that go to the role `role`. */
const workflowsOfRole = (role: Expression<number>) => sql<number>`(SELECT count(*)::int FROM workflows w WHERE w.role_id = ${role})`;

/** One page of roles by id (GET /api/roles) and how many there are. */
export async function listRoles(db: Executor, page: Page) {
  return listPage(db, db.selectFrom('roles'), (q) => q.selectAll().orderBy('id'), page);
}

/** One role's row, or undefined. */
export async function findRoleRow(db: Executor, id: number) {
  return db.selectFrom('roles').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * What keeps a role from being deleted: live annotators holding it and workflows going to it
 * (the 409 details of DELETE /api/roles/:id, whose key names these are).
 */
export async function roleUsage(db: Executor, id: number): Promise<{ annotators: number; workflows: number }> {
  const role = sql<number>`${id}::int`;
  return db.selectNoFrom([annotatorsOfRole(role).as('annotators'), workflowsOfRole(role).as('workflows')]).executeTakeFirstOrThrow();
}

/** Every role (or one, with `id`) with how many live annotators and workflows use it, by name. */
export async function listRolesWithUsage(db: Executor, id?: number) {
  const role = sql.ref<number>('r.id');
  return db
    .selectFrom('roles as r')
    .select([
      'r.id',
      'r.name',
      'r.description',
      'r.color',
      'r.createdAt',
      annotatorsOfRole(role).as('annotatorCount'),
      workflowsOfRole(role).as('workflowCount'),
    ])
    .$if(id !== undefined, (q) => q.where('r.id', '=', id!))
    .orderBy(sql`lower(r.name)`)
    .orderBy('r.id')
    .execute();
}

/** Id, name and colour of every role, by name (for pickers). */
export async function roleOptions(db: Executor) {
  return db.selectFrom('roles').select(['id', 'name', 'color']).orderBy(sql`lower(name)`).orderBy('id').execute();
}

// ---------------------------------------------------------------------------------------------
// Labeling configs

/** Labeling configs with their usage counts (a config is locked while a gold task references it). */
const configsWithCounts = (db: Executor) =>
  db
    .selectFrom('labelingConfigs as lc')
    .selectAll('lc')
    .select([
      sql<number>`(SELECT count(*)::int FROM workflows w WHERE w.labeling_config_id = lc.id)`.as('workflowCount'),
      sql<number>`(SELECT count(*)::int FROM gold_tasks g WHERE g.labeling_config_id = lc.id)`.as('goldTaskCount'),
    ]);
export type LabelingConfigWithUsage = Awaited<ReturnType<typeof findLabelingConfigWithUsage>> & {};

/** One page of labeling configs with usage, by id, and how many there are. */
export async function listLabelingConfigs(db: Executor, page: Page) {
  const [rows, total] = await Promise.all([
    configsWithCounts(db).orderBy('lc.id').limit(page.limit).offset(page.offset).execute(),
    db.selectFrom('labelingConfigs').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: total.n };
}

export async function findLabelingConfigWithUsage(db: Executor, id: number) {
  return configsWithCounts(db).where('lc.id', '=', id).executeTakeFirst();
}

/** Id and name of every labeling config (for pickers). */
export async function labelingConfigOptions(db: Executor) {
  return db.selectFrom('labelingConfigs').select(['id', 'name']).orderBy('id').execute();
}

/** Workflows that use a labeling config, by id. */
export async function workflowsUsingConfig(db: Executor, labelingConfigId: number) {
  return db.selectFrom('workflows').select(['id', 'name', 'isActive']).where('labelingConfigId', '=', labelingConfigId).orderBy('id').execute();
}

// ---------------------------------------------------------------------------------------------
// Gold tasks

/**
 * A gold task's columns. Expected labels come back as text: Kysely's CamelCasePlugin would rename
 * the keys inside the JSON otherwise (from_name → fromName).
 */
export const GOLD_TASK_COLUMNS = ['id', 'name', 's3ImageKey', 'labelingConfigId', 'category', 'difficulty', 'createdAt'] as const;
export const EXPECTED_LABELS_TEXT = sql<string>`expected_labels::text`.as('expectedLabelsText');

export interface GoldTaskFilter {
  labelingConfigId?: number;
  /** Exact match. */
  category?: string;
}

/** One page of gold tasks by id, with their config's name, and how many match the filter. */
export async function listGoldTasks(db: Executor, filter: GoldTaskFilter, page: Page) {
  let base = db.selectFrom('goldTasks as g');
  if (filter.labelingConfigId !== undefined) base = base.where('g.labelingConfigId', '=', filter.labelingConfigId);
  if (filter.category !== undefined) base = base.where('g.category', '=', filter.category);
  const [rows, total] = await Promise.all([
    base
      .innerJoin('labelingConfigs as lc', 'lc.id', 'g.labelingConfigId')
      .select(GOLD_TASK_COLUMNS.map((c) => `g.${c}` as const))
      .select(['lc.name as labelingConfigName', EXPECTED_LABELS_TEXT])
      .orderBy('g.id')
      .limit(page.limit)
      .offset(page.offset)
      .execute(),
    base.select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: total.n };
}

/** One gold task's row (GOLD_TASK_COLUMNS and the labels as text), or undefined. */
export async function findGoldTaskRow(db: Executor, id: number) {
  return db.selectFrom('goldTasks').select([...GOLD_TASK_COLUMNS, EXPECTED_LABELS_TEXT]).where('id', '=', id).executeTakeFirst();
}

// ---------------------------------------------------------------------------------------------
// Settings

/**
 * A stored setting's columns. The value comes back as JSON text: Kysely's CamelCasePlugin would
 * otherwise rename the keys of objects inside it (max_items → maxItems).
 */
export const SETTING_COLUMNS = ['id', 'key', 'description', 'updatedAt'] as const;
export const VALUE_TEXT = sql<string>`value::text`.as('valueText');

/** Stored settings ordered by key, bytewise: one page (and how many there are), or all of them. */
export async function listStoredSettings(db: Executor, page?: Page) {
  const rows = db.selectFrom('settings').select([...SETTING_COLUMNS, VALUE_TEXT]).orderBy(sql`key COLLATE "C"`);
  if (!page) {
    const all = await rows.execute();
    return { rows: all, total: all.length };
  }
  const [found, total] = await Promise.all([
    rows.limit(page.limit).offset(page.offset).execute(),
    db.selectFrom('settings').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows: found, total: total.n };
}

/** One stored setting, or undefined. */
export async function findStoredSetting(db: Executor, key: string) {
  return db.selectFrom('settings').select([...SETTING_COLUMNS, VALUE_TEXT]).where('key', '=', key).executeTakeFirst();
}
