/**
 * Labeling configs: Label Studio XML with the validator's errors at their line and column, the
 * lock (gold tasks reference the config: its XML cannot change), and where it is used.
 */
import { findLabelingConfigWithUsage, listLabelingConfigs, workflowsUsingConfig } from '../../db/catalog.ts';
import { ActionButton, ApiForm, Empty, Field, href, StatusBadge, TableWrap, Time } from '../components.tsx';
import { notFound } from '../../errors.ts';
import { pathId, type PageContext } from '../index.tsx';

const EXAMPLE_XML = `<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single" required="true">
    <Choice value="cat"/>
    <Choice value="dog"/>
  </Choices>
</View>`;

export async function labelingConfigsPage(p: PageContext) {
  const configs = await listLabelingConfigs(p.ctx.database.db);
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
        {configs.length ? (
          <TableWrap label="Labeling configs">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Description</th>
                  <th scope="col" class="num">
                    Workflows
                  </th>
                  <th scope="col" class="num">
                    Gold tasks
                  </th>
                  <th scope="col">XML</th>
                  <th scope="col">Created</th>
                </tr>
              </thead>
              <tbody>
                {configs.map((c) => (
                  <tr>
                    <td>
                      <a href={`/labeling-configs/${c.id}`}>{c.name}</a>
                    </td>
                    <td class="wrap">{c.description ?? ''}</td>
                    <td class="num">{c.workflowCount}</td>
                    <td class="num">
                      <a href={href('/gold-tasks', { labelingConfigId: c.id })}>{c.goldTaskCount}</a>
                    </td>
                    <td>{c.goldTaskCount > 0 ? <StatusBadge status="locked" /> : <span class="muted">editable</span>}</td>
                    <td>
                      <Time at={c.createdAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        ) : (
          <Empty>No labeling configs yet.</Empty>
        )}
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
