import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { RouteTable } from './route-table';

/** What serves one operation: a function, or middlewares ending in one (a throttle, then the handler). */
export type Handler = RequestHandler | RequestHandler[];

/** One family of operations (a file of handlers/), by operationId. */
export type Handlers = Record<string, Handler>;

/** Runs middlewares in order, as Express would; an error or a rejected promise goes to `next`. */
export function chain(middlewares: readonly RequestHandler[]): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    let i = 0;
    const step = (err?: unknown): void => {
      if (err !== undefined && err !== null && err !== 'route' && err !== 'router') return next(err);
      const mw = middlewares[i++];
      if (!mw) return next();
      try {
        const result = mw(req, res, step) as unknown;
        if (result instanceof Promise) result.catch(step);
      } catch (e) {
        step(e);
      }
    };
    step();
  };
}

/**
 * Calls the handler of the operation the route table matched, found by operationId. Built once:
 * it fails, naming them, if an operation of the spec has no handler or a handler no operation,
 * or if two families claim one operation.
 */
export function dispatch(table: RouteTable, families: Handlers[]): RequestHandler {
  const byId = new Map<string, RequestHandler>();
  for (const family of families) {
    for (const [id, handler] of Object.entries(family)) {
      if (byId.has(id)) throw new Error(`two handlers for operation ${id}`);
      byId.set(id, Array.isArray(handler) ? chain(handler) : handler);
    }
  }
  const ids = new Set(table.operations.map((o) => o.id));
  const missing = [...ids].filter((id) => !byId.has(id));
  const extra = [...byId.keys()].filter((id) => !ids.has(id));
  if (missing.length || extra.length) {
    throw new Error(
      [missing.length ? `operations without a handler: ${missing.join(', ')}` : '', extra.length ? `handlers without an operation: ${extra.join(', ')}` : '']
        .filter(Boolean)
        .join('; '),
    );
  }
  return (req, res, next) => {
    req.params = req.pathParams ?? {};
    return byId.get(req.operation!.id)!(req, res, next);
  };
}
