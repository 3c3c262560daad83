import type { Request, Response } from 'express';
import { ValidationError } from '../domain/errors';
import { PAGE_LIMIT } from '../domain/rules';
import type { Page } from '../domain/types';

/**
 * `limit` and `cursor` of a keyset-paginated list. The spec has checked them, but its integer
 * check lets `Infinity` through (ajv coerces it and then skips the bounds), so the bounds are
 * checked again here.
 */
export function pageQuery(req: Request): { limit: number; cursor?: string } {
  const q = req.query as Record<string, string | number | undefined>;
  const limit = q.limit === undefined ? PAGE_LIMIT.default : Number(q.limit);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > PAGE_LIMIT.max) {
    throw new ValidationError(`limit must be a whole number from 1 to ${PAGE_LIMIT.max}`, [{ path: '/query/limit', message: `must be from 1 to ${PAGE_LIMIT.max}` }]);
  }
  return { limit, cursor: q.cursor === undefined ? undefined : String(q.cursor) };
}

/** `Link: <...>; rel="next"` while more remain: the same path and filters, the next cursor. */
export function linkNext(req: Request, res: Response, page: Page<unknown>, limit: number): void {
  if (!page.next) return;
  const params = new URLSearchParams(
    Object.entries(req.query as Record<string, string | undefined>).filter((e): e is [string, string] => e[1] !== undefined && e[0] !== 'cursor'),
  );
  params.set('limit', String(limit));
  params.set('cursor', page.next);
  res.set('Link', `<${req.path}?${params.toString()}>; rel="next"`);
}
