import type { Request, Response } from 'express';
import type { Page } from '../domain/types';

/** `limit` and `cursor` of a keyset-paginated list (the spec has checked them). */
export function pageQuery(req: Request): { limit: number; cursor?: string } {
  const q = req.query as Record<string, string | undefined>;
  return { limit: q.limit === undefined ? 100 : Number(q.limit), cursor: q.cursor };
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
