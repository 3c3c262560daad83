import crypto from 'node:crypto';
import ms from 'ms';
import type { Clock, User } from '../domain/types';
import { resetPasswordMail, setPasswordLink, welcomeMail, type MailSettings } from '../mail/templates';
import type { Stores } from '../stores';
import type { PasswordTokenPurpose } from '../stores/password-token-store';

export function hashLinkToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A link's secret: 256 random bits, URL-safe. Only its hash is stored. */
export function newLinkToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/** Single-use set-password links: 256 random bits, stored only as a SHA-256 hash. */
export class PasswordLinks {
  constructor(
    private readonly clock: Clock,
    private readonly mail: MailSettings,
    private readonly ttl: { welcomeMs: number; resetMs: number },
  ) {}

  /** Makes a link inside the caller's transaction and returns it (for the mail only). */
  async issue(s: Stores, user: User, purpose: PasswordTokenPurpose): Promise<{ link: string; validFor: string }> {
    const token = newLinkToken();
    const ttlMs = purpose === 'welcome' ? this.ttl.welcomeMs : this.ttl.resetMs;
    const now = this.clock.now();
    await s.passwordTokens.insert(user.id, hashLinkToken(token), purpose, now, new Date(now.getTime() + ttlMs));
    return { link: setPasswordLink(this.mail, token), validFor: ms(ttlMs, { long: true }) };
  }

  /** A welcome mail with a fresh set-password link, queued in the same transaction. */
  async queueWelcome(s: Stores, user: User): Promise<void> {
    const { link, validFor } = await this.issue(s, user, 'welcome');
    await s.outbox.enqueue(welcomeMail(this.mail, user, link, validFor));
  }

  /** A reset mail with a fresh link (1 hour by default), queued in the same transaction. */
  async queueReset(s: Stores, user: User): Promise<void> {
    const { link, validFor } = await this.issue(s, user, 'reset');
    await s.outbox.enqueue(resetPasswordMail(this.mail, user, link, validFor));
  }
}
