import { RateLimitedError, WrongPasswordError } from '../domain/errors';
import type { Clock } from '../domain/types';
import type { Stores } from '../stores';
import { accountThrottleKey, type LoginThrottlePolicy } from '../stores/login-throttle-store';
import type { PasswordHasher } from './password-hasher';

/**
 * A current password given to prove who makes a change (the password change, the email change).
 * It counts on the account's login throttle as a login does (one statement takes the attempt's
 * slot before bcrypt; the right password clears the count), so a stolen session cannot guess the
 * password at bcrypt's pace through these routes: after `throttle.failures` wrong ones, `429`
 * for the doubling delay, like `/login`.
 */
export class CurrentPasswordCheck {
  constructor(
    private readonly stores: Pick<Stores, 'loginThrottle'>,
    private readonly hasher: PasswordHasher,
    private readonly clock: Clock,
    private readonly throttle: LoginThrottlePolicy,
  ) {}

  /** Throws `WrongPasswordError` unless `given` is the password `hash` holds (none: never), `RateLimitedError` once the account's tries are spent. */
  async check(userId: string, hash: string | null, given: string): Promise<void> {
    const key = accountThrottleKey(userId);
    const throttled = this.throttle.failures > 0;
    if (throttled) {
      const now = this.clock.now();
      const slot = await this.stores.loginThrottle.take(key, now, this.throttle);
      if (!slot.allowed) throw new RateLimitedError(Math.ceil((slot.until.getTime() - now.getTime()) / 1000), this.throttle.failures);
    }
    if (!(await this.hasher.verify(given, hash))) throw new WrongPasswordError();
    if (throttled) await this.stores.loginThrottle.clear(key);
  }
}
