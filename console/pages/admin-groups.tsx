import './admin-groups.css';
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, ok, page, type Schemas } from '../api';
import { ActionButton, Checkbox, ErrorNote, Field, Form, Page, Placeholder, Select, TextArea, Time, useLoad, usePager, TableRegion, TableHead } from '../ui';

type Group = Schemas['UserGroupDetailed'];
type Permission = Schemas['GroupPermission'];
type Effective = Schemas['EffectivePermission'];
type ViaType = Effective['via']['type'];

const PERMISSIONS: Array<[Permission, string]> = [
  ['usergroup.read', 'usergroup.read: see the group and its members'],
  ['usergroup.write', 'usergroup.write: also add and remove members'],
  ['usergroup.admin', 'usergroup.admin: also rename, grant, revoke and delete'],
  ['usergroup.none', 'usergroup.none: nothing (a placeholder grant)'],
];

/** "The highest grant wins": none 0, read 1, write 2, admin 3. */
const rank = (p: Permission) => ['usergroup.none', 'usergroup.read', 'usergroup.write', 'usergroup.admin'].indexOf(p);

const groupPath = (id: string) => `/admin/groups/${encodeURIComponent(id)}`;
const userPath = (id: string) => `/admin/users/${encodeURIComponent(id)}`;

function ActiveTag({ active }: { active: boolean }) {
  return <span class={`tag${active ? ' tag-on' : ''}`}>{active ? 'Active' : 'Inactive'}</span>;
}

/** `/admin/groups`: every group, a page at a time, and the form that creates one. */
export function AdminGroups(_props: { id?: string }) {
  const pager = usePager([]);
  const { data, error, loading } = useLoad(() => page(api.GET('/user_group', { params: { query: { limit: 50, cursor: pager.cursor } } })), [pager.cursor]);

  return (
    <Page title="Groups" wide>
      <p class="muted">User groups: their owners, members and the permissions they hold on each other. Only system administrators create groups.</p>
      <ErrorNote error={error} />
      {data === undefined ? (
        <Placeholder rows={6} />
      ) : data.items.length === 0 && pager.pageNumber === 1 ? (
        <p class="notice">There are no groups yet. Create the first one below.</p>
      ) : (
        <TableRegion label="Groups">
          <table class="g-table">
            <caption class="visually-hidden">Groups, by name</caption>
            <TableHead columns={['Name', 'Description', 'Owner', 'Status', 'Created']} />
            <tbody>
              {data.items.map((g) => (
                <tr key={g.id}>
                  <td>
                    <a href={groupPath(g.id)}>{g.name}</a>
                  </td>
                  <td>{g.description || <span class="muted">—</span>}</td>
                  <td>
                    <a href={userPath(g.owner.id)}>{g.owner.name}</a>
                  </td>
                  <td>
                    <ActiveTag active={g.active} />
                  </td>
                  <td>
                    <Time value={g.created} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableRegion>
      )}
      {data !== undefined && pager.controls(data.next, loading)}
      <h2 id="create-group">Create a group</h2>
      <CreateGroup />
    </Page>
  );
}

function CreateGroup() {
  const { route } = useLocation();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [owner, setOwner] = useState('');
  const [active, setActive] = useState(true);
  return (
    <Form
      label="Create a group"
      submit="Create group"
      busy="Creating…"
      fieldFor={{ conflict: 'name', not_found: 'owner', user_deactivated: 'owner' }}
      onSubmit={async () => {
        const made = await ok(
          api.POST('/user_group', {
            body: { name: name.trim(), ...(description.trim() ? { description: description.trim() } : {}), ...(owner.trim() ? { owner: owner.trim() } : {}), active },
          }),
        );
        route(groupPath(made.id));
      }}
    >
      <Field name="name" label="Name" required maxLength={255} value={name} onValue={setName} hint="Unique; no leading or trailing spaces." />
      <TextArea name="description" label="Description" rows={3} value={description} onValue={setDescription} />
      <Field name="owner" label="Owner (email or id)" type="text" spellcheck={false} value={owner} onValue={setOwner} hint="Leave empty to own it yourself. The owner holds usergroup.admin on it." />
      <Checkbox name="active" label="Active" checked={active} onChecked={setActive} hint="Grants through an inactive group count for nothing." />
    </Form>
  );
}

/** `/admin/groups/:id`: one group, its settings, members and grants, and who can do what on it. */
export function AdminGroup({ id }: { id?: string }) {
  const groupId = id ?? '';
  const { route } = useLocation();
  const { data: group, error, reload } = useLoad(() => ok(api.GET('/user_group/{group}', { params: { path: { group: groupId } } })), [groupId]);

  if (!group) {
    return (
      <Page title={error ? 'Group not found' : 'Group'} wide>
        <p>
          <a href="/admin/groups">← All groups</a>
        </p>
        {error ? <ErrorNote error={error} /> : <Placeholder rows={8} />}
      </Page>
    );
  }

  return (
    <Page title={group.name} wide>
      <p>
        <a href="/admin/groups">← All groups</a>
      </p>
      <ErrorNote error={error} />
      <dl class="facts">
        <dt>Description</dt>
        <dd>{group.description || <span class="muted">none</span>}</dd>
        <dt>Owner</dt>
        <dd>
          <a href={userPath(group.owner.id)}>{group.owner.name}</a>
        </dd>
        <dt>Status</dt>
        <dd>
          <ActiveTag active={group.active} />
        </dd>
        <dt>Members</dt>
        <dd>{group.members_count}</dd>
        <dt>Created</dt>
        <dd>
          <Time value={group.created} />
        </dd>
        <dt>Id</dt>
        <dd class="mono">{group.id}</dd>
      </dl>

      <Members group={group} reload={reload} />
      <Grants group={group} reload={reload} />
      <Explainer group={group} />

      <h2>Settings</h2>
      <GroupSettings
        key={group.id}
        group={group}
        saved={async (updated) => {
          if (groupId !== updated.id) route(groupPath(updated.id), true);
          await reload();
        }}
      />

      <h2>Delete this group</h2>
      <p class="muted">Its members and grants go with it, and so do the grants it holds on other groups. This cannot be undone.</p>
      <ActionButton
        danger
        busy="Deleting…"
        confirm={`Delete the group “${group.name}”? Its ${group.members_count} member${group.members_count === 1 ? '' : 's'} and its grants go with it.`}
        confirmLabel="Delete group"
        onClick={async () => {
          await ok(api.DELETE('/user_group/{group}', { params: { path: { group: group.id } } }));
          route('/admin/groups');
        }}
      >
        Delete group
      </ActionButton>
    </Page>
  );
}

function GroupSettings({ group, saved }: { group: Group; saved: (g: Group) => Promise<void> }) {
  const [name, setName] = useState(group.name);
  const [description, setDescription] = useState(group.description);
  const [owner, setOwner] = useState('');
  const [active, setActive] = useState(group.active);
  return (
    <Form
      label="Group settings"
      submit="Save changes"
      busy="Saving…"
      fieldFor={{ conflict: 'name', not_found: 'owner', user_deactivated: 'owner' }}
      onSubmit={async () => {
        const body: Schemas['UpdateUserGroup'] = {};
        if (name.trim() !== group.name) body.name = name.trim();
        if (description.trim() !== group.description) body.description = description.trim();
        if (owner.trim()) body.owner = owner.trim();
        if (active !== group.active) body.active = active;
        if (Object.keys(body).length === 0) return 'Nothing changed.';
        const updated = await ok(api.POST('/user_group/{group}', { params: { path: { group: group.id } }, body }));
        setOwner('');
        await saved(updated);
        return 'Saved.';
      }}
    >
      <Field name="name" label="Name" required maxLength={255} value={name} onValue={setName} />
      <TextArea name="description" label="Description" rows={3} value={description} onValue={setDescription} />
      <Field
        name="owner"
        label="New owner (email or id)"
        spellcheck={false}
        value={owner}
        onValue={setOwner}
        hint={
          <>
            Now owned by <strong>{group.owner.name}</strong>. Leave empty to keep.
          </>
        }
      />
      <Checkbox name="active" label="Active" checked={active} onChecked={setActive} hint="Grants through an inactive group count for nothing." />
    </Form>
  );
}

/** As many members as the group's own answer holds; the rest a page of this size at a time. */
const MEMBERS_PAGE = 100;

/**
 * The group's members, a page at a time: the group's answer holds the first 100, which is all
 * there is for most groups (no further request); a larger group's pages come from
 * `GET /user_group/{group}/member`, the first one too, for the cursor of the next.
 */
function Members({ group, reload }: { group: Group; reload: () => Promise<void> }) {
  const [member, setMember] = useState('');
  const pager = usePager([group.id]);
  const cursor = pager.cursor;
  const paged = group.members_count > group.members.length || pager.pageNumber > 1;
  const list = useLoad(
    async () =>
      paged
        ? page(api.GET('/user_group/{group}/member', { params: { path: { group: group.id }, query: { limit: MEMBERS_PAGE, ...(cursor ? { cursor } : {}) } } }))
        : { items: group.members, next: undefined },
    [group.id, cursor, group.members_count, group.members],
  );
  const members = list.data?.items ?? (pager.pageNumber === 1 ? group.members : []);
  return (
    <>
      <h2>Members ({group.members_count})</h2>
      <ErrorNote error={list.error} />
      {members.length === 0 ? (
        <p class="muted">No members yet.</p>
      ) : (
        <TableRegion label="Members" busy={list.loading}>
          <table class="g-table">
            <caption class="visually-hidden">Members of {group.name}</caption>
            <TableHead columns={['Name', 'Email']} actions />
            <tbody>
              {members.map((m) => (
                <tr key={m.id}>
                  <td>
                    <a href={userPath(m.id)}>{m.name}</a>
                    {'is_admin' in m && m.is_admin && <> <span class="tag">system admin</span></>}
                  </td>
                  {/* System admins, the only readers of this page, are shown full users. */}
                  <td>{'email' in m ? m.email : null}</td>
                  <td class="row-actions">
                    <ActionButton
                      label={`Remove ${m.name}`}
                      busy="Removing…"
                      danger
                      confirm={`Remove ${m.name} from ${group.name}? They lose what the group's membership and its grants gave them.`}
                      confirmLabel="Remove member"
                      onClick={async () => {
                        await ok(api.DELETE('/user_group/{group}/member/{user}', { params: { path: { group: group.id, user: m.id } } }));
                        await reload();
                      }}
                    >
                      Remove
                    </ActionButton>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableRegion>
      )}
      {paged && pager.controls(list.data?.next, list.loading)}
      <Form
        label="Add a member"
        submit="Add member"
        busy="Adding…"
        class="inline-form"
        fieldFor={{ not_found: 'member', user_deactivated: 'member', validation_failed: 'member' }}
        onSubmit={async () => {
          const who = member.trim();
          const { added } = await ok(api.PUT('/user_group/{group}/member/{user}', { params: { path: { group: group.id, user: who } } }));
          setMember('');
          await reload();
          return added ? `Added ${who}.` : `${who} is already a member.`;
        }}
      >
        <Field name="member" label="New member (email or id)" spellcheck={false} required value={member} onValue={setMember} />
      </Form>
    </>
  );
}

function Grants({ group, reload }: { group: Group; reload: () => Promise<void> }) {
  const [user, setUser] = useState('');
  const [userPermission, setUserPermission] = useState<Permission>('usergroup.read');
  const [source, setSource] = useState('');
  const [sourcePermission, setSourcePermission] = useState<Permission>('usergroup.read');
  return (
    <>
      <h2>Grants</h2>
      <p class="muted">
        Who holds what on {group.name}. A grant to a group is held by each of its members (one level deep); membership alone gives usergroup.read; the
        highest grant wins.
      </p>
      <TableRegion label="Grants">
        <table class="g-table">
          <caption class="visually-hidden">Grants on {group.name}</caption>
          <TableHead columns={['Held by', 'Permission', 'Origin']} actions />
          <tbody>
            {group.grants.map((g) => (
              <tr key={`${g.type}:${g.id}:${g.origin}`}>
                <td>
                  <span class="tag">{g.type === 'user' ? 'user' : 'group'}</span> <a href={g.type === 'user' ? userPath(g.id) : groupPath(g.id)}>{g.name}</a>
                </td>
                <td>
                  <code>{g.permission}</code>
                </td>
                <td class="nowrap">{g.origin === 'owner' ? 'owner' : 'grant'}</td>
                <td class="row-actions">
                  {g.origin === 'grant' && (
                    <ActionButton
                      label={`Revoke ${g.permission} from ${g.type === 'user' ? '' : 'group '}${g.name}`}
                      busy="Revoking…"
                      danger
                      confirm={`Revoke ${g.permission} on ${group.name} from ${g.type === 'user' ? g.name : `the members of ${g.name}`}?`}
                      confirmLabel="Revoke"
                      onClick={async () => {
                        if (g.type === 'user') {
                          await ok(api.DELETE('/user_group/{group}/grant/user/{user}', { params: { path: { group: group.id, user: g.id } } }));
                        } else {
                          await ok(api.DELETE('/user_group/{group}/grant/user_group/{source}', { params: { path: { group: group.id, source: g.id } } }));
                        }
                        await reload();
                      }}
                    >
                      Revoke
                    </ActionButton>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableRegion>
      <div class="grant-forms">
        <Form
          label="Grant to a user"
          submit="Grant to user"
          busy="Granting…"
          fieldFor={{ not_found: 'grant_user', user_deactivated: 'grant_user', validation_failed: 'grant_user' }}
          onSubmit={async () => {
            const who = user.trim();
            await ok(api.PUT('/user_group/{group}/grant/user/{user}', { params: { path: { group: group.id, user: who } }, body: { permission: userPermission } }));
            setUser('');
            await reload();
            return `${who} now holds ${userPermission}.`;
          }}
        >
          <h3>Grant to a user</h3>
          <Field name="grant_user" label="User to grant (email or id)" spellcheck={false} required value={user} onValue={setUser} />
          <Select name="grant_user_permission" label="Permission for the user" value={userPermission} onValue={(v) => setUserPermission(v as Permission)} options={PERMISSIONS} />
        </Form>
        <Form
          label="Grant to a group"
          submit="Grant to group"
          busy="Granting…"
          fieldFor={{ not_found: 'grant_group', validation_failed: 'grant_group' }}
          onSubmit={async () => {
            const which = source.trim();
            await ok(
              api.PUT('/user_group/{group}/grant/user_group/{source}', { params: { path: { group: group.id, source: which } }, body: { permission: sourcePermission } }),
            );
            setSource('');
            await reload();
            return `The members of ${which} now hold ${sourcePermission}.`;
          }}
        >
          <h3>Grant to a group</h3>
          <Field name="grant_group" label="Group to grant (name or id)" spellcheck={false} required value={source} onValue={setSource} />
          <Select
            name="grant_group_permission"
            label="Permission for the group's members"
            value={sourcePermission}
            onValue={(v) => setSourcePermission(v as Permission)}
            options={PERMISSIONS}
          />
        </Form>
      </div>
    </>
  );
}

/** One way a user holds something on the group. */
interface Route {
  type: ViaType;
  permission: Permission;
  /** The granting group, for a group grant. */
  via?: { id: string; name: string };
  /** The steps from the user to the permission, without the user and the result. */
  steps: ComponentChildren[];
  /** The same in one phrase, for the table of every route. */
  text: ComponentChildren;
}

interface Explained {
  user: { id: string; name: string; email: string };
  effective: Effective;
  routes: Route[];
  winner: Route;
}

/** The order the service breaks ties in (equal grants): the first listed counts. */
const ORDER: ViaType[] = ['system_admin', 'owner', 'user_grant', 'group_grant', 'member', 'none'];

async function explain(group: Group, who: string): Promise<Explained> {
  const [effective, user] = await Promise.all([
    ok(api.GET('/user_group/{group}/effective/{user}', { params: { path: { group: group.id, user: who } } })),
    ok(api.GET('/user/{user}', { params: { path: { user: who } } })),
  ]);
  const G = <strong>{group.name}</strong>;
  const memberOf = new Set(user.groups.map((g) => g.id));
  const routes: Route[] = [];
  if (user.is_admin) {
    routes.push({ type: 'system_admin', permission: 'usergroup.admin', steps: ['is a system administrator', <>holds usergroup.admin on every group, {G} too</>], text: 'System administrator' });
  }
  if (group.owner.id === user.id) {
    routes.push({ type: 'owner', permission: 'usergroup.admin', steps: [<>owns {G}</>], text: <>Owner of {G}</> });
  }
  for (const g of group.grants) {
    if (g.type === 'user' && g.origin === 'grant' && g.id === user.id) {
      routes.push({
        type: 'user_grant',
        permission: g.permission,
        steps: [<>holds a direct grant of {g.permission} on {G}</>],
        text: <>Direct grant on {G}</>,
      });
    }
  }
  // A grant to a group counts for its members while that group is active.
  const sources = group.grants.filter((g) => g.type === 'user_group' && memberOf.has(g.id));
  const details = await Promise.all(sources.map((g) => ok(api.GET('/user_group/{group}', { params: { path: { group: g.id } } }))));
  sources.forEach((g, i) => {
    const S = <strong>{g.name}</strong>;
    const inactive = !details[i].active;
    routes.push({
      type: 'group_grant',
      permission: inactive ? 'usergroup.none' : g.permission,
      via: { id: g.id, name: g.name },
      steps: [
        <>member of {S}</>,
        <>
          {S} holds {g.permission} on {G}
          {inactive && ', but it is inactive, so it counts for nothing'}
        </>,
      ],
      text: (
        <>
          Member of {S}, which holds {g.permission} on {G}
          {inactive && ' (inactive: counts for nothing)'}
        </>
      ),
    });
  });
  if (memberOf.has(group.id)) {
    routes.push({ type: 'member', permission: 'usergroup.read', steps: [<>member of {G}</>, 'membership gives usergroup.read'], text: <>Member of {G}</> });
  }
  // The service says which route wins; the page shows how it got there.
  const v = effective.via;
  let winner = routes.find((r) => r.type === v.type && (v.type !== 'group_grant' || r.via?.id === v.group?.id));
  if (!winner) {
    winner =
      v.type === 'none'
        ? { type: 'none', permission: effective.permission, steps: [<>is not the owner of {G}, holds no grant on it and is not a member</>], text: 'Nothing' }
        : { type: v.type, permission: effective.permission, via: v.group, steps: [v.group ? <>through {v.group.name}</> : v.type.replace('_', ' ')], text: v.type.replace('_', ' ') };
    if (v.type !== 'none') routes.push(winner);
  }
  routes.sort((a, b) => rank(b.permission) - rank(a.permission) || ORDER.indexOf(a.type) - ORDER.indexOf(b.type));
  return { user: { id: user.id, name: user.name, email: user.email }, effective, routes, winner };
}

function Explainer({ group }: { group: Group }) {
  const [who, setWho] = useState('');
  const [result, setResult] = useState<Explained | null>(null);
  // After a change to the group (a grant, a member), explain the same user again.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    if (!result) return;
    let live = true;
    explain(group, result.user.id).then(
      (r) => live && setResult(r),
      () => live && setResult(null),
    );
    return () => {
      live = false;
    };
  }, [group]);
  return (
    <section class="explainer" aria-labelledby="explainer-heading">
      <h2 id="explainer-heading">Who can do what here</h2>
      <p class="muted">Name a user to see what they may do on {group.name}, and why: every route by which they get something here, and which one wins.</p>
      <Form
        label="Explain a user's permission"
        submit="Explain"
        busy="Looking…"
        quiet
        fieldFor={{ not_found: 'who', user_deactivated: 'who', validation_failed: 'who' }}
        onSubmit={async () => {
          setResult(null);
          setResult(await explain(group, who.trim()));
        }}
      >
        <Field name="who" label="User (email or id)" spellcheck={false} required value={who} onValue={setWho} />
      </Form>
      <div aria-live="polite">{result && <Explanation group={group} result={result} />}</div>
    </section>
  );
}

function Explanation({ group, result }: { group: Group; result: Explained }) {
  const { user, effective, routes, winner } = result;
  const others = routes.filter((r) => r !== winner);
  return (
    <div class="explanation">
      <p>
        <strong>{user.name}</strong> holds <code class="perm">{effective.permission}</code> on <strong>{group.name}</strong>
        {effective.via.type === 'none' ? ': nothing reaches them here.' : '.'}
      </p>
      <ol class="path" aria-label={`How ${user.name} gets ${effective.permission} on ${group.name}`}>
        <li class="who">
          <span class="box">
            <a href={userPath(user.id)}>{user.name}</a>
          </span>
        </li>
        {winner.steps.map((s, i) => (
          <li key={i}>
            <span class="box">{s}</span>
          </li>
        ))}
        <li class="result">
          <span class="box">
            <code>{effective.permission}</code>
          </span>
        </li>
      </ol>
      {others.length === 0 ? (
        <p class="muted">This is the only route by which {user.name} gets anything here.</p>
      ) : (
        <p>
          Wins: the highest grant wins. {user.name} also gets something here by {others.length === 1 ? 'one other route' : `${others.length} other routes`};{' '}
          {others.every((o) => rank(o.permission) < rank(winner.permission)) ? 'each gives less.' : 'none gives more (on a tie the first route listed counts).'}
        </p>
      )}
      <TableRegion label="Every route to this group">
        <table class="g-table">
          <caption class="visually-hidden">Every route by which {user.name} gets something on {group.name}</caption>
          <TableHead columns={['Route', 'Gives', 'Result']} />
          <tbody>
            {(routes.length ? routes : [winner]).map((r, i) => (
              <tr key={i} class={r === winner ? 'winner' : undefined}>
                <td>{r.text}</td>
                <td>
                  <code>{r.permission}</code>
                </td>
                <td class="nowrap">{r === winner ? <span class="tag tag-win">wins</span> : <span class="muted">does not win</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableRegion>
    </div>
  );
}
