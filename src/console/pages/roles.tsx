/**
 * Roles: which annotators receive which workflows. The list (with usage), creation, and one role's
 * page with its edit form, its annotators and workflows, and delete while unused.
 */
import { listRolesWithUsage } from '../../db/catalog.ts';
import { notFound } from '../../errors.ts';
import { ActionButton, ApiForm, DataTable, Field, href, Swatch, type TableColumn } from '../components.tsx';
import { pathId, type PageContext } from '../index.tsx';

type RoleRow = Awaited<ReturnType<typeof listRolesWithUsage>>[number];

const inUse = (r: RoleRow) => r.annotatorCount > 0 || r.workflowCount > 0;

function DeleteRole({ r, small }: { r: RoleRow; small?: boolean }) {
  return (
    <ActionButton
      method="DELETE"
      url={`/api/roles/${r.id}`}
      label="Delete"
      variant={small ? 'small' : 'danger'}
      then={small ? undefined : '/roles'}
      confirm={`Delete the role ${r.name}?`}
      disabled={inUse(r)}
      of={`role ${r.name}`}
    />
  );
}

const ROLE_COLUMNS: TableColumn<RoleRow>[] = [
  {
    key: 'name',
    label: 'Role',
    cell: (r) => (
      <>
        <Swatch color={r.color} /> <a href={`/roles/${r.id}`}>{r.name}</a>
      </>
    ),
  },
  { key: 'description', label: 'Description', class: 'wrap', cell: (r) => r.description ?? '' },
  { key: 'annotators', label: 'Annotators', class: 'num', cell: (r) => <a href={href('/annotators', { roleId: r.id })}>{r.annotatorCount}</a> },
  { key: 'workflows', label: 'Workflows', class: 'num', cell: (r) => r.workflowCount },
  {
    key: 'actions',
    label: 'Actions',
    class: 'actions',
    cell: (r) => (
      <>
        <a class="button small" href={`/roles/${r.id}`} aria-label={`Edit role ${r.name}`}>
          Edit
        </a>
        <DeleteRole r={r} small />
      </>
    ),
  },
];

/** The fields of a role, for the new-role and the edit form. */
function RoleFields({ role }: { role?: RoleRow }) {
  return (
    <>
      <Field label="Name" name="name" value={role?.name} required />
      <Field label="Description" name="description" kind="nullable" value={role?.description} />
      <Field label="Colour" name="color" kind="nullable" type="text" value={role?.color} placeholder="#3B82F6" help="A hex colour like #3B82F6, shown beside the role." />
    </>
  );
}

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
            <RoleFields />
          </ApiForm>
        </details>
        <div id="roles" data-live-region>
          <DataTable label="Roles" columns={ROLE_COLUMNS} rows={roles} empty="No roles yet. A role says which workflows an annotator works on." />
        </div>
      </>
    ),
  });
}

export async function rolePage(p: PageContext) {
  const { db } = p.ctx.database;
  const id = pathId(p.c, 'Role');
  const [role] = await listRolesWithUsage(db, id);
  if (!role) throw notFound('Role');
  return p.render({
    title: role.name,
    nav: 'roles',
    topics: ['configs', 'annotators', 'workflows'],
    actions: <DeleteRole r={role} />,
    body: (
      <>
        <div id="role-usage" data-live-region>
          <p>
            <a href={href('/annotators', { roleId: id })}>{role.annotatorCount === 1 ? '1 annotator' : `${role.annotatorCount} annotators`}</a> and{' '}
            {role.workflowCount === 1 ? '1 workflow' : `${role.workflowCount} workflows`} use
            this role.
            {inUse(role) ? ' It can be deleted once none do.' : ''}
          </p>
        </div>
        <ApiForm method="PUT" action={`/api/roles/${id}`} label={`Edit ${role.name}`} submit="Save">
          <RoleFields role={role} />
        </ApiForm>
      </>
    ),
  });
}
