/**
 * Reads of the fleet's catalogue — roles, labeling configs, gold tasks, settings — for the console
 * and, in phase 2 of issue 12, for their API routes. Functions take `db | trx` first and return
 * rows (mapping is the caller's).
 */
import { sql } from 'kysely';
import type { Executor } from './index.ts';
import type { Page } from './annotators.ts';

/** Every role with how many live annotators and workflows use it, by name. */
export async function listRolesWithUsage(db: Executor) {
  return db
    .selectFrom('roles as r')
    .select([
      'r.id',
      'r.name',
      'r.description',
      'r.color',
      'r.createdAt',
      sql<number>`(SELECT count(*)::int FROM annotators a WHERE a.role_id = r.id AND a.status <> 'deleted')`.as('annotatorCount'),
      sql<number>`(SELECT count(*)::int FROM workflows w WHERE w.role_id = r.id)`.as('workflowCount'),
    ])
    .orderBy(sql`lower(r.name)`)
    .orderBy('r.id')
    .execute();
}

/** Id, name and colour of every role, by name (for pickers). */
export async function roleOptions(db: Executor) {
  return db.selectFrom('roles').select(['id', 'name', 'color']).orderBy(sql`lower(name)`).orderBy('id').execute();
}

/** Labeling configs with their usage counts (isLocked = some gold task references it). */
const configsWithCounts = (db: Executor) =>
  db
    .selectFrom('labelingConfigs as lc')
    .selectAll('lc')
    .select([
      sql<number>`(SELECT count(*)::int FROM workflows w WHERE w.labeling_config_id = lc.id)`.as('workflowCount'),
      sql<number>`(SELECT count(*)::int FROM gold_tasks g WHERE g.labeling_config_id = lc.id)`.as('goldTaskCount'),
    ]);

export async function listLabelingConfigs(db: Executor) {
  return configsWithCounts(db).orderBy('lc.id').execute();
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

/**
 * One page of gold tasks (optionally of one config), by id, with the config's name. Expected labels
 * come back as text: Kysely's CamelCasePlugin would rename the keys inside the JSON otherwise.
 */
export async function listGoldTasks(db: Executor, filter: { labelingConfigId?: number }, page: Page) {
  let base = db.selectFrom('goldTasks as g');
  if (filter.labelingConfigId !== undefined) base = base.where('g.labelingConfigId', '=', filter.labelingConfigId);
  const [rows, total] = await Promise.all([
    base
      .innerJoin('labelingConfigs as lc', 'lc.id', 'g.labelingConfigId')
      .select(['g.id', 'g.name', 'g.s3ImageKey', 'g.labelingConfigId', 'lc.name as labelingConfigName', 'g.category', 'g.difficulty', 'g.createdAt'])
      .select(sql<string>`g.expected_labels::text`.as('expectedLabelsText'))
      .orderBy('g.id')
      .limit(page.limit)
      .offset(page.offset)
      .execute(),
    base.select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: total.n };
}

export async function findGoldTaskRow(db: Executor, id: number) {
  return db
    .selectFrom('goldTasks')
    .select(['id', 'name', 's3ImageKey', 'labelingConfigId', 'category', 'difficulty', 'createdAt'])
    .select(sql<string>`expected_labels::text`.as('expectedLabelsText'))
    .where('id', '=', id)
    .executeTakeFirst();
}

/** Every stored setting with its value as JSON text (the keys inside stay as stored). */
export async function listStoredSettings(db: Executor) {
  return db
    .selectFrom('settings')
    .select(['key', 'description', 'updatedAt'])
    .select(sql<string>`value::text`.as('valueText'))
    .orderBy(sql`key COLLATE "C"`)
    .execute();
}
