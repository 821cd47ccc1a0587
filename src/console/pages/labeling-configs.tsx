/**
 * Labeling configs: Label Studio XML with the validator's errors at their line and column, the
 * lock (gold tasks reference the config: its XML cannot change), and where it is used.
 */
import { findLabelingConfigWithUsage, listLabelingConfigs, workflowsUsingConfig } from '../../db/catalog.ts';
import { ActionButton, ApiForm, DataTable, Field, href, StatusBadge, Time, type TableColumn } from '../components.tsx';
import { notFound } from '../../errors.ts';
import { pathId, type PageContext } from '../index.tsx';
import { pageParams } from './params.ts';

const EXAMPLE_XML = `<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single" required="true">
    <Choice value="cat"/>
    <Choice value="dog"/>
  </Choices>
</View>`;

type ConfigRow = Awaited<ReturnType<typeof listLabelingConfigs>>['rows'][number];

const CONFIG_COLUMNS: TableColumn<ConfigRow>[] = [
  { key: 'name', label: 'Name', cell: (c) => <a href={`/labeling-configs/${c.id}`}>{c.name}</a> },
  { key: 'description', label: 'Description', class: 'wrap', cell: (c) => c.description ?? '' },
  { key: 'workflows', label: 'Workflows', class: 'num', cell: (c) => c.workflowCount },
  { key: 'goldTasks', label: 'Gold tasks', class: 'num', cell: (c) => <a href={href('/gold-tasks', { labelingConfigId: c.id })}>{c.goldTaskCount}</a> },
  { key: 'xml', label: 'XML', cell: (c) => (c.goldTaskCount > 0 ? <StatusBadge status="locked" /> : <span class="muted">editable</span>) },
  { key: 'created', label: 'Created', cell: (c) => <Time at={c.createdAt} /> },
];

export async function labelingConfigsPage(p: PageContext) {
  const page = pageParams(p.query, 50);
  const { rows, total } = await listLabelingConfigs(p.ctx.database.db, page);
  return p.render({
    title: 'Labeling configs',
    nav: 'labeling-configs',
    topics: ['configs', 'workflows'],
    actions: (
      <a class="button primary" href="/labeling-configs/new">
        New labeling config
      </a>
    ),
    body: (
      <div id="configs" data-live-region>
        <DataTable
          label="Labeling configs"
          columns={CONFIG_COLUMNS}
          rows={rows}
          empty="No labeling configs yet."
          pager={{ ...page, total, link: (offset) => href('/labeling-configs', { offset: offset || undefined }) }}
        />
      </div>
    ),
  });
}

export async function labelingConfigPage(p: PageContext) {
  if (p.c.req.param('id') === 'new') {
    return p.render({
      title: 'New labeling config',
      nav: 'labeling-configs',
      body: (
        <ApiForm method="POST" action="/api/labeling-configs" then="/labeling-configs/{id}" label="New labeling config" submit="Create labeling config" class="wide">
          <Field label="Name" name="name" required />
          <Field label="Description" name="description" kind="nullable" />
          <Field
            label="Label Studio XML"
            name="configXml"
            value={EXAMPLE_XML}
            required
            textarea={{ rows: 14, mono: true }}
            help="A <View> with at least one object tag (Image, Text, Audio, …) and controls whose toName names a tag."
          />
        </ApiForm>
      ),
    });
  }
  const { db } = p.ctx.database;
  const id = pathId(p.c, 'Labeling config');
  const config = await findLabelingConfigWithUsage(db, id);
  if (!config) throw notFound('Labeling config');
  const workflows = await workflowsUsingConfig(db, id);
  const locked = config.goldTaskCount > 0;
  return p.render({
    title: config.name,
    nav: 'labeling-configs',
    topics: ['configs', 'workflows'],
    actions: (
      <ActionButton
        method="DELETE"
        url={`/api/labeling-configs/${id}`}
        label="Delete"
        variant="danger"
        then="/labeling-configs"
        confirm={`Delete ${config.name}?`}
        disabled={config.workflowCount > 0 || locked}
      />
    ),
    body: (
      <>
        <div id="config-usage" data-live-region>
          <p>
            {locked ? (
              <>
                <StatusBadge status="locked" /> {config.goldTaskCount} gold task(s) reference this config, so its XML cannot change (
                <a href={href('/gold-tasks', { labelingConfigId: id })}>see them</a>).
              </>
            ) : (
              <>The XML can be edited: no gold task references it.</>
            )}
          </p>
          <p>
            Used by{' '}
            {workflows.length
              ? workflows.map((w, i) => (
                  <>
                    {i ? ', ' : ''}
                    <a href={`/workflows/${w.id}`}>{w.name}</a>
                  </>
                ))
              : 'no workflow'}
            .
          </p>
        </div>
        <ApiForm method="PUT" action={`/api/labeling-configs/${id}`} label={`Edit ${config.name}`} submit="Save" class="wide">
          <Field label="Name" name="name" value={config.name} required />
          <Field label="Description" name="description" kind="nullable" value={config.description} />
          <Field label="Label Studio XML" name="configXml" value={config.configXml} required readonly={locked} textarea={{ rows: 16, mono: true }} help={locked ? 'Locked while gold tasks reference this config.' : undefined} />
        </ApiForm>
      </>
    ),
  });
}
