/** Gold tasks: known-good answers mixed into batches; list by labeling config, create and edit. */
import { findGoldTaskRow, labelingConfigOptions, listGoldTasks } from '../../db/catalog.ts';
import { notFound } from '../../errors.ts';
import { ActionButton, ApiForm, DataTable, Empty, Field, href, SelectField, Time, type TableColumn } from '../components.tsx';
import { pathId, type PageContext } from '../index.tsx';
import { intParam, pageParams } from './params.ts';

const DIFFICULTIES = [
  { value: 'easy', label: 'easy' },
  { value: 'medium', label: 'medium' },
  { value: 'hard', label: 'hard' },
];

const EXAMPLE_LABELS = '[\n  {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["cat"]}}\n]';

const pretty = (text: string) => JSON.stringify(JSON.parse(text), null, 2);

type GoldRow = Awaited<ReturnType<typeof listGoldTasks>>['rows'][number];

const GOLD_COLUMNS: TableColumn<GoldRow>[] = [
  { key: 'name', label: 'Name', cell: (g) => <a href={`/gold-tasks/${g.id}`}>{g.name ?? `Gold task #${g.id}`}</a> },
  { key: 'image', label: 'Image', class: 'wrap', cell: (g) => <code>{g.s3ImageKey}</code> },
  { key: 'config', label: 'Labeling config', cell: (g) => <a href={`/labeling-configs/${g.labelingConfigId}`}>{g.labelingConfigName}</a> },
  { key: 'category', label: 'Category', cell: (g) => g.category ?? '–' },
  { key: 'difficulty', label: 'Difficulty', cell: (g) => g.difficulty ?? '–' },
  { key: 'created', label: 'Created', cell: (g) => <Time at={g.createdAt} /> },
];

export async function goldTasksPage(p: PageContext) {
  const { db } = p.ctx.database;
  const labelingConfigId = intParam(p.query.labelingConfigId);
  const page = pageParams(p.query, 50);
  const [{ rows, total }, configs] = await Promise.all([listGoldTasks(db, { labelingConfigId }, page), labelingConfigOptions(db)]);
  return p.render({
    title: 'Gold tasks',
    nav: 'gold-tasks',
    topics: ['configs'],
    actions: (
      <a class="button primary" href={href('/gold-tasks/new', { labelingConfigId })}>
        New gold task
      </a>
    ),
    body: (
      <>
        <form class="filters" method="get" action="/gold-tasks" aria-label="Filter gold tasks">
          <div class="field">
            <label for="gt-config">Labeling config</label>
            <select id="gt-config" name="labelingConfigId">
              <option value="">Any</option>
              {configs.map((c) => (
                <option value={String(c.id)} selected={c.id === labelingConfigId}>
                  {c.name}
                </option>
              ))}
            </select>
          </div>
          <div class="form-actions">
            <button type="submit" class="button">
              Filter
            </button>
          </div>
        </form>
        <div id="gold-list" data-live-region>
          <DataTable
            label="Gold tasks"
            columns={GOLD_COLUMNS}
            rows={rows}
            empty={`No gold tasks${labelingConfigId ? ' for this config' : ''}.`}
            pager={{ ...page, total, link: (offset) => href('/gold-tasks', { labelingConfigId, offset: offset || undefined }) }}
          />
        </div>
      </>
    ),
  });
}

export async function goldTaskPage(p: PageContext) {
  const { db } = p.ctx.database;
  const configs = (await labelingConfigOptions(db)).map((c) => ({ value: c.id, label: c.name }));
  const isNew = p.c.req.param('id') === 'new';
  const g = isNew ? undefined : await findGoldTaskRow(db, pathId(p.c, 'Gold task'));
  if (!isNew && !g) throw notFound('Gold task');
  const title = isNew ? 'New gold task' : (g!.name ?? `Gold task #${g!.id}`);
  return p.render({
    title,
    nav: 'gold-tasks',
    actions: g ? <ActionButton method="DELETE" url={`/api/gold-tasks/${g.id}`} label="Delete" variant="danger" then="/gold-tasks" confirm={`Delete ${title}? Batches that used it keep their results.`} /> : undefined,
    body: configs.length ? (
      <ApiForm method={isNew ? 'POST' : 'PUT'} action={isNew ? '/api/gold-tasks' : `/api/gold-tasks/${g!.id}`} then={isNew ? '/gold-tasks/{id}' : undefined} label={title} submit={isNew ? 'Create gold task' : 'Save'} class="wide">
        <Field label="Name" name="name" kind="nullable" value={g?.name} />
        <Field label="Image key in S3" name="s3ImageKey" value={g?.s3ImageKey} required placeholder="gold/cat_001.jpg" />
        <SelectField label="Labeling config" name="labelingConfigId" kind="int" value={g?.labelingConfigId ?? intParam(p.query.labelingConfigId)} options={configs} required />
        <Field label="Category" name="category" kind="nullable" value={g?.category} />
        <SelectField label="Difficulty" name="difficulty" kind="nullable" value={g?.difficulty} options={DIFFICULTIES} empty="–" />
        <Field
          label="Expected labels (Label Studio result JSON)"
          name="expectedLabels"
          kind="json"
          value={g ? pretty(g.expectedLabelsText) : EXAMPLE_LABELS}
          required
          textarea={{ rows: 10, mono: true }}
          help="An array of results as Label Studio exports them: from_name, to_name, type, value. They must fit the labeling config."
        />
      </ApiForm>
    ) : (
      <Empty>
        Create a <a href="/labeling-configs/new">labeling config</a> first: gold tasks are answers in a config's terms.
      </Empty>
    ),
  });
}
