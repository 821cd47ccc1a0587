/** Gold tasks: known-good answers mixed into batches; list by labeling config, create and edit. */
import { findGoldTaskRow, labelingConfigOptions, listGoldTasks } from '../../db/catalog.ts';
import { notFound } from '../../errors.ts';
import { ActionButton, ApiForm, Empty, Field, href, Pager, SelectField, TableWrap, Time } from '../components.tsx';
import { pathId, type PageContext } from '../index.tsx';
import { intParam, pageParams } from './params.ts';

const DIFFICULTIES = [
  { value: 'easy', label: 'easy' },
  { value: 'medium', label: 'medium' },
  { value: 'hard', label: 'hard' },
];

const EXAMPLE_LABELS = '[\n  {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["cat"]}}\n]';

const pretty = (text: string) => JSON.stringify(JSON.parse(text), null, 2);

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
          {rows.length ? (
            <TableWrap label="Gold tasks">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Image</th>
                    <th scope="col">Labeling config</th>
                    <th scope="col">Category</th>
                    <th scope="col">Difficulty</th>
                    <th scope="col">Created</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((g) => (
                    <tr>
                      <td>
                        <a href={`/gold-tasks/${g.id}`}>{g.name ?? `Gold task #${g.id}`}</a>
                      </td>
                      <td class="wrap">
                        <code>{g.s3ImageKey}</code>
                      </td>
                      <td>
                        <a href={`/labeling-configs/${g.labelingConfigId}`}>{g.labelingConfigName}</a>
                      </td>
                      <td>{g.category ?? '–'}</td>
                      <td>{g.difficulty ?? '–'}</td>
                      <td>
                        <Time at={g.createdAt} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
          ) : (
            <Empty>No gold tasks{labelingConfigId ? ' for this config' : ''}.</Empty>
          )}
          <Pager total={total} limit={page.limit} offset={page.offset} link={(offset) => href('/gold-tasks', { labelingConfigId, offset: offset || undefined })} />
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
