import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, ok } from '../api';
import { registrationOpen, useSession } from '../session';
import { Field, Form, Page } from '../ui';

/** Only a path of this console may be where sign-in returns to (never another site). */
export function safeNext(next: string | undefined): string {
  return next && /^\/(account|admin)(\/|\?|$)/.test(next) ? next : '/account';
}

export function SignIn() {
  const { query, route } = useLocation();
  const { refresh } = useSession();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');

  return (
    <Page title="Sign in">
      <Form
        submit="Sign in"
        busy="Signing in…"
        quiet
        explain={(e) => (e.status === 401 ? 'The email or the password is wrong.' : undefined)}
        onSubmit={async () => {
          const token = await ok(api.POST('/login', { body: { email: email.trim(), password, set_session: true } }));
          await refresh();
          route(token.password_change_required ? '/account/password' : safeNext(query.next));
        }}
      >
        <Field name="email" label="Email" type="email" autoComplete="username" required value={email} onValue={setEmail} />
        <Field name="password" label="Password" type="password" autoComplete="current-password" required value={password} onValue={setPassword} />
      </Form>
      <p class="links">
        <a href="/forgot-password">Forgot your password?</a>
        {registrationOpen && (
          <>
            {' · '}
            <a href="/sign-up">Create an account</a>
          </>
        )}
      </p>
    </Page>
  );
}
