import './account.css';
import { useEffect, useRef, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, ApiError, ok, type Schemas } from '../api';
import { useSession } from '../session';
import { TokenTable } from '../token-table';
import { ActionButton, Checkbox, CopyButton, CurrentPassword, ErrorNote, Field, Form, Page, Placeholder, Select, ShownOnce, TextArea, Time, useLoad, TableRegion, TableHead } from '../ui';

/**
 * The signed-in person's own pages: password, API tokens, sessions and settings (Keycloak's
 * account console and GitHub's settings pages are the model).
 */

/** A refusal made in the page, shown under the field `name` as the API's own would be. */
export function fieldError(name: string, message: string): ApiError {
  return new ApiError(400, { error: message, code: 'validation_failed', request_id: '', details: [{ path: `/body/${name}`, message }] });
}

// ---------------------------------------------------------------------------------------------
// Password

export function Password(_props: { id?: string }) {
  const { me, refresh } = useSession();
  const { route } = useLocation();
  const user = me!;
  const forced = user.force_password_change;
  const [current, setCurrent] = useState('');
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');

  return (
    <Page title={forced ? 'Choose a new password' : 'Password'}>
      {forced ? (
        <p class="notice">
          <strong>Your administrator requires a new password before you continue.</strong> Choose one only you know; the rest of your account opens
          once it is set.
        </p>
      ) : (
        <p class="muted">
          Changing your password signs you out everywhere else: every other browser session ends. Your API tokens keep working; revoke them on the{' '}
          <a href="/account/tokens">API tokens</a> page if you need to.
        </p>
      )}
      <Form
        submit="Change password"
        busy="Changing password…"
        label="Change password"
        fieldFor={{ wrong_password: 'current_password', weak_password: 'password' }}
        onSubmit={async () => {
          if (current === '') throw fieldError('current_password', forced ? 'Enter the password you signed in with.' : 'Enter your current password.');
          if (password === '') throw fieldError('password', 'Enter a new password.');
          if (password !== repeat) throw fieldError('repeat', 'The two new passwords are not the same.');
          // A forced change still proves the person knows the password that works (the session may not be theirs).
          await ok(api.POST('/user/me/password', { body: { password, current_password: current } }));
          // The change ended every login token, this session's too: sign in again with the new password.
          try {
            await ok(api.POST('/login', { body: { email: user.email, password, set_session: true } }));
          } finally {
            await refresh();
          }
          setCurrent('');
          setPassword('');
          setRepeat('');
          if (forced) {
            route('/account');
            return;
          }
          return 'Password changed. Your other sessions were signed out.';
        }}
      >
        {/* A hidden user name lets a password manager file the new password under the right account. */}
        <input type="text" name="username" autoComplete="username" value={user.email} readOnly hidden />
        <CurrentPassword value={current} onValue={setCurrent} hint={forced ? 'The password you signed in with.' : undefined} />
        <Field
          name="password"
          label="New password"
          type="password"
          autoComplete="new-password"
          required
          value={password}
          onValue={setPassword}
          hint="At least 8 characters. A few unrelated words make a password that is long, easy to remember and hard to guess."
        />
        <Field name="repeat" label="Repeat the new password" type="password" autoComplete="new-password" required value={repeat} onValue={setRepeat} />
      </Form>
    </Page>
  );
}

// ---------------------------------------------------------------------------------------------
// API tokens

type Scope = Schemas['Scope'];
type NewUserToken = Schemas['NewUserToken'];

const SCOPES: Array<[Scope, string]> = [
  ['api', 'Everything you can do yourself, reading and changing.'],
  ['api:read', 'Read only: GET and HEAD requests; any change is refused.'],
  ['api:write', 'Reading and changing (the same as api; for tools that ask for it by name).'],
];

const EXPIRY: Array<[string, string]> = [
  ['7', '7 days'],
  ['30', '30 days'],
  ['90', '90 days'],
  ['365', '1 year'],
  ['custom', 'Custom date…'],
];

const DAY = 86_400_000;

/** `YYYY-MM-DD` of a local date `days` from today. */
function localDate(days: number): string {
  const d = new Date(Date.now() + days * DAY);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** The RFC 3339 `expires` for the choice made, or a refusal under the date field. */
function expiresFor(expiry: string, date: string): string {
  if (expiry !== 'custom') {
    // A year is the longest the service allows by default: stop a minute short of it, so a
    // browser clock a little ahead of the server's is not refused.
    const days = Number(expiry);
    return new Date(Date.now() + days * DAY - (days >= 365 ? 60_000 : 0)).toISOString();
  }
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw fieldError('expires', 'Choose the date the token stops working.');
  // The end of that day, where the person is.
  const end = new Date(`${date}T23:59:59`);
  if (Number.isNaN(end.getTime())) throw fieldError('expires', 'That is not a date.');
  if (end.getTime() <= Date.now()) throw fieldError('expires', 'Choose a date after today.');
  return end.toISOString();
}

export function Tokens(_props: { id?: string }) {
  const list = useLoad(() => ok(api.GET('/user/me/token')));
  const [created, setCreated] = useState<NewUserToken | null>(null);
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<Set<Scope>>(new Set(['api']));
  const [scopeError, setScopeError] = useState<string | null>(null);
  const [expiry, setExpiry] = useState('90');
  const [date, setDate] = useState(localDate(30));
  const firstScope = useRef<HTMLFieldSetElement>(null);

  const tokens = list.data;
  return (
    <Page title="API tokens" wide>
      <p class="muted">
        An API token lets a script or another program call the API as you, with <code>Authorization: Bearer &lt;token&gt;</code>. Treat it like a
        password. Signing out or changing your password does not end API tokens; delete the ones you no longer use.
      </p>

      {created && (
        <ShownOnce
          value={created}
          headingId="new-token-heading"
          heading={<>Your new token “{created.name}”</>}
          actions={
            <>
              <CopyButton text={created.token} label="Copy token" />
              <button type="button" class="primary" onClick={() => setCreated(null)}>
                I have copied it
              </button>
            </>
          }
        >
          <p>
            <strong>Copy it now: it will not be shown again.</strong> If you lose it, delete it and create another.
          </p>
          <code class="token-secret">{created.token}</code>
        </ShownOnce>
      )}

      <h2>Your tokens</h2>
      <ErrorNote error={list.error} />
      {tokens === undefined ? (
        !list.error && <Placeholder rows={1} />
      ) : tokens.length === 0 ? (
        <p class="muted">You have no API tokens.</p>
      ) : (
        <>
          <TokenTable
            tokens={tokens}
            label="Your API tokens"
            question={(t) => `Delete the token “${t.name}”? Programs using it will be refused from their next request.`}
            onDelete={async (t) => {
              try {
                await ok(api.DELETE('/user/me/token/{name}', { params: { path: { name: t.name } } }));
              } catch (e) {
                // Already gone (deleted elsewhere, or expired): the list will say so.
                if (!(e instanceof ApiError && e.status === 404)) throw e;
              }
              if (created?.name === t.name) setCreated(null);
              await list.reload();
            }}
          />
          <ActionButton
            danger
            busy="Revoking…"
            confirm="Revoke every API token you have? Every program using one will be refused from its next request. Your browser sessions stay signed in."
            confirmLabel="Revoke all API tokens"
            onClick={async () => {
              await ok(api.POST('/user/me/revoke', { params: { query: { api_only: '1' } } }));
              setCreated(null);
              await list.reload();
            }}
          >
            Revoke all API tokens
          </ActionButton>
        </>
      )}

      <h2 id="create-token-heading">Create a token</h2>
      <Form
        submit="Create token"
        busy="Creating…"
        label="Create a token"
        fieldFor={{ conflict: 'name' }}
        onSubmit={async () => {
          setScopeError(null);
          if (name.trim() === '') throw fieldError('name', 'Give the token a name, so you know later what it is for.');
          if (scopes.size === 0) {
            setScopeError('Choose at least one scope.');
            firstScope.current?.querySelector('input')?.focus();
            return;
          }
          const expires = expiresFor(expiry, date);
          try {
            const made = await ok(
              api.POST('/user/me/token', {
                body: { name: name.trim(), scopes: SCOPES.map(([s]) => s).filter((s) => scopes.has(s)), expires },
              }),
            );
            setCreated(made);
          } catch (e) {
            // The API's sentence says what range is allowed; its detail only "is out of range".
            if (e instanceof ApiError && e.fieldMessages().expires) throw fieldError('expires', e.message);
            throw e;
          }
          setName('');
          setScopes(new Set(['api']));
          setExpiry('90');
          await list.reload();
        }}
      >
        <Field
          name="name"
          label="Name"
          required
          maxLength={100}
          value={name}
          onValue={setName}
          hint="What the token is for, such as “deploys from CI” or “laptop backup script”."
        />
        <fieldset class="scopes" ref={firstScope} aria-describedby={scopeError ? 'scopes-error' : undefined}>
          <legend>Scopes</legend>
          {SCOPES.map(([scope, what]) => (
            <Checkbox
              key={scope}
              name={`scope-${scope}`}
              label={scope}
              hint={what}
              checked={scopes.has(scope)}
              onChecked={(on) => {
                const next = new Set(scopes);
                if (on) next.add(scope);
                else next.delete(scope);
                setScopes(next);
                setScopeError(null);
              }}
            />
          ))}
          {scopeError && (
            <p class="field-error" id="scopes-error" role="alert">
              {scopeError}
            </p>
          )}
        </fieldset>
        <Select
          name={expiry === 'custom' ? 'expiry' : 'expires'}
          label="Expires after"
          value={expiry}
          onValue={setExpiry}
          options={EXPIRY}
        />
        {expiry === 'custom' && (
          <Field
            name="expires"
            label="Expiry date"
            type="date"
            required
            min={localDate(1)}
            value={date}
            onValue={setDate}
            hint="The token stops working at the end of this day."
          />
        )}
      </Form>
    </Page>
  );
}

// ---------------------------------------------------------------------------------------------
// Sessions

/** "Chrome on Linux" from a User-Agent header, or the program's name, or "Unknown device". */
export function deviceOf(ua: string | null | undefined): string {
  if (!ua) return 'Unknown device';
  const browser = /Edg(e|A|iOS)?\//.test(ua)
    ? 'Edge'
    : /OPR\/|Opera/.test(ua)
      ? 'Opera'
      : /Firefox\/|FxiOS\//.test(ua)
        ? 'Firefox'
        : /SamsungBrowser\//.test(ua)
          ? 'Samsung Internet'
          : /(Chrome|Chromium|CriOS)\//.test(ua)
            ? 'Chrome'
            : /Safari\//.test(ua) && /Version\//.test(ua)
              ? 'Safari'
              : undefined;
  const os = /Windows/.test(ua)
    ? 'Windows'
    : /iPhone|iPad|iPod/.test(ua)
      ? 'iOS'
      : /Android/.test(ua)
        ? 'Android'
        : /CrOS/.test(ua)
          ? 'ChromeOS'
          : /Mac OS X|Macintosh/.test(ua)
            ? 'macOS'
            : /Linux|X11/.test(ua)
              ? 'Linux'
              : undefined;
  if (browser && os) return `${browser} on ${os}`;
  if (browser) return browser;
  if (os) return `A browser on ${os}`;
  // curl/8.5.0, python-requests/2.31: the program's name.
  const program = /^([A-Za-z][\w.-]*)(\/|\s|$)/.exec(ua);
  return program ? program[1] : 'Unknown device';
}

export function Sessions(_props: { id?: string }) {
  const list = useLoad(() => ok(api.GET('/user/me/session')));
  const sessions = list.data && [...list.data].sort((a, b) => Number(b.current) - Number(a.current));
  const others = sessions?.filter((s) => !s.current) ?? [];

  async function end(id: string) {
    try {
      await ok(api.DELETE('/user/me/session/{id}', { params: { path: { id } } }));
    } catch (e) {
      // Already ended or expired: what was asked is done.
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
  }

  return (
    <Page title="Sessions" wide>
      <p class="muted">
        The browsers and programs signed in to your account with your password. End any you do not recognise, then change your password. API tokens
        are listed on the <a href="/account/tokens">API tokens</a> page.
      </p>
      <ErrorNote error={list.error} />
      {sessions === undefined ? (
        !list.error && <Placeholder rows={3} />
      ) : (
        <>
          <TableRegion label="Your sessions">
            <table class="account-table">
              <TableHead columns={['Device', 'IP address', 'Signed in', 'Last active', 'Expires']} actions />
              <tbody>
                {sessions.map((s) => (
                  <tr key={s.id} class={s.current ? 'current' : undefined}>
                    <th scope="row">
                      <span title={s.user_agent ?? undefined}>{deviceOf(s.user_agent)}</span>
                      {s.current && (
                        <>
                          {' '}
                          <span class="tag current-tag">This session</span>
                        </>
                      )}
                    </th>
                    <td>{s.last_ipaddr ?? <span class="muted">unknown</span>}</td>
                    <td>
                      <Time value={s.created} />
                    </td>
                    <td>
                      <Time value={s.last_used} empty="not yet" />
                    </td>
                    <td>
                      <Time value={s.expires} />
                    </td>
                    <td class="row-actions">
                      {!s.current && (
                        <ActionButton
                          danger
                          label={`End session: ${deviceOf(s.user_agent)}, ${s.last_ipaddr ?? 'unknown address'}`}
                          busy="Ending…"
                          confirm={`End the session of ${deviceOf(s.user_agent)}${s.last_ipaddr ? ` at ${s.last_ipaddr}` : ''}? It will have to sign in again.`}
                          confirmLabel="End session"
                          onClick={async () => {
                            await end(s.id);
                            await list.reload();
                          }}
                        >
                          End
                        </ActionButton>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableRegion>
          {others.length > 0 ? (
            <ActionButton
              danger
              busy="Signing out…"
              confirm={`Sign out ${others.length === 1 ? 'the other session' : `all ${others.length} other sessions`}? This one stays signed in.`}
              confirmLabel="Sign out other sessions"
              onClick={async () => {
                try {
                  for (const s of others) await end(s.id);
                } finally {
                  await list.reload();
                }
              }}
            >
              Sign out all other sessions
            </ActionButton>
          ) : (
            <p class="muted">You are signed in nowhere else.</p>
          )}
        </>
      )}
    </Page>
  );
}

// ---------------------------------------------------------------------------------------------
// Settings

type SettingsObject = Record<string, unknown>;

const compact = (v: unknown) => JSON.stringify(v);
const pretty = (o: SettingsObject) => JSON.stringify(o, null, 2);

/** The JSON in `text`, or a refusal under the field `name`. */
function parseJson(name: string, text: string): unknown {
  if (text.trim() === '') throw fieldError(name, 'Enter a JSON value, such as "dark", 42, true or {"a": 1}.');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw fieldError(name, `This is not valid JSON: ${e instanceof Error ? e.message : String(e)}. A text value needs double quotes: "dark".`);
  }
}

export function Settings(_props: { id?: string }) {
  const list = useLoad(() => ok(api.GET('/user/me/settings')) as Promise<SettingsObject>);
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const [all, setAll] = useState('');
  const [allDirty, setAllDirty] = useState(false);
  const valueBox = useRef<HTMLDivElement>(null);
  const settings = list.data;

  // The whole-set editor follows what is stored, until the person starts editing it.
  useEffect(() => {
    if (settings && !allDirty) setAll(pretty(settings));
  }, [settings]);

  const keys = settings ? Object.keys(settings).sort() : [];

  return (
    <Page title="Settings" wide>
      <p class="muted">
        Preferences stored with your account for the programs you use (each a key and a JSON value). Programs read and write them through the API.
      </p>
      <ErrorNote error={list.error} />
      {settings === undefined ? (
        !list.error && <Placeholder rows={3} />
      ) : keys.length === 0 ? (
        <p class="muted">You have no settings.</p>
      ) : (
        <TableRegion label="Your settings">
          <table class="account-table">
            <TableHead columns={['Key', 'Value']} actions />
            <tbody>
              {keys.map((k) => (
                <tr key={k}>
                  <th scope="row" class="setting-key">
                    {k}
                  </th>
                  <td class="value-cell">
                    <code class="setting-value">{compact(settings[k])}</code>
                  </td>
                  <td class="row-actions">
                    <button
                      type="button"
                      aria-label={`Edit setting ${k}`}
                      onClick={() => {
                        setKey(k);
                        setValue(JSON.stringify(settings[k], null, 2));
                        valueBox.current?.scrollIntoView({ block: 'center' });
                        requestAnimationFrame(() => valueBox.current?.querySelector('textarea')?.focus());
                      }}
                    >
                      Edit
                    </button>{' '}
                    <ActionButton
                      danger
                      label={`Delete setting ${k}`}
                      busy="Deleting…"
                      confirm={`Delete the setting “${k}”?`}
                      confirmLabel="Delete setting"
                      onClick={async () => {
                        try {
                          await ok(api.DELETE('/user/me/settings/{key}', { params: { path: { key: k } } }));
                        } catch (e) {
                          if (!(e instanceof ApiError && e.status === 404)) throw e;
                        }
                        setAllDirty(false);
                        await list.reload();
                      }}
                    >
                      Delete
                    </ActionButton>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableRegion>
      )}

      <h2>Add or change one setting</h2>
      <Form
        submit="Save setting"
        busy="Saving…"
        label="Add or change one setting"
        onSubmit={async () => {
          const k = key.trim();
          if (k === '') throw fieldError('key', 'Enter a key.');
          if (k.includes('/')) throw fieldError('key', 'A key cannot contain “/”.');
          const v = parseJson('value', value);
          if (v === null) throw fieldError('value', 'null cannot be stored: delete the setting instead.');
          await ok(api.POST('/user/me/settings/{key}', { params: { path: { key: k } }, body: { [k]: v } }));
          setKey('');
          setValue('');
          setAllDirty(false);
          await list.reload();
          return `Saved “${k}”.`;
        }}
      >
        <Field name="key" label="Key" required maxLength={128} value={key} onValue={setKey} hint="Up to 128 characters, without “/”. An existing key is replaced." />
        <div ref={valueBox}>
          <TextArea name="value" label="Value (JSON)" rows={3} value={value} onValue={setValue} hint={<>For example "dark", 42, true, ["a", "b"] or {'{"size": 14}'}.</>} />
        </div>
      </Form>

      <h2>Edit all as JSON</h2>
      <Form
        submit="Save all settings"
        busy="Saving…"
        label="Edit all settings as JSON"
        actions={
          allDirty && settings ? (
            <button
              type="button"
              onClick={() => {
                setAll(pretty(settings));
                setAllDirty(false);
              }}
            >
              Undo my edits
            </button>
          ) : undefined
        }
        onSubmit={async () => {
          const parsed = parseJson('all', all);
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
            throw fieldError('all', 'The settings must be one JSON object: {"key": value, …}.');
          }
          const next = parsed as SettingsObject;
          const nulls = Object.keys(next).filter((k) => next[k] === null);
          if (nulls.length > 0) throw fieldError('all', `null cannot be stored (${nulls.join(', ')}): leave the key out to delete it.`);
          const slashed = Object.keys(next).filter((k) => k === '' || k.includes('/'));
          if (slashed.length > 0) throw fieldError('all', `A key must not be empty nor contain “/” (${slashed.map((k) => JSON.stringify(k)).join(', ')}).`);
          if (Object.keys(next).length === 0) {
            // The API replaces with at least one key; an empty set is every key deleted.
            const stored = (await ok(api.GET('/user/me/settings'))) as SettingsObject;
            for (const k of Object.keys(stored)) {
              try {
                await ok(api.DELETE('/user/me/settings/{key}', { params: { path: { key: k } } }));
              } catch (e) {
                if (!(e instanceof ApiError && e.status === 404)) throw e;
              }
            }
          } else {
            await ok(api.POST('/user/me/settings', { body: next }));
          }
          setAllDirty(false);
          await list.reload();
          return Object.keys(next).length === 0 ? 'All settings deleted.' : 'Saved. These are now all your settings.';
        }}
      >
        <TextArea
          name="all"
          label="All settings (JSON object)"
          rows={10}
          value={all}
          onValue={(v) => {
            setAll(v);
            setAllDirty(true);
          }}
          hint="Saving replaces every setting with this object: a key you remove is deleted. {} deletes them all."
        />
      </Form>
    </Page>
  );
}
