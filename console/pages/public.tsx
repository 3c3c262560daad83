import './public.css';
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, ApiError, ok } from '../api';
import { registrationOpen, useSession } from '../session';
import { ActionButton, Field, Form, Page, Spinner } from '../ui';

/**
 * The pages a person reaches signed out: asking for a password link, registering, and the pages
 * the mailed links open (set a password, verify a registration, confirm or revert an email change).
 */

/**
 * The `token` of a mailed link, kept in the page's state and taken out of the address bar at once,
 * so it is not left in the history or shown over a shoulder.
 */
function useLinkToken(): string | undefined {
  const { query } = useLocation();
  const [token] = useState(() => (typeof query.token === 'string' && query.token.trim() !== '' ? query.token.trim() : undefined));
  useEffect(() => {
    if (location.search) history.replaceState(null, '', location.pathname);
  }, []);
  return token;
}

/** A refusal of the repeat field, shaped as the API's, so Form puts it under that field. */
function differs(): ApiError {
  return new ApiError(400, {
    error: 'The two passwords differ.',
    code: 'validation_failed',
    request_id: '',
    details: [{ path: '/body/repeat', message: 'This is not the same as the password above. Type it again.' }],
  });
}

const PASSWORD_HINT = 'At least 8 characters. A few unrelated words make a good one.';

/** A page opened from a mailed link that lost its token on the way. */
function Incomplete({ children }: { children: ComponentChildren }) {
  return (
    <Page title="This link is incomplete">
      <p class="banner error" role="alert">
        The address you opened has no token in it, so it cannot be used. Mail programs sometimes cut long links: copy the whole link from the mail
        into the address bar.
      </p>
      <p>{children}</p>
    </Page>
  );
}

/** Says that a link no longer works, and what to do instead. */
function Invalid({ children }: { children: ComponentChildren }) {
  return (
    <Page title="This link no longer works">
      <p class="banner error" role="alert">
        This link does not work any more: it has been used already, it has expired, or it was copied incompletely.
      </p>
      <p>{children}</p>
    </Page>
  );
}

type Outcome = { state: 'ask' } | { state: 'working' } | { state: 'done' } | { state: 'invalid' } | { state: 'failed'; error: ApiError };

/**
 * The link's token and its call (verify, confirm, revert): posted as the page opens, or with
 * `onOpen: false` only when `run` is called (a click: undoing an email change asks first; a
 * refusal other than the link's is thrown to the button then, which says it). `after` runs once
 * the call went through, before the page says so. An `invalid_token` answer is the link's "no
 * longer works".
 */
function useLinkPost(
  call: (token: string) => Promise<unknown>,
  { after, onOpen = true }: { after?: () => Promise<unknown>; onOpen?: boolean } = {},
): { token: string | undefined; outcome: Outcome; run: () => Promise<void> } {
  const token = useLinkToken();
  const [outcome, setOutcome] = useState<Outcome>({ state: onOpen ? 'working' : 'ask' });
  const alive = useRef(true);
  async function post(): Promise<Outcome> {
    try {
      await call(token!);
      await after?.().catch(() => undefined);
      return { state: 'done' };
    } catch (e) {
      const error = e instanceof ApiError ? e : new ApiError(0, { error: String(e), code: 'internal_error', request_id: '' });
      return error.code === 'invalid_token' ? { state: 'invalid' } : { state: 'failed', error };
    }
  }
  async function run() {
    if (!token) return;
    if (onOpen) setOutcome({ state: 'working' });
    const result = await post();
    if (!onOpen && result.state === 'failed') throw result.error;
    if (alive.current) setOutcome(result);
  }
  useEffect(() => {
    if (onOpen) void run();
    return () => {
      alive.current = false;
    };
  }, []);
  return { token, outcome, run };
}

function Working({ title, label }: { title: string; label: string }) {
  return (
    <Page title={title}>
      <p class="working" role="status">
        <Spinner label={label} />
      </p>
    </Page>
  );
}

function Failed({ title, error, retry }: { title: string; error: ApiError; retry: () => void }) {
  return (
    <Page title={title}>
      <p class="banner error" role="alert">
        {error.message}
      </p>
      <p>
        <button type="button" onClick={retry}>
          Try again
        </button>
      </p>
    </Page>
  );
}

/** A link page's last word: what was done (a success notice) and where to go next. */
function Done({ title, next: [href, label], children }: { title: string; next: [href: string, label: string]; children: ComponentChildren }) {
  return (
    <Page title={title}>
      <p class="notice success" role="status">
        {children}
      </p>
      <p class="links">
        <a class="button primary" href={href}>
          {label}
        </a>
      </p>
    </Page>
  );
}

/**
 * What a link page (verify, confirm, revert) shows until its call has gone through: the link
 * without its token (`incomplete`: what to do instead), the call under way (`working`: its title),
 * its failure with a retry, a link that no longer works (`invalid`: what to do instead); null
 * once it is done, or while the page asks first.
 */
function linkState(
  { token, outcome, run }: ReturnType<typeof useLinkPost>,
  { working, incomplete, invalid }: { working: string; incomplete: ComponentChildren; invalid: ComponentChildren },
) {
  if (!token) return <Incomplete>{incomplete}</Incomplete>;
  if (outcome.state === 'working') return <Working title={working} label={`${working}…`} />;
  if (outcome.state === 'failed') return <Failed title={working} error={outcome.error} retry={run} />;
  if (outcome.state === 'invalid') return <Invalid>{invalid}</Invalid>;
  return null;
}

export function ForgotPassword() {
  const [email, setEmail] = useState('');
  const [sent, setSent] = useState(false);

  if (sent) {
    return (
      <Page title="Check your mail">
        <p class="notice" role="status">
          If an account uses that address, we have sent it a link to set a new password. The link works once, for a limited time.
        </p>
        <p>Nothing arrived after a few minutes? Look in the spam folder, check the address, and ask again.</p>
        <p class="links">
          <a href="/sign-in">Back to sign in</a>
          {' · '}
          <button type="button" class="link" onClick={() => setSent(false)}>
            Ask again
          </button>
        </p>
      </Page>
    );
  }

  return (
    <Page title="Forgot your password?">
      <p>Give the email address of your account and we will mail it a link to set a new password.</p>
      <Form
        submit="Send me a link"
        busy="Sending…"
        quiet
        onSubmit={async () => {
          await ok(api.POST('/password/reset', { body: { email: email.trim() } }));
          setSent(true);
        }}
      >
        <Field name="email" label="Email" type="email" autoComplete="email" required value={email} onValue={setEmail} />
      </Form>
      <p class="links">
        <a href="/sign-in">Back to sign in</a>
      </p>
    </Page>
  );
}

export function ResetPassword() {
  const token = useLinkToken();
  const { me, refresh } = useSession();
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');
  const [state, setState] = useState<'form' | 'done' | 'invalid'>('form');

  if (!token) {
    return (
      <Incomplete>
        <a href="/forgot-password">Ask for a new link</a> to set your password.
      </Incomplete>
    );
  }
  if (state === 'invalid') {
    return (
      <Invalid>
        Links to set a password work once, for a limited time, and a newer link replaces an older one. <a href="/forgot-password">Ask for a new link</a>
        .
      </Invalid>
    );
  }
  if (state === 'done') {
    return (
      <Page title="Your password is set">
        <p class="notice success" role="status">
          Your password is set. Sign in with it.
        </p>
        <p class="muted">For your safety, every place where this account was signed in has been signed out.</p>
        <p class="links">
          <a class="button primary" href="/sign-in">
            Sign in
          </a>
        </p>
      </Page>
    );
  }

  return (
    <Page title="Set your password">
      <p>Choose the password you will sign in with.</p>
      <Form
        submit="Set password"
        busy="Setting password…"
        quiet
        fieldFor={{ weak_password: 'password' }}
        onSubmit={async () => {
          if (password !== repeat) throw differs();
          try {
            await ok(api.POST('/password/reset/confirm', { body: { token, password } }));
          } catch (e) {
            if (e instanceof ApiError && e.code === 'invalid_token') {
              setState('invalid');
              return;
            }
            throw e;
          }
          // The API ended every login session of the link's account: if that was this browser's, it shows signed out.
          if (me) await refresh().catch(() => undefined);
          setState('done');
        }}
      >
        <Field name="password" label="New password" type="password" autoComplete="new-password" required value={password} onValue={setPassword} hint={PASSWORD_HINT} />
        <Field name="repeat" label="Repeat the new password" type="password" autoComplete="new-password" required value={repeat} onValue={setRepeat} />
      </Form>
    </Page>
  );
}

export function SignUp() {
  const [form, setForm] = useState({ name: '', email: '', password: '', repeat: '' });
  const [sentTo, setSentTo] = useState<string | null>(null);
  const [closed, setClosed] = useState(!registrationOpen);
  const set = (k: keyof typeof form) => (v: string) => setForm({ ...form, [k]: v });

  if (closed) {
    return (
      <Page title="Create an account">
        <p class="notice" role="status">
          Registration is not open here: accounts are made by an administrator. Ask yours for one.
        </p>
        <p class="links">
          <a href="/sign-in">Sign in</a>
        </p>
      </Page>
    );
  }
  if (sentTo) {
    return (
      <Page title="Check your mail">
        <p class="notice" role="status">
          Check your mail: we sent a link to <strong class="address">{sentTo}</strong> to confirm the address.
        </p>
        <p>Follow the link within 24 hours, then sign in. Nothing arrived? Look in the spam folder, or register again.</p>
        <p class="links">
          <a href="/sign-in">Sign in</a>
        </p>
      </Page>
    );
  }

  return (
    <Page title="Create an account">
      <Form
        submit="Create account"
        busy="Creating account…"
        quiet
        fieldFor={{ weak_password: 'password', conflict: 'name' }}
        explain={(e) => (e.code === 'conflict' ? 'That user name is taken: choose another.' : undefined)}
        onSubmit={async () => {
          if (form.password !== form.repeat) throw differs();
          const email = form.email.trim();
          try {
            await ok(api.POST('/register', { body: { name: form.name.trim(), email, password: form.password } }));
          } catch (e) {
            if (e instanceof ApiError && e.status === 404) {
              setClosed(true);
              return;
            }
            throw e;
          }
          setSentTo(email);
        }}
      >
        <Field name="name" label="User name" autoComplete="username" required value={form.name} onValue={set('name')} hint="Others see this name." />
        <Field name="email" label="Email" type="email" autoComplete="email" required value={form.email} onValue={set('email')} hint="We send a link to it to confirm it is yours." />
        <Field name="password" label="Password" type="password" autoComplete="new-password" required value={form.password} onValue={set('password')} hint={PASSWORD_HINT} />
        <Field name="repeat" label="Repeat the password" type="password" autoComplete="new-password" required value={form.repeat} onValue={set('repeat')} />
      </Form>
      <p class="links">
        Already have an account? <a href="/sign-in">Sign in</a>
      </p>
    </Page>
  );
}

export function VerifyEmail() {
  const link = useLinkPost((t) => ok(api.POST('/register/verify', { body: { token: t } })));
  const unfinished = linkState(link, {
    working: 'Confirming your address',
    incomplete: <>Or <a href="/sign-up">register again</a> to get a new link.</>,
    invalid: <>If you used it already, your address is confirmed: <a href="/sign-in">sign in</a>. If it expired, your registration was removed: <a href="/sign-up">register again</a> and we will send a new link.</>,
  });
  if (unfinished) return unfinished;
  return (
    <Done title="Address confirmed" next={['/sign-in', 'Sign in']}>
      Your address is confirmed. You can sign in now.
    </Done>
  );
}

export function ConfirmEmail() {
  const { me, refresh } = useSession();
  // Signed in (or not known yet): fetch the profile again, so it shows the new address.
  const link = useLinkPost((t) => ok(api.POST('/user/me/email/confirm', { body: { token: t } })), {
    after: async () => (me !== null ? refresh() : undefined),
  });
  const unfinished = linkState(link, {
    working: 'Confirming your new address',
    incomplete: <>Or change the address again on your <a href="/account">profile</a> to get a new link.</>,
    invalid: <>A confirmation link works once, for 24 hours, and a newer change replaces it. Your address has not changed: sign in with the old one and change it again on your <a href="/account">profile</a> to get a new link.</>,
  });
  if (unfinished) return unfinished;
  return (
    <Done title="New address confirmed" next={me ? ['/account', 'Go to your profile'] : ['/sign-in', 'Sign in']}>
      Your new address is confirmed; sign in with it from now on.
    </Done>
  );
}

export function RevertEmail() {
  const { me, signOut } = useSession();
  // This browser's session ends too: forget it here (logout answers 204 either way).
  const link = useLinkPost((t) => ok(api.POST('/user/me/email/revert', { body: { token: t } })), {
    onOpen: false,
    after: async () => (me !== null ? signOut() : undefined),
  });
  const unfinished = linkState(link, {
    working: 'Undoing the email change',
    incomplete: <>The link is in the mail we sent to your old address about the change. If you cannot open it, <a href="/forgot-password">set a new password</a> as soon as you can.</>,
    invalid: <>A link to undo an email change works once, for 7 days. If the address was changed without you, <a href="/forgot-password">set a new password</a> (if you still receive mail at the account's address) or ask an administrator for help.</>,
  });
  if (unfinished) return unfinished;
  if (link.outcome.state === 'done') {
    return (
      <Page title="Your old address is back">
        <p class="notice success" role="status">
          Your old address is back and every session has ended. The password no longer works: we have mailed a link to set a new one to your old
          address.
        </p>
        <p class="links">
          <a href="/forgot-password">Ask for another link</a> if that one does not come or has expired
          {' · '}
          <a href="/sign-in">Sign in</a>
        </p>
        <p class="muted">API tokens of the account no longer work either: make new ones once you are signed in.</p>
      </Page>
    );
  }

  return (
    <Page title="Undo the email change">
      <p>
        Someone asked to change the email address of your account. If that was you, there is nothing to do here: close this page. If it was not,
        put your old address back:
      </p>
      <ul class="consequences">
        <li>the account's address goes back to the one this link was mailed to, and any change still waiting for confirmation is dropped;</li>
        <li>every session of the account ends, on every device, and every API token stops working;</li>
        <li>the password stops working, and we mail you a link to set a new one.</li>
      </ul>
      <p>
        <ActionButton
          danger
          busy="Putting your old address back…"
          onClick={link.run}
        >
          Put my old address back and sign out everywhere
        </ActionButton>
      </p>
    </Page>
  );
}
