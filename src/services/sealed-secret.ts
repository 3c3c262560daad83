import crypto from 'node:crypto';
import type { DerivedKeys } from '../keys';

/**
 * A secret sealed at rest with AES-256-GCM under the current key of `keys`, bound to its row by
 * the additional data `aad` (so a row's secret cannot be moved to another): stored as
 * `<keyId>:<iv>:<sealed>` (base64url), naming the key that made it, so values made before a
 * rotation still open. The factor secrets (MfaSecrets) and the webhooks' signing secrets use it.
 */
export function sealSecret(keys: DerivedKeys, secret: Buffer, aad: string): string {
  const { id, key } = keys.current;
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const sealed = Buffer.concat([cipher.update(secret), cipher.final(), cipher.getAuthTag()]);
  return `${id}:${iv.toString('base64url')}:${sealed.toString('base64url')}`;
}

/** The secret, or undefined when no configured key made it or it is not this row's (altered, moved). */
export function openSecret(keys: DerivedKeys, stored: string, aad: string): Buffer | undefined {
  const [keyId, iv, sealed, ...rest] = stored.split(':');
  const key = keys.get(keyId);
  if (!key || !iv || !sealed || rest.length) return undefined;
  const bytes = Buffer.from(sealed, 'base64url');
  if (bytes.length < 16) return undefined;
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(bytes.subarray(bytes.length - 16));
    return Buffer.concat([decipher.update(bytes.subarray(0, bytes.length - 16)), decipher.final()]);
  } catch {
    return undefined;
  }
}
