import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransportFuture,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { decodeClientDataJSON } from '@simplewebauthn/server/helpers';
import { WEBAUTHN_ALGORITHMS, WEBAUTHN_TIMEOUT_MS, type WebauthnCredential } from '../domain/mfa';
import type { User } from '../domain/types';

/** The relying party (Config.webauthn). */
export interface RelyingParty {
  rpId: string;
  rpName: string;
  origins: string[];
}

export type { AuthenticationResponseJSON, PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON, RegistrationResponseJSON };

/**
 * The WebAuthn ceremonies' checks (API.md §2.8), all done by @simplewebauthn/server: no CBOR,
 * COSE or signature is read here. Every refusal of the library (it throws, or says not verified)
 * is `undefined`: the callers answer each alike, and never log the response.
 */
export class Passkeys {
  constructor(private readonly rp: RelyingParty) {}

  /** The user handle: the 16 bytes of the user's UUID (stable, not personal data). */
  userHandle(userId: string): Uint8Array<ArrayBuffer> {
    const bytes = new Uint8Array(16);
    bytes.set(Buffer.from(userId.replace(/-/g, ''), 'hex'));
    return bytes;
  }

  /** The user handle as an assertion carries it (base64url). */
  userHandleText(userId: string): string {
    return Buffer.from(this.userHandle(userId)).toString('base64url');
  }

  /** Creation options for a discoverable credential of this user, none of `existing` again. */
  async registrationOptions(user: User, existing: WebauthnCredential[]): Promise<PublicKeyCredentialCreationOptionsJSON> {
    return generateRegistrationOptions({
      rpName: this.rp.rpName,
      rpID: this.rp.rpId,
      userName: user.email,
      userDisplayName: user.name || user.email,
      userID: this.userHandle(user.id),
      attestationType: 'none',
      authenticatorSelection: { residentKey: 'required', userVerification: 'preferred' },
      excludeCredentials: existing.map((c) => ({ id: c.credentialId, transports: transportsOf(c) })),
      supportedAlgorithmIDs: WEBAUTHN_ALGORITHMS,
      timeout: WEBAUTHN_TIMEOUT_MS,
    });
  }

  /** Request options: for these credentials (the second step), or for a discoverable one (none given). */
  async authenticationOptions(allow: WebauthnCredential[] | undefined, userVerification: 'preferred' | 'required'): Promise<PublicKeyCredentialRequestOptionsJSON> {
    return generateAuthenticationOptions({
      rpID: this.rp.rpId,
      allowCredentials: allow?.map((c) => ({ id: c.credentialId, transports: transportsOf(c) })),
      userVerification,
      timeout: WEBAUTHN_TIMEOUT_MS,
    });
  }

  /** The challenge a response answers, from its clientDataJSON; undefined when that is not readable. */
  challengeOf(response: { response?: { clientDataJSON?: unknown } }): string | undefined {
    try {
      const data = response.response?.clientDataJSON;
      if (typeof data !== 'string') return undefined;
      const challenge = decodeClientDataJSON(data).challenge;
      return typeof challenge === 'string' && challenge.length > 0 ? challenge : undefined;
    } catch {
      return undefined;
    }
  }

  /** The credential a registration response brings, verified for `challenge`; undefined when the library refuses it. */
  async verifyRegistration(response: RegistrationResponseJSON, challenge: string): Promise<WebauthnCredential | undefined> {
    try {
      const result = await verifyRegistrationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.rp.origins,
        expectedRPID: this.rp.rpId,
        requireUserVerification: false,
        supportedAlgorithmIDs: WEBAUTHN_ALGORITHMS,
      });
      if (!result.verified) return undefined;
      const info = result.registrationInfo;
      return {
        credentialId: info.credential.id,
        publicKey: Uint8Array.from(info.credential.publicKey),
        counter: info.credential.counter,
        transports: (info.credential.transports ?? []).map(String).slice(0, 10),
        backupEligible: info.credentialDeviceType === 'multiDevice',
        backedUp: info.credentialBackedUp,
        aaguid: info.aaguid,
        userVerified: info.userVerified,
      };
    } catch {
      return undefined;
    }
  }

  /**
   * Checks an assertion by `credential` for `challenge`: the signature, type, origin, RP ID hash,
   * flags (user verification when `requireUserVerification`). The counter is passed as 0 on
   * purpose: the caller compares it (and records it in one conditional statement). Returns the
   * counter the authenticator reported, or undefined when the library refuses the assertion.
   */
  async verifyAuthentication(response: AuthenticationResponseJSON, challenge: string, credential: WebauthnCredential, requireUserVerification: boolean): Promise<{ newCounter: number } | undefined> {
    try {
      const result = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.rp.origins,
        expectedRPID: this.rp.rpId,
        credential: { id: credential.credentialId, publicKey: Uint8Array.from(credential.publicKey), counter: 0, transports: transportsOf(credential) },
        requireUserVerification,
      });
      return result.verified ? { newCounter: result.authenticationInfo.newCounter } : undefined;
    } catch {
      return undefined;
    }
  }
}

function transportsOf(c: WebauthnCredential): AuthenticatorTransportFuture[] {
  return c.transports as AuthenticatorTransportFuture[];
}

/**
 * Whether an accepted signature's counter is a replay or a clone's: it did not go up, unless
 * both are 0 (an authenticator that keeps no counter, as synced passkeys do).
 */
export function counterWentBack(stored: number, presented: number): boolean {
  return (stored > 0 || presented > 0) && presented <= stored;
}
