import crypto from 'node:crypto';
import { CROCKFORD, formatRecoveryCode, RECOVERY_CODE_COUNT, RECOVERY_CODE_LENGTH } from '../domain/mfa';
import type { DerivedKeys, KeyRing } from '../keys';
import { openSecret, sealSecret } from './sealed-secret';

/** What each key derived from MFA_KEY is for (HKDF info): never reused for anything else. */
const TOTP_SECRET_PURPOSE = 'mfa totp secret';
const RECOVERY_CODE_PURPOSE = 'mfa recovery code';

/**
 * The secrets of two-factor sign-in at rest, with keys derived from MFA_KEY (kept outside the
 * database): TOTP secrets encrypted with AES-256-GCM, bound to their row (the additional data is
 * `<user id>:<factor id>`, so a row's secret cannot be moved to another), and recovery codes as
 * HMAC-SHA256 (60 random bits each: a keyed fast hash is right for them, ASVS 6.5.2, and a guess
 * costs no slow hash). Each stored value names the key that made it (`<keyId>:...`), so values
 * made before a rotation still decrypt and match.
 */
export class MfaSecrets {
  private readonly totpKeys: DerivedKeys;
  private readonly codeKeys: DerivedKeys;

  constructor(keys: KeyRing) {
    this.totpKeys = keys.derive(TOTP_SECRET_PURPOSE);
    this.codeKeys = keys.derive(RECOVERY_CODE_PURPOSE);
  }

  /** A new TOTP secret: 20 random bytes (RFC 4226's recommended 160 bits). */
  newTotpSecret(): Buffer {
    return crypto.randomBytes(20);
  }

  encryptTotpSecret(secret: Buffer, userId: string, factorId: string): string {
    return sealSecret(this.totpKeys, secret, `${userId}:${factorId}`);
  }

  /** The secret, or undefined when no configured key made it or it is not this row's (altered, moved). */
  decryptTotpSecret(stored: string, userId: string, factorId: string): Buffer | undefined {
    return openSecret(this.totpKeys, stored, `${userId}:${factorId}`);
  }

  /** Ten new recovery codes (`xxxx-xxxx-xxxx`) and their hashes under the current key. */
  newRecoveryCodes(): { codes: string[]; hashes: string[] } {
    const raw = Array.from({ length: RECOVERY_CODE_COUNT }, () => Array.from({ length: RECOVERY_CODE_LENGTH }, () => CROCKFORD[crypto.randomInt(32)]).join(''));
    const { id, key } = this.codeKeys.current;
    return { codes: raw.map(formatRecoveryCode), hashes: raw.map((c) => hashWith(id, key, c)) };
  }

  /** A normalised code's hash under every configured key: what a stored hash may be. */
  recoveryCodeCandidates(code: string): string[] {
    return this.codeKeys.all.map(({ id, key }) => hashWith(id, key, code));
  }
}

function hashWith(id: string, key: Buffer, code: string): string {
  return `${id}:${crypto.createHmac('sha256', key).update(code).digest('hex')}`;
}
