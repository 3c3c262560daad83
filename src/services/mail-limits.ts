import crypto from 'node:crypto';
import type { Stores } from '../stores';

/**
 * Mail a caller can have the service send to an address of their choosing (API.md §2.2: "a few
 * an hour"): at most `MAIL_LIMIT_PER_HOUR` of each kind an hour to one address, and of the email
 * change's confirmations as many per account. Beyond that the request is answered as ever and
 * nothing is sent: no mail bombing through the service, and nothing told to the caller.
 *
 * The counts are rows of `rate_limits` (the IP throttle's table: a fixed window per key), so every
 * instance enforces one limit; each check is one statement (an upsert that counts and answers),
 * run in the transaction that queues the mail, so concurrent requests are counted one after the
 * other and a rolled-back request counts nothing.
 */
export const MAIL_LIMIT_PER_HOUR = 3;
const WINDOW_MS = 3_600_000;

/**
 * The kinds of mail counted apart, so that asking for one kind cannot use up another's
 * (a burst of registrations with someone's address does not stop their password reset).
 */
export type LimitedMail = 'email_change' | 'register' | 'password_reset';

/** An address's key: a hash of the lower-cased address, never the address in clear. */
export function addressKey(kind: LimitedMail, email: string): string {
  return `mail:${kind}:to:${crypto.createHash('sha256').update(email.toLowerCase(), 'utf8').digest('hex')}`;
}

export function accountKey(kind: LimitedMail, userId: string): string {
  return `mail:${kind}:account:${userId}`;
}

/**
 * Counts one mail against every key (each counted, whatever the others say, so the work does not
 * depend on which is full) and answers whether it may go: none of them over the limit.
 */
export async function mayMail(s: Pick<Stores, 'rateLimits'>, keys: string[], now: Date): Promise<boolean> {
  let allowed = true;
  for (const key of keys) {
    const { hits } = await s.rateLimits.hit(key, WINDOW_MS, now);
    if (hits > MAIL_LIMIT_PER_HOUR) allowed = false;
  }
  return allowed;
}
