import type { Knex } from 'knex';

export interface RateLimitStore {
  /** Counts a hit for the key in its current window (a new window once the last has ended): one statement. */
  hit(key: string, windowMs: number, now: Date): Promise<{ hits: number; resetAt: Date }>;
  /** Takes a hit back (express-rate-limit's skip of failed or successful requests). */
  unhit(key: string): Promise<void>;
  reset(key: string): Promise<void>;
  /** Forgets windows that ended before `now`. */
  prune(now: Date, limit: number): Promise<number>;
}

export class KnexRateLimitStore implements RateLimitStore {
  constructor(private readonly db: Knex) {}

  async hit(key: string, windowMs: number, now: Date): Promise<{ hits: number; resetAt: Date }> {
    const { rows } = await this.db.raw<{ rows: { hits: number; reset_at: Date }[] }>(
      `insert into rate_limits as r (key, hits, reset_at) values (:key, 1, :resetAt)
       on conflict (key) do update set
         hits = case when r.reset_at <= :now then 1 else r.hits + 1 end,
         reset_at = case when r.reset_at <= :now then excluded.reset_at else r.reset_at end
       returning hits, reset_at`,
      { key, now, resetAt: new Date(now.getTime() + windowMs) },
    );
    return { hits: rows[0].hits, resetAt: rows[0].reset_at };
  }

  async unhit(key: string): Promise<void> {
    await this.db('rate_limits').where({ key }).where('hits', '>', 0).decrement('hits', 1);
  }

  async reset(key: string): Promise<void> {
    await this.db('rate_limits').where({ key }).delete();
  }

  async prune(now: Date, limit: number): Promise<number> {
    return this.db('rate_limits').whereIn('key', this.db('rate_limits').select('key').where('reset_at', '<=', now).limit(limit)).delete();
  }
}
