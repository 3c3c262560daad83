import './security.css';
import type { ComponentChildren } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { api, ApiError, ok, type Schemas } from '../api';
import { addPasskey, CeremonyError, deviceName, passkeysSupported, renameFactor } from '../passkeys';
import { useSession } from '../session';
import { ActionButton, CopyButton, CurrentPassword, ErrorNote, Field, Form, Page, Placeholder, ShownOnce, Time, useLoad, useRevealed, TableRegion, TableHead } from '../ui';
import { fieldError } from './account';
import { TOTP_SHAPE } from './sign-in';

/**
 * Two-factor sign-in (GitHub's and Google's security pages are the model): the factors (renamed,
 * removed), adding a passkey (named after this device; the browser makes it) or an authenticator
 * app (QR code, the secret to type, the code that confirms it), the recovery codes (shown once,
 * copied or downloaded; the count left; regenerate). Also the page an administrator is held on
 * until a factor is confirmed when `REQUIRE_MFA_FOR_ADMINS=1`.
 */

export type Factor = Schemas['Factor'];

/** What adding an app answers: the secret, shown this once. */
interface NewTotp {
  id: string;
  name: string;
  secret: string;
  uri: string;
  qr_svg: string;
}

const TYPE_NAMES: Record<string, string> = { totp: 'Authenticator app', webauthn: 'Passkey' };
export const factorType = (type: string) => TYPE_NAMES[type] ?? type;

/** A base32 secret in groups of four, as it is easiest to type. */
export function grouped(secret: string): string {
  return secret.replace(/(.{4})(?=.)/g, '$1 ');
}

/**
 * The QR code the API drew (an SVG document of ours) as an image: an `<img>` of a `data:` URL
 * runs no script and loads nothing, whatever the markup holds, and the CSP allows `data:` images
 * (not inline markup's styles). Nothing is parsed into the page's DOM.
 */
export function svgDataUrl(svg: string): string {
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}

/**
 * A user's factors as a table: on the security page with a button each (`action`), on an admin's
 * view of a user without.
 */
export function FactorTable({ factors, labelledBy, busy, action }: { factors: Factor[]; labelledBy: string; busy?: boolean; action?: (f: Factor) => ComponentChildren }) {
  return (
    <TableRegion labelledBy={labelledBy} busy={busy}>
      <table class="account-table">
        <TableHead columns={['Name', 'Type', 'Added', 'Last used', 'Status']} actions={!!action} />
        <tbody>
          {factors.map((f) => (
            <tr key={f.id}>
              <th scope="row" class="token-name">
                {f.name}
              </th>
              <td>{factorType(f.type)}</td>
              <td>
                <Time value={f.created} />
              </td>
              <td>
                <Time value={f.last_used} />
              </td>
              <td>{f.verified ? <span class="tag mfa-verified">Active</span> : <span class="tag">Not confirmed</span>}</td>
              {action && <td class="row-actions">{action(f)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </TableRegion>
  );
}

export function Security(_props: { id?: string }) {
  const { me, mfa, setMfa, refresh } = useSession();
  const user = me!;
  const forced = mfa === 'enrol';
  const list = useLoad(() => ok(api.GET('/user/me/factor')));
  const [adding, setAdding] = useState<NewTotp | null>(null);
  const [codes, setCodes] = useState<{ codes: string[]; first: boolean } | null>(null);
  const remaining = useLoad(async () => (user.mfa_enabled ? (await ok(api.GET('/user/me/recovery_codes'))).remaining : undefined), [user.mfa_enabled, codes]);

  const factors = list.data;
  const verified = factors?.filter((f) => f.verified) ?? [];

  async function removed() {
    await list.reload();
    await refresh();
  }

  return (
    <Page title="Security">
      {forced ? (
        <p class="notice">
          <strong>Administrators of this service must use two-factor sign-in.</strong> Add a passkey or an authenticator app below; the rest of the
          console opens once it is confirmed.
        </p>
      ) : (
        <p class="muted">
          Two-factor sign-in asks after your password for a passkey (your fingerprint, face or PIN on this device, or a security key) or a code from an
          app on your phone, so a stolen password alone does not open your account. A passkey also signs you in without your password.
        </p>
      )}
      <p class="mfa-status">
        Two-factor sign-in is <strong>{user.mfa_enabled ? 'on' : 'off'}</strong>.
      </p>

      {codes && (
        <RecoveryCodes
          codes={codes.codes}
          first={codes.first}
          email={user.email}
          onDone={async () => {
            setCodes(null);
            // A forced enrolment is done once the codes are put away.
            if (forced) setMfa(null);
            await refresh();
          }}
        />
      )}

      <h2 id="factors-heading">Your two-factor methods</h2>
      <ErrorNote error={list.error} />
      {factors === undefined ? (
        !list.error && <Placeholder rows={2} />
      ) : factors.length === 0 ? (
        <p class="muted">You have not set up two-factor sign-in.</p>
      ) : (
        <FactorTable
          factors={factors}
          labelledBy="factors-heading"
          action={(f) => (
            <>
              <Rename factor={f} taken={factors.filter((o) => o.id !== f.id).map((o) => o.name)} onRenamed={() => list.reload()} />
              <ActionButton
                danger
                label={`Remove ${f.name}`}
                busy="Removing…"
                confirm={
                  f.verified && verified.length === 1
                    ? `Remove “${f.name}”? It is your only two-factor method: two-factor sign-in turns off and your recovery codes stop working.`
                    : f.type === 'webauthn'
                      ? `Remove “${f.name}”? It no longer signs you in (the device may keep it until you delete it there too).`
                      : `Remove “${f.name}”? Its codes stop working.`
                }
                confirmLabel="Remove"
                onClick={async () => {
                  try {
                    await ok(api.DELETE('/user/me/factor/{id}', { params: { path: { id: f.id } } }));
                  } catch (e) {
                    // Already gone (removed elsewhere, or an unconfirmed one dropped): the list will say so.
                    if (!(e instanceof ApiError && e.status === 404)) throw e;
                  }
                  if (adding?.id === f.id) setAdding(null);
                  await removed();
                }}
              >
                Remove
              </ActionButton>
            </>
          )}
        />
      )}

      <h2 id="passkey-heading">Add a passkey</h2>
      {passkeysSupported() ? (
        <AddPasskey
          taken={factors?.map((f) => f.name) ?? []}
          onAdded={async (recovery) => {
            if (recovery) setCodes({ codes: recovery, first: true });
            await list.reload();
            // The first factor makes this session aal2 and turns MFA on; the page and the header follow.
            await refresh();
          }}
        />
      ) : (
        <p class="muted">This browser cannot make passkeys. Use another browser, or add an authenticator app below.</p>
      )}

      <h2 id="add-heading">Add an authenticator app</h2>
      {adding ? (
        <ConfirmApp
          adding={adding}
          onCancel={async () => {
            setAdding(null);
            await ok(api.DELETE('/user/me/factor/{id}', { params: { path: { id: adding.id } } })).catch(() => undefined);
            await list.reload();
          }}
          onConfirmed={async (recovery) => {
            setAdding(null);
            if (recovery) setCodes({ codes: recovery, first: true });
            await list.reload();
            // This session is now aal2 and the user has MFA; the page and the header follow.
            await refresh();
          }}
        />
      ) : (
        <AddApp
          unconfirmed={factors?.filter((f) => !f.verified).map((f) => f.name) ?? []}
          onAdded={async (made) => {
            setAdding(made);
            await list.reload();
          }}
        />
      )}

      {user.mfa_enabled && (
        <>
          <h2>Recovery codes</h2>
          <p>
            If you lose your phone or your passkey, a recovery code signs you in instead, once each.{' '}
            <span class="mfa-remaining" role="status">
              {remaining.data === undefined ? (
                remaining.error ? (
                  ''
                ) : (
                  <span class="muted">Counting…</span>
                )
              ) : (
                <>
                  <strong>{remaining.data} of 10 left.</strong>
                  {remaining.data <= 3 && ' Make new ones before you run out.'}
                </>
              )}
            </span>
          </p>
          <ErrorNote error={remaining.error} />
          <Regenerate onMade={(made) => setCodes({ codes: made, first: false })} />
        </>
      )}
    </Page>
  );
}

/**
 * Adds a passkey: a name (this device's, to start with) and the current password; then the
 * browser asks for the fingerprint, face, PIN or security key and makes the passkey, which the
 * service checks. Nothing to type back, so nothing half-done is left: a ceremony that did not
 * finish removes the factor it began.
 */
function AddPasskey({ taken, onAdded }: { taken: string[]; onAdded: (recovery?: string[]) => Promise<void> }) {
  const [name, setName] = useState<string | null>(null);
  const [current, setCurrent] = useState('');
  const shown = name ?? deviceName(taken);
  return (
    <Form
      id="passkey"
      submit="Add passkey"
      busy="Waiting for the passkey…"
      label="Add a passkey"
      fieldFor={{ wrong_password: 'current_password', conflict: 'name' }}
      explain={(e) =>
        e.code === 'conflict'
          ? 'You have another two-factor method of that name: choose another.'
          : e.code === 'mfa_failed'
            ? 'The service did not accept this passkey. Try again, or with another device.'
            : undefined
      }
      onSubmit={async () => {
        const chosen = shown.trim();
        if (chosen === '') throw fieldError('name', 'Give the passkey a name, so you know later which device it is on.');
        if (current === '') throw fieldError('current_password', 'Enter your current password.');
        let done;
        try {
          done = await addPasskey(chosen, current);
        } catch (e) {
          if (e instanceof CeremonyError) throw new Error(e.kind === 'registered' ? `${e.message} It is in the list above.` : `No passkey was added. ${e.message}`);
          throw e;
        }
        setName(null);
        setCurrent('');
        await onAdded(done.recovery_codes);
        return `“${done.factor.name}” was added.`;
      }}
    >
      <Field
        name="name"
        label="Passkey name"
        required
        maxLength={100}
        value={shown}
        onValue={setName}
        hint="Which device or password manager keeps it, such as “Laptop” or “iPhone”."
      />
      <CurrentPassword value={current} onValue={setCurrent} />
    </Form>
  );
}

/** Renames a factor: a small dialog with the name, `PATCH /user/me/factor/:id`. */
function Rename({ factor, taken, onRenamed }: { factor: Factor; taken: string[]; onRenamed: () => Promise<void> }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [name, setName] = useState(factor.name);
  const [open, setOpen] = useState(false);
  const close = () => {
    dialog.current?.close();
    setOpen(false);
  };
  return (
    <span class="action">
      <button
        type="button"
        aria-label={`Rename ${factor.name}`}
        onClick={() => {
          setName(factor.name);
          setOpen(true);
          dialog.current?.showModal();
        }}
      >
        Rename
      </button>
      <dialog ref={dialog} class="confirm mfa-rename" aria-label={`Rename ${factor.name}`} onClose={() => setOpen(false)}>
        {open && (
          <Form
            id={`rename-${factor.id}`}
            submit="Save"
            busy="Saving…"
            quiet
            label={`New name for ${factor.name}`}
            fieldFor={{ conflict: 'name' }}
            explain={(e) => (e.code === 'conflict' ? 'You have another two-factor method of that name.' : undefined)}
            actions={
              <button type="button" onClick={close}>
                Cancel
              </button>
            }
            onSubmit={async () => {
              const chosen = name.trim();
              if (chosen === '') throw fieldError('name', 'Give it a name.');
              if (taken.includes(chosen)) throw fieldError('name', 'You have another two-factor method of that name.');
              if (chosen !== factor.name) await renameFactor(factor.id, chosen);
              close();
              await onRenamed();
            }}
          >
            <Field name="name" label="Name" required maxLength={100} value={name} onValue={setName} />
          </Form>
        )}
      </dialog>
    </span>
  );
}

function AddApp({ unconfirmed, onAdded }: { unconfirmed: string[]; onAdded: (made: NewTotp) => Promise<void> }) {
  const [name, setName] = useState('');
  const [current, setCurrent] = useState('');
  return (
    <Form
      submit="Continue"
      busy="Preparing…"
      label="Add an authenticator app"
      fieldFor={{ wrong_password: 'current_password', conflict: 'name' }}
      explain={(e) =>
        // A setup left half-way (the page was closed before the code) keeps its name for 10 minutes.
        e.code === 'conflict' && unconfirmed.includes(name.trim())
          ? `You began adding “${name.trim()}” without confirming it: remove it from the list above, or choose another name.`
          : undefined
      }
      onSubmit={async () => {
        if (name.trim() === '') throw fieldError('name', 'Give the app a name, so you know later which device it is on.');
        if (current === '') throw fieldError('current_password', 'Enter your current password.');
        const made = await ok(api.POST('/user/me/factor', { body: { type: 'totp', name: name.trim(), current_password: current } }));
        if (made.type !== 'totp') throw new Error('the service answered an authenticator app with a passkey');
        setName('');
        setCurrent('');
        await onAdded(made);
      }}
    >
      <Field
        name="name"
        label="Name"
        required
        maxLength={100}
        value={name}
        onValue={setName}
        hint="Which app or device, such as “Phone” or “Authy on my tablet”."
      />
      <CurrentPassword value={current} onValue={setCurrent} />
    </Form>
  );
}

/** The QR code and the secret of a new app, and the code that confirms it. */
function ConfirmApp({ adding, onCancel, onConfirmed }: { adding: NewTotp; onCancel: () => Promise<void>; onConfirmed: (recovery?: string[]) => Promise<void> }) {
  const [code, setCode] = useState('');
  const box = useRevealed<HTMLDivElement>(adding.id);

  return (
    <div class="mfa-enrol" ref={box} tabIndex={-1} role="region" aria-labelledby="enrol-heading">
      <h3 id="enrol-heading">Set up “{adding.name}”</h3>
      <ol class="mfa-steps">
        <li>
          <p>Scan this QR code with your authenticator app (such as Google Authenticator, Microsoft Authenticator, 1Password or Aegis).</p>
          <img class="mfa-qr" src={svgDataUrl(adding.qr_svg)} width={200} height={200} alt={`QR code to add “${adding.name}” to an authenticator app`} />
          <p class="hint">
            On this phone? <a href={adding.uri}>Open it in your authenticator app</a>.
          </p>
        </li>
        <li>
          <p>Or type this setup key into the app (time-based, 6 digits):</p>
          <code class="mfa-secret">{grouped(adding.secret)}</code>
          <CopyButton text={adding.secret} label="Copy key" />
        </li>
        <li>
          <p>Enter the code the app now shows, to confirm it works.</p>
          <Form
            submit="Confirm"
            busy="Confirming…"
            quiet
            label="Confirm the app"
            fieldFor={{ mfa_failed: 'code', rate_limited: 'code' }}
            explain={(e) => (e.code === 'mfa_failed' ? 'That code is wrong. Check the app shows this account, and enter its newest code.' : undefined)}
            actions={
              <button type="button" onClick={() => void onCancel()}>
                Cancel
              </button>
            }
            onSubmit={async () => {
              if (!TOTP_SHAPE.test(code)) throw fieldError('code', 'Enter the 6 digits the app shows.');
              const done = await ok(api.POST('/user/me/factor/{id}/verify', { params: { path: { id: adding.id } }, body: { code: code.trim() } }));
              await onConfirmed(done.recovery_codes);
            }}
          >
            <Field name="code" label="Code from the app" autoComplete="one-time-code" inputMode="numeric" maxLength={7} required value={code} onValue={setCode} />
          </Form>
        </li>
      </ol>
    </div>
  );
}

function Regenerate({ onMade }: { onMade: (codes: string[]) => void }) {
  const [current, setCurrent] = useState('');
  return (
    <details class="mfa-regenerate">
      <summary>Make new recovery codes</summary>
      <Form
        id="regenerate"
        submit="Make new codes"
        busy="Making codes…"
        label="Make new recovery codes"
        fieldFor={{ wrong_password: 'current_password' }}
        onSubmit={async () => {
          if (current === '') throw fieldError('current_password', 'Enter your current password.');
          const made = await ok(api.POST('/user/me/recovery_codes', { body: { current_password: current } }));
          setCurrent('');
          onMade(made.codes);
        }}
      >
        <p class="hint">Ten new codes replace the ones you have: the old ones stop working at once, used or not.</p>
        <CurrentPassword value={current} onValue={setCurrent} />
      </Form>
    </details>
  );
}

/** The text file a person keeps the codes in. */
export function recoveryFile(codes: string[], email: string, when = new Date()): string {
  return [
    `Recovery codes for ${email}`,
    `Made ${when.toISOString().slice(0, 10)}. Each code signs you in once instead of your authenticator app's code or your passkey.`,
    'Keep them somewhere safe, apart from your phone. New codes replace all of these.',
    '',
    ...codes,
    '',
  ].join('\n');
}

/** Saves `text` as a file of the browser's downloads, made in the page (nothing is sent anywhere). */
function download(name: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The recovery codes, shown once: copy, download, and "I have saved them". */
function RecoveryCodes({ codes, first, email, onDone }: { codes: string[]; first: boolean; email: string; onDone: () => Promise<void> }) {
  return (
    <ShownOnce
      value={codes}
      class="mfa-codes"
      headingId="codes-heading"
      heading={first ? 'Two-factor sign-in is on. Save your recovery codes' : 'Your new recovery codes'}
      actions={
        <>
          <CopyButton text={codes.join('\n')} label="Copy codes" />
          <button type="button" onClick={() => download('recovery-codes.txt', recoveryFile(codes, email))}>
            Download as a text file
          </button>
          <button type="button" class="primary" onClick={() => void onDone()}>
            I have saved them
          </button>
        </>
      }
    >
      <p>
        <strong>Save them now: they will not be shown again.</strong> If you lose your phone or your passkey, each code signs you in once instead.
        {!first && ' The old codes no longer work.'}
      </p>
      <ul class="mfa-code-list">
        {codes.map((c) => (
          <li key={c}>
            <code>{c}</code>
          </li>
        ))}
      </ul>
    </ShownOnce>
  );
}
