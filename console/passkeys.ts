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
import { api, ApiError, ok } from './api';

/**
 * Passkeys (WebAuthn) in the console, on @simplewebauthn/browser: the browser's ceremonies between
 * the API's options and the API's check. The service decides everything; this only carries the
 * options to the browser and its answer back.
 */

export { browserSupportsWebAuthnAutofill };

/** This browser can make and use passkeys (WebAuthn, in a secure context). */
export const passkeysSupported = (): boolean => browserSupportsWebAuthn();

/**
 * The browser's ceremony did not happen: the person cancelled, the passkey's lock (fingerprint,
 * PIN) failed, the time ran out, or the device has no such passkey. Nothing was sent to the service.
 */
export class CeremonyError extends Error {
  constructor(
    message: string,
    /** Ended by the page itself (another ceremony began, or the page moved on): say nothing. */
    readonly aborted: boolean,
    /** The authenticator already holds a passkey of this account (registration). */
    readonly registered = false,
  ) {
    super(message);
  }
}

function ceremonyError(e: unknown, what: string): CeremonyError {
  const code = e instanceof WebAuthnError ? e.code : undefined;
  const name = e instanceof Error ? ((e as { cause?: Error }).cause?.name ?? e.name) : '';
  if (code === 'ERROR_CEREMONY_ABORTED' || name === 'AbortError') return new CeremonyError(`The ${what} was stopped.`, true);
  if (code === 'ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED') return new CeremonyError('This device already holds a passkey for your account.', false, true);
  return new CeremonyError(`The ${what} did not finish: it was cancelled, or the device could not confirm it was you. Try again.`, false);
}

/**
 * The calls of the passkey routes (§2.8). Written against the contract's shapes; the options are
 * WebAuthn's JSON, handed to the browser as they came.
 */
// The routes and bodies the generated client does not type (yet): one untyped door, used only here.
type Untyped = { POST(path: string, init: { body?: unknown; params?: unknown }): Promise<{ data?: unknown; error?: unknown; response: Response }>; PATCH(path: string, init: { body?: unknown; params?: unknown }): Promise<{ data?: unknown; error?: unknown; response: Response }> };
const raw = api as unknown as Untyped;

async function post<T>(path: string, body?: unknown, id?: string): Promise<T> {
  // No body where the route takes none (the options): the X-Requested-With header stands for it.
  return (await ok(raw.POST(path, { body, params: id ? { path: { id } } : undefined }))) as T;
}

export interface LoginAnswer {
  jwt_token: string;
  password_change_required?: boolean;
}

/**
 * Signs in with a passkey alone (a discoverable credential, with user verification): options, the
 * browser's ceremony, `POST /login/passkey` with a session cookie. `autofill`: the browser's
 * autofill offers the passkeys (conditional mediation), resolving when the person picks one.
 */
export async function signInWithPasskey(autofill = false): Promise<LoginAnswer> {
  const options = await post<PublicKeyCredentialRequestOptionsJSON>('/login/passkey/options');
  let credential: AuthenticationResponseJSON;
  try {
    credential = await startAuthentication({ optionsJSON: options, useBrowserAutofill: autofill });
  } catch (e) {
    throw ceremonyError(e, 'sign-in with a passkey');
  }
  return post<LoginAnswer>('/login/passkey', { credential, set_session: true });
}

/** The second step with a passkey: `POST /login/mfa/options`, the ceremony, `POST /login/mfa {webauthn}`. */
export async function secondStepWithPasskey(): Promise<LoginAnswer> {
  const options = await post<PublicKeyCredentialRequestOptionsJSON>('/login/mfa/options');
  let credential: AuthenticationResponseJSON;
  try {
    credential = await startAuthentication({ optionsJSON: options });
  } catch (e) {
    throw ceremonyError(e, 'sign-in with a passkey');
  }
  return post<LoginAnswer>('/login/mfa', { webauthn: credential });
}

/** A factor as the API lists it. */
export interface FactorJSON {
  id: string;
  type: string;
  name: string;
  created: string;
  last_used?: string | null;
  verified: boolean;
}

/**
 * Adds a passkey: `POST /user/me/factor {type: webauthn}` (the password checked), the browser
 * makes the credential, `POST .../verify {credential}`. A ceremony that did not finish removes the
 * factor it began (its name would be taken for 10 minutes) and throws a CeremonyError.
 */
export async function addPasskey(name: string, currentPassword: string): Promise<{ factor: FactorJSON; recovery_codes?: string[] }> {
  const made = await post<FactorJSON & { options: PublicKeyCredentialCreationOptionsJSON }>('/user/me/factor', { type: 'webauthn', name, current_password: currentPassword });
  let credential;
  try {
    credential = await startRegistration({ optionsJSON: made.options });
  } catch (e) {
    await ok(api.DELETE('/user/me/factor/{id}', { params: { path: { id: made.id } } })).catch(() => undefined);
    throw ceremonyError(e, 'passkey setup');
  }
  try {
    return await post('/user/me/factor/{id}/verify', { credential }, made.id);
  } catch (e) {
    // Refused by the service: the half-made factor goes too.
    if (e instanceof ApiError && e.status === 400) await ok(api.DELETE('/user/me/factor/{id}', { params: { path: { id: made.id } } })).catch(() => undefined);
    throw e;
  }
}

/** `PATCH /user/me/factor/:id {name}`. */
export async function renameFactor(id: string, name: string): Promise<FactorJSON> {
  return (await ok(raw.PATCH('/user/me/factor/{id}', { params: { path: { id } }, body: { name } }))) as FactorJSON;
}

/** Ends a ceremony this page began and no longer wants (the autofill one, when leaving the page). */
export function cancelCeremony(): void {
  WebAuthnAbortService.cancelCeremony();
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
