import { useState } from 'preact/hooks';
import { api, ok, type UserDetailed } from '../api';
import { useSession } from '../session';
import { CurrentPassword, Field, Form, Page } from '../ui';
import { fieldError } from './account';

type Editable = 'name' | 'email' | 'first_name' | 'last_name';

/** Whether the form asks for a new address (then the current password is asked for too). */
function newAddress(user: UserDetailed, email: string): boolean {
  return email.trim().toLowerCase() !== user.email.toLowerCase() && email.trim().toLowerCase() !== user.pending_email?.toLowerCase();
}

/** The fields of `form` that differ from `user` (only what changed is sent, so only that is mailed). */
function changes(user: UserDetailed, form: Record<Editable, string>) {
  const body: { name?: string; email?: string; first_name?: string | null; last_name?: string | null } = {};
  if (form.name.trim() !== user.name) body.name = form.name.trim();
  if (newAddress(user, form.email)) body.email = form.email.trim();
  for (const k of ['first_name', 'last_name'] as const) {
    const v = form[k].trim() === '' ? null : form[k].trim();
    if (v !== (user[k] ?? null)) body[k] = v;
  }
  return body;
}

export function Profile() {
  const { me, refresh } = useSession();
  const user = me!;
  const [form, setForm] = useState<Record<Editable, string>>({
    name: user.name,
    email: user.pending_email ?? user.email,
    first_name: user.first_name ?? '',
    last_name: user.last_name ?? '',
  });
  const set = (k: Editable) => (v: string) => setForm({ ...form, [k]: v });
  const [current, setCurrent] = useState('');
  const moving = newAddress(user, form.email);

  return (
    <Page title="Profile">
      <dl class="facts">
        <dt>Signed in as</dt>
        <dd>{user.email}</dd>
        <dt>Role</dt>
        <dd>{user.is_admin ? 'System administrator' : 'User'}</dd>
        {user.groups.length > 0 && (
          <>
            <dt>Groups</dt>
            <dd>{user.groups.map((g) => `${g.name} (${g.permission.replace('usergroup.', '')})`).join(', ')}</dd>
          </>
        )}
      </dl>
      {user.pending_email && (
        <p class="notice" role="status">
          Your new address <strong>{user.pending_email}</strong> is waiting for confirmation: follow the link we sent to it. Until then you sign in
          with {user.email}.
        </p>
      )}
      <Form
        submit="Save changes"
        busy="Saving…"
        label="Profile"
        fieldFor={{ wrong_password: 'current_password' }}
        explain={(e) => (e.code === 'wrong_password' ? 'That is not your current password.' : undefined)}
        onSubmit={async () => {
          const body = changes(user, form);
          if (Object.keys(body).length === 0) return 'Nothing changed.';
          if (body.email && current === '') throw fieldError('current_password', 'Enter your current password to change your address.');
          const updated = await ok(api.POST('/user/me', { body: body.email ? { ...body, current_password: current } : body }));
          await refresh();
          setCurrent('');
          setForm({ ...form, email: updated.pending_email ?? updated.email });
          return body.email ? `Saved. We sent a confirmation link to ${body.email}.` : 'Saved.';
        }}
      >
        <Field name="name" label="User name" autoComplete="username" required value={form.name} onValue={set('name')} />
        <Field name="first_name" label="First name" autoComplete="given-name" value={form.first_name} onValue={set('first_name')} />
        <Field name="last_name" label="Last name" autoComplete="family-name" value={form.last_name} onValue={set('last_name')} />
        <Field
          name="email"
          label="Email"
          type="email"
          autoComplete="email"
          required
          value={form.email}
          onValue={set('email')}
          hint="A new address takes effect once you follow the link we send to it."
        />
        {moving && (
          <CurrentPassword value={current} onValue={setCurrent} hint="To change your address, confirm it is you." />
        )}
      </Form>
    </Page>
  );
}
