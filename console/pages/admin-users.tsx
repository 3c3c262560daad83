import './admin-users.css';
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, ok, page, type Schemas, type UserDetailed } from '../api';
import { TokenTable } from '../token-table';
import { useSession } from '../session';
import { FactorTable } from './security';
import { ActionButton, Checkbox, ErrorNote, Facts, Field, Form, Page, Placeholder, Select, Time, useLoad, usePager, TableRegion, TableHead, type Fact } from '../ui';

/**
 * The system administrators' user pages: the list (search as you type, filters, keyset paging,
 * creating a user) and one user (facts, edit, password reset, sign-out everywhere, deactivate or
 * reactivate, their API tokens). Only the public API routes of §2.3.
 */

const PAGE_SIZE = 50;
type AdminFilter = 'any' | 'only' | 'none';
type ConflictUser = Schemas['ConflictUser'];

/**
 * A `409 conflict` about a user has no `details`, but an admin is told who holds the name or the
 * email (`user`): the API's message then goes under the field that clashes, so it lands where the
 * person typed it.
 */
function placeConflict(e: unknown, entered: { name?: string; email?: string }): unknown {
  if (!(e instanceof ApiError) || e.code !== 'conflict' || e.body.details?.length) return e;
  const holder = e.body.user;
  let field: 'name' | 'email' | undefined;
  if (holder && entered.email !== undefined && holder.email.toLowerCase() === entered.email.toLowerCase()) field = 'email';
  else if (holder && entered.name !== undefined && holder.name === entered.name) field = 'name';
  if (!field) return e;
  return new ApiError(e.status, { ...e.body, details: [{ path: `/body/${field}`, message: e.message }] }, e.response);
}

function userPath(id: string) {
  return `/admin/users/${encodeURIComponent(id)}`;
}

/* ------------------------------------------------------------------------------------------------ */
/* The list                                                                                         */
/* ------------------------------------------------------------------------------------------------ */

export function AdminUsers(_props: { id?: string }) {
  const [typed, setTyped] = useState('');
  const [q, setQ] = useState('');
  const [admins, setAdmins] = useState<AdminFilter>('any');
  const [withDeactivated, setWithDeactivated] = useState(false);

  // Search as one types: the query settles 250 ms after the last key.
  useEffect(() => {
    const timer = setTimeout(() => setQ(typed.trim()), 250);
    return () => clearTimeout(timer);
  }, [typed]);

  const filters = JSON.stringify([q, admins, withDeactivated]);
  const pager = usePager([filters]);
  const cursor = pager.cursor;

  const list = useLoad(
    () =>
      page(
        api.GET('/user', {
          params: {
            query: {
              limit: PAGE_SIZE,
              ...(cursor ? { cursor } : {}),
              ...(q ? { q } : {}),
              ...(admins === 'any' ? {} : { is_admin: admins === 'only' ? '1' : '0' }),
              ...(withDeactivated ? { include_deactivated: '1' } : {}),
            },
          },
        }),
      ),
    [filters, cursor],
  );

  const filtered = q !== '' || admins !== 'any';

  return (
    <Page title="Users" wide>
      <CreateUser onCreated={() => void list.reload()} />

      <h2 id="users-list">All users</h2>
      <div class="filters users-filters" role="search" aria-label="Users">
        <Field
          name="q"
          type="search"
          label="Search users"
          value={typed}
          onValue={setTyped}
          autoComplete="off"
          spellcheck={false}
          placeholder="Start of a name or an email"
        />
        <Select
          name="admin_filter"
          label="Administrators"
          value={admins}
          onValue={(v) => setAdmins(v as AdminFilter)}
          options={[
            ['any', 'Everyone'],
            ['only', 'Only administrators'],
            ['none', 'No administrators'],
          ]}
        />
        <Checkbox name="include_deactivated" label="Include deactivated" checked={withDeactivated} onChecked={setWithDeactivated} />
      </div>

      <ErrorNote error={list.error} />
      {list.data === undefined ? (
        !list.error && <Placeholder rows={8} />
      ) : (
        <>
          <TableRegion class="users-table" label="Users" busy={list.loading}>
            <table>
              <caption class="visually-hidden">Users{q ? ` whose name or email starts with “${q}”` : ''}</caption>
              <TableHead columns={['Name', 'Email', 'Role', 'Last sign-in', 'Created']} />
              <tbody>
                {list.data.items.length === 0 && (
                  <tr>
                    <td colSpan={5} class="muted">
                      {filtered || withDeactivated ? 'No user matches.' : 'No users yet.'}
                    </td>
                  </tr>
                )}
                {list.data.items.map((u) => (
                  <tr key={u.id} class={u.deactivated ? 'users-deactivated' : undefined}>
                    <td>
                      <a href={userPath(u.id)}>{u.name}</a>
                      {u.deactivated && (
                        <>
                          {' '}
                          <span class="tag">Deactivated</span>
                        </>
                      )}
                      {(u.first_name || u.last_name) && <div class="muted users-small">{[u.first_name, u.last_name].filter(Boolean).join(' ')}</div>}
                    </td>
                    <td class="users-nowrap">{u.email}</td>
                    <td>{u.is_admin ? <span class="tag users-admin">Administrator</span> : <span class="muted">User</span>}</td>
                    <td>
                      <Time value={u.last_login} />
                    </td>
                    <td>
                      <Time value={u.created} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableRegion>
          {(list.data.next || pager.pageNumber > 1) && pager.controls(list.data.next, list.loading)}
        </>
      )}
    </Page>
  );
}

function CreateUser({ onCreated }: { onCreated: () => void }) {
  const empty = { name: '', email: '', is_admin: false, send_mail: true };
  const [form, setForm] = useState(empty);
  const [created, setCreated] = useState<{ id: string; name: string; email: string; mailed: boolean } | null>(null);
  const [holder, setHolder] = useState<ConflictUser | null>(null);

  return (
    <details class="users-create">
      <summary>Create user</summary>
      <Form
        submit="Create user"
        busy="Creating…"
        label="Create user"
        onSubmit={async () => {
          setCreated(null);
          setHolder(null);
          const body = { name: form.name.trim(), email: form.email.trim(), is_admin: form.is_admin };
          try {
            const user = await ok(api.POST('/user', { params: { query: { send_mail: form.send_mail ? '1' : '0' } }, body }));
            setCreated({ ...user, mailed: form.send_mail });
            setForm(empty);
            onCreated();
          } catch (e) {
            if (e instanceof ApiError && e.code === 'conflict' && e.body.user) setHolder(e.body.user);
            throw placeConflict(e, body);
          }
        }}
      >
        <p class="hint users-intro">
          There is no password to choose here: the user sets their own with the link in the welcome mail (valid 7 days). Without the mail, they can
          ask for a link on the “Forgot password” page.
        </p>
        <Field name="name" label="User name" required autoComplete="off" spellcheck={false} value={form.name} onValue={(name) => setForm({ ...form, name })} />
        <Field name="email" label="Email" type="email" required autoComplete="off" value={form.email} onValue={(email) => setForm({ ...form, email })} />
        <Checkbox
          name="is_admin"
          label="System administrator"
          hint="May manage every user and group."
          checked={form.is_admin}
          onChecked={(is_admin) => setForm({ ...form, is_admin })}
        />
        <Checkbox
          name="send_mail"
          label="Send a welcome mail with a link to set a password"
          checked={form.send_mail}
          onChecked={(send_mail) => setForm({ ...form, send_mail })}
        />
      </Form>
      <div role="status">
        {created && (
          <p class="notice">
            Created <a href={userPath(created.id)}>{created.name}</a>.{' '}
            {created.mailed ? `A welcome mail with a link to set a password went to ${created.email}.` : 'No mail was sent.'}
          </p>
        )}
        {holder && (
          <p class="muted">
            The existing user: <a href={userPath(holder.id)}>{holder.name}</a> ({holder.email}).
          </p>
        )}
      </div>
    </details>
  );
}

/* ------------------------------------------------------------------------------------------------ */
/* One user                                                                                         */
/* ------------------------------------------------------------------------------------------------ */

type Loaded = { active: UserDetailed } | { gone: ConflictUser };

export function AdminUser({ id }: { id?: string }) {
  const userId = id ?? '';
  const loaded = useLoad<Loaded>(async () => {
    try {
      return { active: await ok(api.GET('/user/{user}', { params: { path: { user: userId } } })) };
    } catch (e) {
      // A deactivated user is answered 410, with what an admin may know of them.
      if (e instanceof ApiError && e.code === 'user_deactivated' && e.body.user) return { gone: e.body.user };
      throw e;
    }
  }, [userId]);

  const back = (
    <p class="users-back">
      <a href="/admin/users">← All users</a>
    </p>
  );

  if (loaded.data === undefined) {
    return (
      <Page title={loaded.error ? 'User not found' : 'User'} wide>
        {back}
        <ErrorNote error={loaded.error} />
        {!loaded.error && <Placeholder rows={10} />}
      </Page>
    );
  }
  if ('gone' in loaded.data) return <DeactivatedUser user={loaded.data.gone} reload={loaded.reload} back={back} />;
  return <ActiveUser key={loaded.data.active.id} user={loaded.data.active} reload={loaded.reload} back={back} error={loaded.error} />;
}

/** The facts a user's page starts with, active or deactivated. */
const identity = (user: { id: string; name: string; email: string }): Fact[] => [
  ['Id', user.id, 'mono'],
  ['Name', user.name],
  ['Email', user.email],
];

function DeactivatedUser({ user, reload, back }: { user: ConflictUser; reload: () => Promise<void>; back: ComponentChildren }) {
  return (
    <Page title={user.name} wide>
      {back}
      <p class="notice" role="status">
        <strong>
          Deactivated <Time value={user.deactivated} />.
        </strong>{' '}
        This user cannot sign in; their sessions, API tokens and group memberships were removed.
      </p>
      <Facts rows={[...identity(user), ['Created', <Time value={user.created} />]]} />
      <div class="users-actions">
        <ActionButton
          busy="Reactivating…"
          confirm={`Reactivate ${user.name}? The account becomes active again with no password, no tokens and no groups: ${user.email} gets a mail with a link to set a password (valid 7 days).`}
          confirmLabel="Reactivate and send the mail"
          onClick={async () => {
            await ok(api.POST('/user/{user}/reactivate', { params: { path: { user: user.id }, query: { send_mail: '1' } } }));
            await reload();
          }}
        >
          Reactivate
        </ActionButton>
      </div>
    </Page>
  );
}

function ActiveUser({
  user,
  reload,
  back,
  error,
}: {
  user: UserDetailed;
  reload: () => Promise<void>;
  back: ComponentChildren;
  error?: ApiError;
}) {
  const { me, refresh } = useSession();
  const self = me?.id === user.id;
  const [done, setDone] = useState('');
  const tokens = useLoad(() => ok(api.GET('/user/{user}/token', { params: { path: { user: user.id } } })), [user.id]);
  const path = { user: user.id };

  return (
    <Page title={user.name} wide>
      {back}
      <ErrorNote error={error} />
      {user.force_password_change && (
        <p class="notice">{user.name} must set a new password before they can use the account (with a mailed link, or at their next sign-in).</p>
      )}
      <Facts
        rows={[
          ...identity(user),
          !!user.pending_email && ['Pending email', `${user.pending_email} (waiting for confirmation)`],
          ['First name', user.first_name ?? <span class="muted">not set</span>],
          ['Last name', user.last_name ?? <span class="muted">not set</span>],
          ['Role', user.is_admin ? 'System administrator' : 'User'],
          ['Created', <Time value={user.created} />],
          ['Last sign-in', <Time value={user.last_login} />],
          ['Last seen', <Time value={user.last_seen} />],
          ['Must change password', user.force_password_change ? 'Yes' : 'No'],
          ['Two-factor sign-in', user.mfa_enabled ? 'On' : 'Off'],
          [
            'Groups',
            user.groups.length === 0 ? (
              <span class="muted">none</span>
            ) : (
              <ul class="users-inline">
                {user.groups.map((g) => (
                  <li key={g.id}>
                    <a href={`/admin/groups/${encodeURIComponent(g.id)}`}>{g.name}</a> <span class="muted">({g.permission.replace('usergroup.', '')})</span>
                  </li>
                ))}
              </ul>
            ),
          ],
        ]}
      />

      <h2>Edit</h2>
      <EditUser
        user={user}
        self={self}
        onSaved={async () => {
          await reload();
          if (self) await refresh();
        }}
      />

      <h2>Access</h2>
      <div class="users-actions">
        <ActionButton
          busy="Resetting…"
          confirm={`Reset ${user.name}'s password? Their current password stops working at once and their sessions end (API tokens keep working). ${user.email} gets a link to set a new password, valid for 1 hour.`}
          confirmLabel="Reset and send the link"
          onClick={async () => {
            await ok(api.DELETE('/user/{user}/password', { params: { path, query: { send_mail: '1' } } }));
            setDone(`Password reset. A link to set a new one went to ${user.email}.`);
            await reload();
          }}
        >
          Reset password
        </ActionButton>
        <ActionButton
          busy="Signing out…"
          confirm={`Sign ${user.name} out everywhere? Every session and every API token of theirs stops working at once, and ${user.email} gets a mail saying so. Their password stays as it is.`}
          confirmLabel="Sign out and revoke tokens"
          onClick={async () => {
            await ok(api.POST('/user/{user}/revoke', { params: { path, query: { send_mail: '1' } } }));
            setDone(`${user.name} is signed out everywhere and their API tokens are revoked.`);
            await tokens.reload();
          }}
        >
          Sign out everywhere / revoke tokens
        </ActionButton>
        <ActionButton
          danger
          busy="Deactivating…"
          confirm={`Deactivate ${user.name}? They can no longer sign in, all their sessions and API tokens end, and they leave every group. The account stays and can be reactivated later.`}
          confirmLabel="Deactivate"
          onClick={async () => {
            await ok(api.DELETE('/user/{user}', { params: { path } }));
            await reload();
          }}
        >
          Deactivate
        </ActionButton>
      </div>
      <p role="status" class="ok users-done">
        {done}
      </p>

      <TwoFactor user={user} reload={reload} />

      <h2 id="user-tokens">API tokens</h2>
      <ErrorNote error={tokens.error} />
      {tokens.data === undefined ? (
        !tokens.error && <Placeholder rows={2} />
      ) : tokens.data.length === 0 ? (
        <p class="muted">No API tokens.</p>
      ) : (
        <TokenTable
          tokens={tokens.data}
          label="Their API tokens"
          busy={tokens.loading}
          question={(t) => `Delete ${user.name}'s API token “${t.name}”? Programs using it are refused from their next request.`}
          onDelete={async (t) => {
            await ok(api.DELETE('/user/{user}/token/{name}', { params: { path: { user: user.id, name: t.name } } }));
            await tokens.reload();
          }}
        />
      )}
    </Page>
  );
}

/** The user's two-factor methods, and the reset for a user who lost their device (`DELETE /user/{user}/factor`). */
function TwoFactor({ user, reload }: { user: UserDetailed; reload: () => Promise<void> }) {
  const factors = useLoad(() => ok(api.GET('/user/{user}/factor', { params: { path: { user: user.id } } })), [user.id]);
  const [done, setDone] = useState('');
  return (
    <>
      <h2 id="user-factors">Two-factor sign-in</h2>
      <ErrorNote error={factors.error} />
      {factors.data === undefined ? (
        !factors.error && <Placeholder rows={2} />
      ) : factors.data.length === 0 ? (
        <p class="muted">No two-factor methods: {user.name} signs in with the password alone.</p>
      ) : (
        <>
          <FactorTable factors={factors.data} labelledBy="user-factors" busy={factors.loading} />
          <div class="users-actions">
            <ActionButton
              danger
              busy="Resetting…"
              confirm={`Reset ${user.name}'s two-factor sign-in? Every authenticator app and recovery code of theirs is removed and their sessions end (API tokens keep working). They sign in with the password alone until they set up a new app, and ${user.email} gets a mail saying so.`}
              confirmLabel="Reset two-factor"
              onClick={async () => {
                await ok(api.DELETE('/user/{user}/factor', { params: { path: { user: user.id } } }));
                setDone(`Two-factor sign-in of ${user.name} was reset.`);
                await factors.reload();
                await reload();
              }}
            >
              Reset two-factor
            </ActionButton>
          </div>
        </>
      )}
      <p role="status" class="ok users-done">
        {done}
      </p>
    </>
  );
}

type Editable = { name: string; email: string; first_name: string; last_name: string; is_admin: boolean };

function formOf(user: UserDetailed): Editable {
  return { name: user.name, email: user.email, first_name: user.first_name ?? '', last_name: user.last_name ?? '', is_admin: user.is_admin };
}

/** Only the fields that differ from `user` (only those are changed, and only those are mailed). */
function changes(user: UserDetailed, form: Editable, self: boolean) {
  const body: { name?: string; email?: string; first_name?: string | null; last_name?: string | null; is_admin?: boolean } = {};
  if (form.name.trim() !== user.name) body.name = form.name.trim();
  const email = form.email.trim().toLowerCase();
  if (email !== user.email.toLowerCase() && !(self && email === user.pending_email?.toLowerCase())) body.email = form.email.trim();
  for (const k of ['first_name', 'last_name'] as const) {
    const v = form[k].trim() === '' ? null : form[k].trim();
    if (v !== (user[k] ?? null)) body[k] = v;
  }
  if (form.is_admin !== user.is_admin) body.is_admin = form.is_admin;
  return body;
}

function EditUser({ user, self, onSaved }: { user: UserDetailed; self: boolean; onSaved: () => Promise<void> }) {
  const [form, setForm] = useState<Editable>(() => formOf(user));
  const [sendMail, setSendMail] = useState(true);
  const set =
    <K extends keyof Editable>(k: K) =>
    (v: Editable[K]) =>
      setForm({ ...form, [k]: v });

  return (
    <Form
      submit="Save changes"
      busy="Saving…"
      label={`Edit ${user.name}`}
      onSubmit={async () => {
        const body = changes(user, form, self);
        if (Object.keys(body).length === 0) return 'Nothing changed.';
        let updated: UserDetailed;
        try {
          updated = await ok(api.POST('/user/{user}', { params: { path: { user: user.id }, query: { send_mail: sendMail ? '1' : '0' } }, body }));
        } catch (e) {
          throw placeConflict(e, body);
        }
        setForm(formOf(updated));
        await onSaved();
        if (self && body.email) return `Saved. Your new address changes once you follow the link sent to ${body.email}.`;
        return sendMail ? 'Saved. The user was mailed about the change.' : 'Saved.';
      }}
    >
      <Field name="name" label="User name" required autoComplete="off" spellcheck={false} value={form.name} onValue={set('name')} />
      <Field
        name="email"
        label="Email"
        type="email"
        required
        autoComplete="off"
        value={form.email}
        onValue={set('email')}
        hint={
          self
            ? 'Your own address changes once you follow the link sent to the new one.'
            : 'Changes at once; the old and the new address are both told when the mail below is on.'
        }
      />
      <Field name="first_name" label="First name" autoComplete="off" value={form.first_name} onValue={set('first_name')} />
      <Field name="last_name" label="Last name" autoComplete="off" value={form.last_name} onValue={set('last_name')} />
      <Checkbox name="is_admin" label="System administrator" checked={form.is_admin} onChecked={set('is_admin')} hint="May manage every user and group." />
      <Checkbox name="send_mail" label="Email the user about the change" checked={sendMail} onChecked={setSendMail} />
    </Form>
  );
}
