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

export interface LoginThrottleStore {
  /** When the key's attempts are refused until, if that is after `now`. */
  blockedUntil(key: string, now: Date): Promise<Date | undefined>;
  /** Counts one more failure in a row, and from the threshold on blocks the key for a doubling delay. One statement. */
  /** Counts a failure; returns the failures in the run so far (from `policy.failures` on, the key is blocked). */
  recordFailure(key: string, now: Date, policy: LoginThrottlePolicy): Promise<number>;
  /** A success: the count starts again. */
  clear(key: string): Promise<void>;
  /** Forgets keys whose last failure is older than `before` and that are not blocked at `now`. */
  prune(before: Date, now: Date, limit: number): Promise<number>;
}

export class KnexLoginThrottleStore implements LoginThrottleStore {
  constructor(private readonly db: Knex) {}

  async blockedUntil(key: string, now: Date): Promise<Date | undefined> {
    const row: { blocked_until: Date | null } | undefined = await this.db('login_throttle').select('blocked_until').where({ key }).first();
    return row?.blocked_until && row.blocked_until > now ? row.blocked_until : undefined;
  }

  async recordFailure(key: string, now: Date, policy: LoginThrottlePolicy): Promise<number> {
    // n: this failure's place in the run (a run whose last failure is older than forgetAfterMs
    // starts again at 1). From n = failures on, the key is blocked for base * 2^(n - failures), capped.
    const n = '(case when t.last_failure < :forgetBefore then 1 else t.failures + 1 end)';
    const { rows } = await this.db.raw<{ rows: { failures: number }[] }>(
      `insert into login_throttle as t (key, failures, last_failure, blocked_until)
       values (:key, 1, :now, case when 1 >= :threshold then cast(:now as timestamptz) + :base * interval '1 millisecond' end)
       on conflict (key) do update set
         failures = ${n},
         last_failure = excluded.last_failure,
         blocked_until = case when ${n} >= :threshold
           then cast(:now as timestamptz) + least(:base * power(2, ${n} - :threshold), :max) * interval '1 millisecond' end
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
    return rows[0].failures;
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
