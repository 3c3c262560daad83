import {
  browserSupportsWebAuthn,
  browserSupportsWebAuthnAutofill,
  startAuthentication,
  startRegistration,
  WebAuthnAbortService,
  WebAuthnError,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/browser';
import type { components } from '../src/generated/openapi';
import { api, ApiError, ok } from './api';

/**
 * Passkeys (WebAuthn) in the console, on @simplewebauthn/browser: the browser's ceremonies between
 * the API's options and the API's check. The service decides everything; this only carries the
 * options to the browser and its answer back.
 */

export { browserSupportsWebAuthnAutofill };

/**
 * This browser can make and use passkeys here: WebAuthn, in a secure context, on a domain name
 * (a relying party is never an IP address: the console opened as http://127.0.0.1 offers none;
 * the same rule as @simplewebauthn/browser's, which would refuse there).
 */
export const passkeysSupported = (): boolean =>
  browserSupportsWebAuthn() && (location.hostname === 'localhost' || /^((xn--[a-z0-9-]+|[a-z0-9]+(-[a-z0-9]+)*)\.)+([a-z]{2,}|xn--[a-z0-9-]+)$/i.test(location.hostname));

/**
 * The browser's ceremony did not happen: the person cancelled, the passkey's lock (fingerprint,
 * PIN) failed, the time ran out, or the device has no such passkey. Nothing was sent to the service.
 */
export class CeremonyError extends Error {
  constructor(
    message: string,
    /**
     * `aborted`: ended by the page itself (another ceremony began, or the page moved on), say
     * nothing; `registered`: the authenticator already holds a passkey of this account;
     * `unusable`: not on this page's address (passkeys need the service's own domain); `failed`:
     * cancelled, or the device could not confirm it was the person.
     */
    readonly kind: 'aborted' | 'registered' | 'unusable' | 'failed',
  ) {
    super(message);
  }

  get aborted(): boolean {
    return this.kind === 'aborted';
  }
}

function ceremonyError(e: unknown, what: string): CeremonyError {
  const code = e instanceof WebAuthnError ? e.code : undefined;
  const name = e instanceof Error ? ((e as { cause?: Error }).cause?.name ?? e.name) : '';
  if (code === 'ERROR_CEREMONY_ABORTED' || name === 'AbortError') return new CeremonyError(`The ${what} was stopped.`, 'aborted');
  if (code === 'ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED') return new CeremonyError('This device already holds a passkey for your account.', 'registered');
  if (code === 'ERROR_INVALID_DOMAIN' || code === 'ERROR_INVALID_RP_ID' || name === 'SecurityError') {
    return new CeremonyError('Passkeys cannot be used at this address of the service.', 'unusable');
  }
  return new CeremonyError(`The ${what} did not finish: it was cancelled, or the device could not confirm it was you. Try again.`, 'failed');
}

/**
 * A ceremony the person started (a button) is under way. The browser runs one at a time and a new
 * one ends the one before, so the autofill's is not started meanwhile (the page arms it again
 * after) and is never what ends the person's.
 */
let modalCeremony = false;

/** The browser's assertion for these options; `autofill`: offered in the email field's autofill. */
async function authenticate(optionsJSON: PublicKeyCredentialRequestOptionsJSON, autofill: boolean): Promise<AuthenticationResponseJSON> {
  if (autofill && modalCeremony) throw new CeremonyError('The sign-in with a passkey was stopped.', 'aborted');
  try {
    return await startAuthentication({ optionsJSON, useBrowserAutofill: autofill });
  } catch (e) {
    throw ceremonyError(e, 'sign-in with a passkey');
  }
}

/** Runs a ceremony the person asked for (a button), with the autofill's held off meanwhile. */
async function modal<T>(run: () => Promise<T>): Promise<T> {
  modalCeremony = true;
  try {
    return await run();
  } finally {
    modalCeremony = false;
  }
}

/**
 * The calls of the passkey routes (§2.8) through the typed client. The options are WebAuthn's JSON,
 * handed to the browser as they came (the spec types them loosely: open objects), and the
 * browser's answer goes back as it came.
 */
type RequestOptions = PublicKeyCredentialRequestOptionsJSON;
type CreationOptions = PublicKeyCredentialCreationOptionsJSON;
type Schemas = components['schemas'];

export type LoginAnswer = Schemas['LoginToken'];
export type FactorJSON = Schemas['Factor'];

/**
 * Signs in with a passkey alone (a discoverable credential, with user verification): options, the
 * browser's ceremony, `POST /login/passkey` with a session cookie. `autofill`: the browser's
 * autofill offers the passkeys (conditional mediation), resolving when the person picks one.
 */
export async function signInWithPasskey(autofill = false): Promise<LoginAnswer> {
  const run = async () => {
    const options = await ok(api.POST('/login/passkey/options'));
    const credential = await authenticate(options as unknown as RequestOptions, autofill);
    return ok(api.POST('/login/passkey', { body: { credential: credential as Schemas['PasskeyAssertion'], set_session: true } }));
  };
  if (autofill) {
    if (modalCeremony) throw new CeremonyError('The sign-in with a passkey was stopped.', 'aborted');
    return run();
  }
  return modal(run);
}

/** The second step with a passkey: `POST /login/mfa/options`, the ceremony, `POST /login/mfa {webauthn}`. */
export async function secondStepWithPasskey(): Promise<LoginAnswer> {
  return modal(async () => {
    const options = await ok(api.POST('/login/mfa/options'));
    const credential = await authenticate(options as unknown as RequestOptions, false);
    return ok(api.POST('/login/mfa', { body: { webauthn: credential as Schemas['PasskeyAssertion'] } }));
  });
}

/**
 * Adds a passkey: `POST /user/me/factor {type: webauthn}` (the password checked), the browser
 * makes the credential, `POST .../verify {credential}`. A ceremony that did not finish removes the
 * factor it began (its name would be taken for 10 minutes) and throws a CeremonyError.
 */
export async function addPasskey(name: string, currentPassword: string): Promise<{ factor: FactorJSON; recovery_codes?: string[] }> {
  const made = await ok(api.POST('/user/me/factor', { body: { type: 'webauthn', name, current_password: currentPassword } }));
  if (made.type !== 'webauthn') throw new Error('the service answered a passkey with an authenticator app');
  const drop = () => ok(api.DELETE('/user/me/factor/{id}', { params: { path: { id: made.id } } })).catch(() => undefined);
  let credential;
  try {
    credential = await startRegistration({ optionsJSON: made.options as unknown as CreationOptions });
  } catch (e) {
    await drop();
    throw ceremonyError(e, 'passkey setup');
  }
  try {
    return await ok(api.POST('/user/me/factor/{id}/verify', { params: { path: { id: made.id } }, body: { credential: credential as Schemas['PasskeyRegistration'] } }));
  } catch (e) {
    // Refused by the service: the half-made factor goes too.
    if (e instanceof ApiError && e.status === 400) await drop();
    throw e;
  }
}

/** `PATCH /user/me/factor/:id {name}`. */
export async function renameFactor(id: string, name: string): Promise<FactorJSON> {
  return ok(api.PATCH('/user/me/factor/{id}', { params: { path: { id } }, body: { name } }));
}

/** Ends the autofill's ceremony (the page moves on, or arms it again); never one the person started. */
export function cancelAutofill(): void {
  if (!modalCeremony) WebAuthnAbortService.cancelCeremony();
}

/**
 * A name for a passkey made in this browser: "Chrome on Linux", "Safari on iPhone". Only a default
 * for the person to change; `taken` names are avoided with a number.
 */
export function deviceName(taken: string[] = [], ua = navigator.userAgent): string {
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /OPR\//.test(ua)
      ? 'Opera'
      : /Firefox\//.test(ua)
        ? 'Firefox'
        : /Chrome\/|Chromium\/|CriOS\//.test(ua)
          ? 'Chrome'
          : /Safari\//.test(ua)
            ? 'Safari'
            : 'Browser';
  const system = /iPhone/.test(ua)
    ? 'iPhone'
    : /iPad/.test(ua)
      ? 'iPad'
      : /Android/.test(ua)
        ? 'Android'
        : /CrOS/.test(ua)
          ? 'ChromeOS'
          : /Mac OS X|Macintosh/.test(ua)
            ? 'Mac'
            : /Windows/.test(ua)
              ? 'Windows'
              : /Linux/.test(ua)
                ? 'Linux'
                : '';
  const base = system ? `${browser} on ${system}` : `Passkey in ${browser}`;
  let name = base;
  for (let n = 2; taken.includes(name); n++) name = `${base} ${n}`;
  return name;
}
