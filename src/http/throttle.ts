import type { RequestHandler } from 'express';
import { rateLimit, type ClientRateLimitInfo, type Options, type Store } from 'express-rate-limit';
import { RateLimitedError } from '../domain/errors';
import type { Clock } from '../domain/types';
import type { RateLimitStore } from '../stores/rate-limit-store';

/**
 * express-rate-limit's store over the `rate_limits` table: the counts live in the database, so
 * every instance enforces one limit, not one each, and a restart forgets nothing.
 */
class DatabaseStore implements Store {
  private windowMs = 60_000;
  readonly localKeys = false;

  constructor(
    readonly prefix: string,
    private readonly store: RateLimitStore,
    private readonly clock: Clock,
  ) {}

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  async increment(key: string): Promise<ClientRateLimitInfo> {
    const { hits, resetAt } = await this.store.hit(this.prefix + key, this.windowMs, this.clock.now());
    return { totalHits: hits, resetTime: resetAt };
  }

  async decrement(key: string): Promise<void> {
    await this.store.unhit(this.prefix + key);
  }

  async resetKey(key: string): Promise<void> {
    await this.store.reset(this.prefix + key);
  }
}

/**
 * Requests a minute per client IP (the proxy's word only with TRUST_PROXY) on the route `name`
 * names: `429 rate_limited` with `Retry-After` and `RateLimit-*` headers. 0 turns it off.
 */
export function ipThrottle(name: string, perMinute: number, store: RateLimitStore, clock: Clock): RequestHandler {
  if (perMinute === 0) return (_req, _res, next) => next();
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    standardHeaders: 'draft-6',
    legacyHeaders: false,
    store: new DatabaseStore(`${name}:`, store, clock),
    handler: (_req, _res, next) => next(new RateLimitedError()), // express-rate-limit has set Retry-After and RateLimit-*
  });
}
