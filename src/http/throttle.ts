import type { RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { AppError } from '../domain/errors';

/**
 * Requests a minute per client IP (the proxy's word only with TRUST_PROXY), per route that
 * uses it: `429 rate_limited` with `Retry-After` and `RateLimit-*` headers. 0 turns it off.
 * Counts are kept in this process.
 */
export function ipThrottle(perMinute: number): RequestHandler {
  if (perMinute === 0) return (_req, _res, next) => next();
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    standardHeaders: 'draft-6',
    legacyHeaders: false,
    handler: (_req, _res, next) => next(new AppError(429, 'rate_limited', 'too many requests; try again later')),
  });
}
