/** Two-factor sign-in's domain (API.md §2.8): factors, recovery codes, the rules on them. */

export type FactorType = 'totp' | 'webauthn';

export interface Factor {
  id: string;
  userId: string;
  type: FactorType;
  name: string;
  verified: boolean;
  created: Date;
  lastUsed: Date | null;
  /** totp: the encrypted secret (`<keyId>:<iv>:<ciphertext+tag>`), never the secret itself. */
  totpSecret: string | null;
  /** totp: the last 30 s step whose code was accepted. */
  totpLastStep: number | null;
  /** webauthn: the passkey's credential, once the factor is verified (null before, and for totp). */
  webauthn: WebauthnCredential | null;
}

/** What a verified passkey factor keeps of its credential (API.md §2.8): enough to check an assertion, no secret. */
export interface WebauthnCredential {
  /** base64url, unique across all users. */
  credentialId: string;
  /** The COSE public key, as the authenticator gave it. */
  publicKey: Uint8Array;
  /** The signature counter last accepted (0: the authenticator keeps none). */
  counter: number;
  transports: string[];
  backupEligible: boolean;
  backedUp: boolean;
  aaguid: string;
  /** Whether the user was verified at registration (informative). */
  userVerified: boolean;
}

/** What a challenge is for: registering a passkey, the second step of a login, a sign-in without password. */
export type ChallengePurpose = 'registration' | 'mfa' | 'passkey';

/** A WebAuthn challenge is single use and valid this long (API.md §2.8). */
export const WEBAUTHN_CHALLENGE_TTL_MS = 5 * 60_000;
/** The ceremonies' timeout (the browser's, in the options): the challenge's lifetime. */
export const WEBAUTHN_TIMEOUT_MS = WEBAUTHN_CHALLENGE_TTL_MS;
/** ES256 and RS256: what every platform authenticator offers. */
export const WEBAUTHN_ALGORITHMS = [-7, -257];

/** A factor as a login names it: enough to choose one, nothing to use it. */
export type FactorRef = Pick<Factor, 'id' | 'type' | 'name'>;

/** An unconfirmed factor is dropped this long after it was added. */
export const PENDING_FACTOR_TTL_MS = 10 * 60_000;
/** The `aal1` token of a pending second step lives at most this long. */
export const MFA_PENDING_TOKEN_TTL_MS = 10 * 60_000;
/** Factors (pending ones included) a user may have. */
export const MAX_FACTORS = 10;
export const RECOVERY_CODE_COUNT = 10;

/** Crockford's base32 alphabet, lowercase: no i, l, o, u. */
export const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';
const RECOVERY_CODE_LENGTH = 12; // 60 bits

/** A code as typed: a TOTP code's 6 digits (spaces dropped), or a recovery code's 12 characters (spaces and hyphens dropped, lowercase). */
export type MfaCodeInput = { kind: 'totp'; code: string } | { kind: 'recovery'; code: string };

/** The spec has checked the shape (6 digits, or 12 letters and digits with spaces and hyphens); this normalises it. */
export function parseMfaCode(raw: string): MfaCodeInput | undefined {
  const digits = raw.replace(/ /g, '');
  if (/^[0-9]{6}$/.test(digits)) return { kind: 'totp', code: digits };
  const code = raw.replace(/[ -]/g, '').toLowerCase();
  return code.length === RECOVERY_CODE_LENGTH && /^[0-9a-z]+$/.test(code) ? { kind: 'recovery', code } : undefined;
}

/** `xxxx-xxxx-xxxx`, as shown. */
export function formatRecoveryCode(code: string): string {
  return `${code.slice(0, 4)}-${code.slice(4, 8)}-${code.slice(8, 12)}`;
}

export { RECOVERY_CODE_LENGTH };
