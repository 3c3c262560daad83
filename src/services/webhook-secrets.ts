import crypto from 'node:crypto';
import type { DerivedKeys, KeyRing } from '../keys';
import { openSecret, sealSecret } from './sealed-secret';

/** What the key derived from MFA_KEY for webhooks is for (HKDF info): never reused for anything else. */
const WEBHOOK_SECRET_PURPOSE = 'webhook secret';

/**
 * The webhooks' signing secrets (API.md §2.9): `whsec_` + base64 of 32 random bytes (the
 * Standard Webhooks form), shown once, kept sealed (AES-256-GCM) with a key derived from MFA_KEY
 * (outside the database), bound to their endpoint (the additional data is its id).
 */
export class WebhookSecrets {
  private readonly keys: DerivedKeys;

  constructor(keys: KeyRing) {
    this.keys = keys.derive(WEBHOOK_SECRET_PURPOSE);
  }

  newSecret(): string {
    return `whsec_${crypto.randomBytes(32).toString('base64')}`;
  }

  seal(secret: string, webhookId: string): string {
    return sealSecret(this.keys, Buffer.from(secret, 'utf8'), webhookId);
  }

  /** The secret, or undefined when no configured key made it or it is not this endpoint's. */
  open(stored: string, webhookId: string): string | undefined {
    return openSecret(this.keys, stored, webhookId)?.toString('utf8');
  }
}
