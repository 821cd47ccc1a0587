/** Roles: which annotators receive which workflows; create, edit inline, delete when unused. */
import { listRolesWithUsage } from '../../db/catalog.ts';
import { ActionButton, ApiForm, Empty, Field, href, Swatch, TableWrap } from '../components.tsx';
import type { PageContext } from '../index.tsx';

export async function rolesPage(p: PageContext) {
  const roles = await listRolesWithUsage(p.ctx.database.db);
  return p.render({
    title: 'Roles',
    nav: 'roles',
    topics: ['configs', 'annotators', 'workflows'],
    body: (
      <>
        <details class="panel" open={roles.length === 0 ? true : undefined}>
          <summary>New role</summary>
          <ApiForm method="POST" action="/api/roles" label="New role" submit="Create role">
            <Field label="Name" name="name" required />
            <Field label="Description" name="description" kind="nullable" />
            <Field label="Colour" name="color" kind="nullable" type="text" placeholder="#3B82F6" help="A hex colour like #3B82F6, shown beside the role." />
          </ApiForm>
        </details>
        <div id="roles" data-live-region>
          {roles.length ? (
            <TableWrap label="Roles">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Role</th>
                    <th scope="col">Description</th>
                    <th scope="col" class="num">
                      Annotators
                    </th>
                    <th scope="col" class="num">
                      Workflows
                    </th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {roles.map((r) => (
                    <tr>
                      <td>
                        <Swatch color={r.color} /> {r.name}
                      </td>
                      <td class="wrap">{r.description ?? ''}</td>
                      <td class="num">
                        <a href={href('/annotators', { roleId: r.id })}>{r.annotatorCount}</a>
                      </td>
                      <td class="num">{r.workflowCount}</td>
                      <td class="actions">
                        <ActionButton
                          method="DELETE"
                          url={`/api/roles/${r.id}`}
                          label="Delete"
                          variant="small"
                          confirm={`Delete the role ${r.name}?`}
                          disabled={r.annotatorCount > 0 || r.workflowCount > 0}
                          accessibleLabel={`Delete role ${r.name}`}
                        />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
          ) : (
            <Empty>No roles yet. A role says which workflows an annotator works on.</Empty>
          )}
        </div>
      </>
    ),
  });
}
