import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, ApiError, ok, type Schemas } from '../api';
import { browserSupportsWebAuthnAutofill, cancelAutofill, CeremonyError, passkeysSupported, secondStepWithPasskey, signInWithPasskey, type LoginAnswer } from '../passkeys';
import { registrationOpen, SECURITY_PAGE, useSession } from '../session';
import { Field, Form, Page, Spinner } from '../ui';
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
  const [factors, setFactorsState] = useState<FactorNames>(storedFactors);
  const setFactors = (list: FactorNames) => {
    storeFactors(list);
    setFactorsState(list);
  };
  const [restart, setRestart] = useState<string | null>(null);
  const [passkeyBusy, setPasskeyBusy] = useState(false);
  const [passkeyError, setPasskeyError] = useState<string | null>(null);
  // Bumped to arm the browser's passkey autofill again (after the button's ceremony, or a refusal).
  const [armed, setArmed] = useState(0);
  const pending = mfa === 'pending';

  async function signedIn(token: LoginAnswer) {
    storeFactors([]);
    setMfa(null);
    await refresh();
    route(token.password_change_required ? '/account/password' : safeNext(query.next));
  }

  // The browser's autofill offers this site's passkeys in the email field (conditional
  // mediation), where it can; picking one signs in as the button does. Options are fetched fresh
  // every 4 minutes, as a challenge lives 5.
  useEffect(() => {
    if (pending || !passkeysSupported()) return;
    let live = true;
    const renew = setTimeout(() => setArmed((n) => n + 1), 4 * 60_000);
    const field = () => document.getElementById('field-email');
    const again = () => setArmed((n) => n + 1);
    async function arm() {
      if (!(await browserSupportsWebAuthnAutofill().catch(() => false)) || !live) return;
      try {
        const token = await signInWithPasskey(true);
        if (live) await signedIn(token);
      } catch (e) {
        // Stopped by this page (the button took over, or it moved on), no options to be had, or
        // passkeys are not for this address: the autofill stays quiet.
        if (!live || (e instanceof CeremonyError && e.kind !== 'failed')) return;
        if (e instanceof ApiError) {
          // The service refused the passkey chosen (or asked to wait): said, and offered again.
          if (!e.response?.url.endsWith('/login/passkey')) return;
          setPasskeyError(passkeyMessage(e));
          if (e.status === 401) again();
          return;
        }
        if (!(e instanceof CeremonyError)) return;
        // The browser's own prompt was cancelled or failed (it said so): offered again when the
        // person comes back to the field.
        field()?.addEventListener('focus', again, { once: true });
      }
    }
    void arm();
    return () => {
      live = false;
      clearTimeout(renew);
      field()?.removeEventListener('focus', again);
      cancelAutofill();
    };
  }, [pending, armed]);

  // The password was right and a code is owed (also after a reload, when the API says so).
  if (pending) {
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
          await signedIn(token);
        }}
      >
        {/* "webauthn": the browser may offer a passkey here as it offers saved passwords. */}
        <Field name="email" label="Email" type="email" autoComplete="username webauthn" required value={email} onValue={setEmail} />
        <Field name="password" label="Password" type="password" autoComplete="current-password" required value={password} onValue={setPassword} />
      </Form>
      {passkeysSupported() && (
        <div class="passkey-sign-in">
          <p class="muted">Or, with a passkey you added to your account, sign in without your email and password.</p>
          <button
            type="button"
            disabled={passkeyBusy}
            onClick={async () => {
              setPasskeyBusy(true);
              setPasskeyError(null);
              setRestart(null);
              try {
                await signedIn(await signInWithPasskey());
              } catch (e) {
                if (!(e instanceof CeremonyError && e.aborted)) setPasskeyError(passkeyMessage(e));
                setPasskeyBusy(false);
                setArmed((n) => n + 1);
              }
            }}
          >
            {passkeyBusy ? <Spinner label="Waiting for the passkey…" /> : 'Sign in with a passkey'}
          </button>
          <p class="form-message" role="alert">
            {passkeyError && <span class="error">{passkeyError}</span>}
          </p>
        </div>
      )}
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

/**
 * The factors the first step named (`{id, type, name}`: no secret), kept per tab for the second
 * step after a reload, which the API does not name them again for.
 */
const FACTORS_KEY = 'accounts.mfa-factors';
function storedFactors(): FactorNames {
  try {
    const list: unknown = JSON.parse(sessionStorage.getItem(FACTORS_KEY) ?? '[]');
    return Array.isArray(list) ? (list as FactorNames) : [];
  } catch {
    return [];
  }
}
function storeFactors(list: FactorNames) {
  try {
    if (list.length > 0) sessionStorage.setItem(FACTORS_KEY, JSON.stringify(list));
    else sessionStorage.removeItem(FACTORS_KEY);
  } catch {
    // Storage refused: after a reload both ways are offered.
  }
}

/** What a passkey sign-in that failed says: the service's refusal plainly, else what happened. */
function passkeyMessage(e: unknown): string {
  if (e instanceof ApiError && e.status === 401) return 'That passkey did not sign you in. Try again, or sign in with your password.';
  return e instanceof Error ? e.message : String(e);
}

/** Six digits, a space allowed between the halves (the API's pattern, so the page says what it would refuse). */
export const TOTP_SHAPE = /^[ ]*[0-9]{3}[ ]?[0-9]{3}[ ]*$/;
/** Twelve letters and digits, spaces and hyphens anywhere (`xxxx-xxxx-xxxx`; the API's pattern). */
const RECOVERY_SHAPE = /^[ -]*(?:[0-9A-Za-z][ -]*){12}$/;

/** The ways of the second step. */
type Way = 'passkey' | 'totp' | 'recovery';
const WAY_LINKS: Record<Way, string> = { passkey: 'Use a passkey', totp: 'Use the authenticator app', recovery: 'Use a recovery code' };

/**
 * The second step of a sign-in with two-factor: a passkey (when the account has one), the code of
 * an authenticator app, or (switched to) one of the recovery codes. `POST /login/mfa` with the
 * session cookie of the first step; the answer renews the cookie at `aal2`. The factors are those
 * the first step named (kept in the tab for a reload); when they are not known (storage refused),
 * the code and the passkey are both offered, the code first.
 */
function SecondStep({ factors, next, onRestart }: { factors: FactorNames; next: string; onRestart: (why: string | null) => void }) {
  const { refresh, setMfa } = useSession();
  const { route } = useLocation();
  const known = factors.length > 0;
  const apps = factors.filter((f) => f.type === 'totp').map((f) => f.name);
  const passkeys = factors.filter((f) => f.type === 'webauthn').map((f) => f.name);
  const ways: Way[] = [
    ...(passkeysSupported() && (!known || passkeys.length > 0) ? (['passkey'] as const) : []),
    ...(!known || apps.length > 0 ? (['totp'] as const) : []),
    'recovery',
  ];
  const [way, setWay] = useState<Way>(known && ways.includes('passkey') ? 'passkey' : ways.includes('totp') ? 'totp' : ways[0]);
  const [code, setCode] = useState('');
  const recovery = way === 'recovery';
  const names = (list: string[]) => list.length > 0 && <> ({list.map((n, i) => [i > 0 && ', ', <strong key={n}>{n}</strong>])})</>;

  async function done(token: LoginAnswer) {
    storeFactors([]);
    setMfa(null);
    await refresh();
    route(token.password_change_required ? '/account/password' : next);
  }

  /** The first step's session ended (10 minutes passed, or it was signed out): start again. */
  function expired(e: unknown): boolean {
    if (e instanceof ApiError && e.status === 401 && e.code !== 'mfa_failed') {
      onRestart('The sign-in took too long. Enter your email and password again.');
      return true;
    }
    return false;
  }

  const otherWays = ways
    .filter((w) => w !== way)
    .map((w) => (
      <button
        key={w}
        type="button"
        class="link"
        onClick={() => {
          setWay(w);
          setCode('');
          requestAnimationFrame(() => document.querySelector<HTMLElement>(w === 'passkey' ? 'form[aria-label="Two-factor passkey"] [type="submit"]' : '#field-code')?.focus());
        }}
      >
        {WAY_LINKS[w]}
      </button>
    ));

  return (
    <Page title="Two-factor sign-in">
      <p>
        {way === 'passkey' ? (
          <>Use your passkey{names(passkeys)} to finish signing in: your device asks for your fingerprint, face, PIN or security key.</>
        ) : recovery ? (
          'Enter one of the recovery codes you saved when you set up two-factor sign-in. Each code works once.'
        ) : (
          <>Open your authenticator app{names(apps)} and enter the 6-digit code it shows for this account.</>
        )}
      </p>
      {way === 'passkey' ? (
        <Form
          key="passkey"
          submit="Use a passkey"
          busy="Waiting for the passkey…"
          quiet
          label="Two-factor passkey"
          explain={(e) =>
            e.code === 'mfa_failed'
              ? 'That passkey did not sign you in. Try again, or use another way.'
              : e.code === 'conflict'
                ? 'This account has no passkey. Use your authenticator app or a recovery code.'
                : undefined
          }
          actions={otherWays}
          onSubmit={async () => {
            let token: LoginAnswer;
            try {
              token = await secondStepWithPasskey();
            } catch (e) {
              if (expired(e)) return;
              throw e;
            }
            await done(token);
          }}
        />
      ) : (
        <Form
          key={way}
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
            let token: LoginAnswer;
            try {
              token = await ok(api.POST('/login/mfa', { body: { code: code.trim() } }));
            } catch (e) {
              if (expired(e)) return;
              throw e;
            }
            await done(token);
          }}
          actions={otherWays}
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
      )}
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
