import type { Knex } from 'knex';

export interface LoginThrottlePolicy {
  /** Failures in a row before attempts are refused; 0 turns throttling off. */
  failures: number;
  /** The first delay; it doubles with each further failure. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A failure older than this is forgotten: the count starts again. */
  forgetAfterMs: number;
}

/** The key of an account's password attempts: logins and the current password given to a change share it. */
export function accountThrottleKey(userId: string): string {
  return `user:${userId}`;
}

/** The key of an account's wrong second-factor codes (MFA_MAX_FAILURES): a count apart from the password's. */
export function mfaThrottleKey(userId: string): string {
  return `mfa:${userId}`;
}

/** What taking an attempt's slot says: evaluate it (it is the run's `failures`-th), or refuse it until `until`. */
export type AttemptSlot = { allowed: true; failures: number } | { allowed: false; until: Date };

/**
 * Runs of failed attempts per key, counted in the database so that every instance enforces one
 * limit. An attempt takes its slot before it is evaluated, counted as a failure in advance; a
 * success clears the key. Keys are namespaced by what they count (`user:<id>`, `email:<address>`
 * and `id:<uuid>` for passwords), so another kind of attempt (a second factor's codes) can keep
 * its own runs here under its own prefix and policy.
 */
export interface LoginThrottleStore {
  /**
   * One statement, taken before the attempt is evaluated: unless the key is blocked at `now`,
   * counts the attempt as one more failure in the run (from `policy.failures` on, blocking the
   * key for a delay that doubles with each) and allows it; a blocked key is refused and left as
   * it is. So of any number of concurrent attempts, on any number of instances, at most
   * `policy.failures` are allowed before the key is blocked.
   */
  take(key: string, now: Date, policy: LoginThrottlePolicy): Promise<AttemptSlot>;
  /** A success: the count starts again. */
  clear(key: string): Promise<void>;
  /** Forgets keys whose last failure is older than `before` and that are not blocked at `now`. */
  prune(before: Date, now: Date, limit: number): Promise<number>;
}

export class KnexLoginThrottleStore implements LoginThrottleStore {
  constructor(private readonly db: Knex) {}

  async take(key: string, now: Date, policy: LoginThrottlePolicy): Promise<AttemptSlot> {
    // n: this attempt's place in the run (a run whose last failure is older than forgetAfterMs
    // starts again at 1). From n = failures on, the key is blocked for base * 2^(n - failures),
    // capped. The update's WHERE leaves a blocked key alone: ON CONFLICT locks the row and checks
    // its latest version, so concurrent attempts are counted one after the other, never twice
    // against the same count.
    const n = '(case when t.last_failure < :forgetBefore then 1 else t.failures + 1 end)';
    const { rows } = await this.db.raw<{ rows: { failures: number }[] }>(
      `insert into login_throttle as t (key, failures, last_failure, blocked_until)
       values (:key, 1, :now, case when 1 >= :threshold then cast(:now as timestamptz) + :base * interval '1 millisecond' end)
       on conflict (key) do update set
         failures = ${n},
         last_failure = excluded.last_failure,
         blocked_until = case when ${n} >= :threshold
           then cast(:now as timestamptz) + least(:base * power(2, ${n} - :threshold), :max) * interval '1 millisecond' end
       where t.blocked_until is null or t.blocked_until <= :now
       returning failures`,
      {
        key,
        now,
        threshold: policy.failures,
        base: policy.baseDelayMs,
        max: policy.maxDelayMs,
        forgetBefore: new Date(now.getTime() - policy.forgetAfterMs),
      },
    );
    if (rows.length > 0) return { allowed: true, failures: rows[0].failures };
    // Refused: how long for is only for Retry-After (a success may have cleared the key since).
    const row: { blocked_until: Date | null } | undefined = await this.db('login_throttle').select('blocked_until').where({ key }).first();
    const until = row?.blocked_until && row.blocked_until > now ? row.blocked_until : new Date(now.getTime() + policy.baseDelayMs);
    return { allowed: false, until };
  }

  async clear(key: string): Promise<void> {
    await this.db('login_throttle').where({ key }).delete();
  }

  async prune(before: Date, now: Date, limit: number): Promise<number> {
    const doomed = this.db('login_throttle')
      .select('key')
      .where('last_failure', '<', before)
      .where((w) => w.whereNull('blocked_until').orWhere('blocked_until', '<=', now))
      .limit(limit);
    return this.db('login_throttle').whereIn('key', doomed).delete();
  }
}
