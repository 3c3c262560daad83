import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, ApiError, ok, type Schemas } from '../api';
import { registrationOpen, SECURITY_PAGE, useSession } from '../session';
import { Field, Form, Page } from '../ui';
import { fieldError } from './account';

/** Only a path of this console may be where sign-in returns to (never another site). */
export function safeNext(next: string | undefined): string {
  return next && /^\/(account|admin)(\/|\?|$)/.test(next) ? next : '/account';
}

type LoginToken = Schemas['LoginToken'];
/** The factors a `mfa_required` answer names (`{id, type, name}`). */
type FactorNames = NonNullable<LoginToken['factors']>;

export function SignIn() {
  const { query, route } = useLocation();
  const { refresh, mfa, setMfa } = useSession();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [factors, setFactors] = useState<FactorNames>([]);
  const [restart, setRestart] = useState<string | null>(null);

  // The password was right and a code is owed (also after a reload, when the API says so).
  if (mfa === 'pending') {
    return (
      <SecondStep
        factors={factors}
        next={safeNext(query.next)}
        onRestart={(why) => {
          setPassword('');
          setFactors([]);
          setRestart(why);
          setMfa(null);
        }}
      />
    );
  }

  return (
    <Page title="Sign in">
      {restart && (
        <p class="notice" role="status">
          {restart}
        </p>
      )}
      <Form
        submit="Sign in"
        busy="Signing in…"
        quiet
        explain={(e) => (e.status === 401 ? 'The email or the password is wrong.' : undefined)}
        onSubmit={async () => {
          const token = await ok(api.POST('/login', { body: { email: email.trim(), password, set_session: true } }));
          setRestart(null);
          if (token.mfa_required) {
            setFactors(token.factors ?? []);
            setMfa('pending');
            return;
          }
          if (token.mfa_enrollment_required) {
            setMfa('enrol');
            await refresh();
            route(SECURITY_PAGE);
            return;
          }
          setMfa(null);
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

/** Six digits, a space allowed between the halves (the API's pattern, so the page says what it would refuse). */
export const TOTP_SHAPE = /^[ ]*[0-9]{3}[ ]?[0-9]{3}[ ]*$/;
/** Twelve letters and digits, spaces and hyphens anywhere (`xxxx-xxxx-xxxx`; the API's pattern). */
const RECOVERY_SHAPE = /^[ -]*(?:[0-9A-Za-z][ -]*){12}$/;

/**
 * The second step of a sign-in with two-factor: the code of an authenticator app, or (switched
 * to) one of the recovery codes. `POST /login/mfa` with the session cookie of the first step; the
 * answer renews the cookie at `aal2`.
 */
function SecondStep({ factors, next, onRestart }: { factors: FactorNames; next: string; onRestart: (why: string | null) => void }) {
  const { refresh, setMfa } = useSession();
  const { route } = useLocation();
  const [recovery, setRecovery] = useState(false);
  const [code, setCode] = useState('');
  const apps = factors.filter((f) => f.type === 'totp').map((f) => f.name);

  return (
    <Page title="Two-factor sign-in">
      <p>
        {recovery ? (
          'Enter one of the recovery codes you saved when you set up two-factor sign-in. Each code works once.'
        ) : (
          <>
            Open your authenticator app{apps.length > 0 && <> ({apps.map((n, i) => [i > 0 && ', ', <strong key={n}>{n}</strong>])})</>} and enter the
            6-digit code it shows for this account.
          </>
        )}
      </p>
      <Form
        key={recovery ? 'recovery' : 'totp'}
        submit="Verify"
        busy="Verifying…"
        quiet
        label="Two-factor code"
        fieldFor={{ mfa_failed: 'code', rate_limited: 'code' }}
        explain={(e) =>
          e.code === 'mfa_failed'
            ? recovery
              ? 'That recovery code is wrong or was used already.'
              : 'That code is wrong or was used already. Wait for the app to show a new one and enter that.'
            : undefined
        }
        onSubmit={async () => {
          if (recovery ? !RECOVERY_SHAPE.test(code) : !TOTP_SHAPE.test(code)) {
            throw fieldError('code', recovery ? 'A recovery code has 12 letters and digits, like abcd-efgh-2345.' : 'Enter the 6 digits your app shows.');
          }
          let token: { password_change_required?: boolean };
          try {
            token = await ok(api.POST('/login/mfa', { body: { code: code.trim() } }));
          } catch (e) {
            // The first step's session ended (10 minutes passed, or it was signed out): start again.
            if (e instanceof ApiError && e.status === 401 && e.code !== 'mfa_failed') {
              onRestart('The sign-in took too long. Enter your email and password again.');
              return;
            }
            throw e;
          }
          setMfa(null);
          await refresh();
          route(token.password_change_required ? '/account/password' : next);
        }}
        actions={
          <button
            type="button"
            class="link"
            onClick={() => {
              setRecovery(!recovery);
              setCode('');
              requestAnimationFrame(() => document.getElementById('field-code')?.focus());
            }}
          >
            {recovery ? 'Use the authenticator app' : 'Use a recovery code'}
          </button>
        }
      >
        {recovery ? (
          <Field
            name="code"
            label="Recovery code"
            autoComplete="off"
            autoCapitalize="none"
            spellcheck={false}
            maxLength={32}
            required
            value={code}
            onValue={setCode}
          />
        ) : (
          <Field
            name="code"
            label="Code from your app"
            autoComplete="one-time-code"
            inputMode="numeric"
            maxLength={7}
            required
            value={code}
            onValue={setCode}
            hint="A new code every 30 seconds."
          />
        )}
      </Form>
      <p class="links">
        <button
          type="button"
          class="link"
          onClick={async () => {
            // The first step's session may still call POST /logout; a refusal changes nothing here.
            await ok(api.POST('/logout')).catch(() => undefined);
            onRestart(null);
          }}
        >
          Cancel and sign in again
        </button>
        {' · '}
        Lost your device and your recovery codes? An administrator can reset your two-factor sign-in.
      </p>
    </Page>
  );
}
