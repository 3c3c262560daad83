import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { NotFoundError, ValidationError } from '../domain/errors';
import { chain } from './mount';
import type { RouteTable } from './route-table';

declare module 'express-serve-static-core' {
  interface Request {
    /** A HEAD request, routed as the GET it mirrors. */
    isHead?: boolean;
  }
}

/**
 * Matches the request against the route table (once; nothing else routes API requests). `HEAD`
 * is answered wherever `GET` is: matched, authorised and validated as the `GET` it mirrors (Node
 * decided when the request arrived that its answer has no body). No operation: the request goes
 * to `miss` (the docs page and the web console, which serve paths no operation has), and from
 * there to `404 Route Not Found`; so an API request never waits on their path checks.
 */
export function route(table: RouteTable, miss: RequestHandler[]): RequestHandler {
  const missed = chain([...miss, (_req, _res, next) => next(new NotFoundError('Route Not Found'))]);
  return (req: Request, res: Response, next: NextFunction) => {
    const head = req.method === 'HEAD';
    let matched;
    try {
      matched = table.match(head ? 'GET' : req.method, req.path);
    } catch {
      return next(new ValidationError('the path has a malformed percent-encoding', [{ path: '/path', message: 'is not valid percent-encoding' }]));
    }
    if (!matched) return missed(req, res, next);
    if (head) {
      req.method = 'GET';
      req.isHead = true;
    }
    req.operation = matched.operation;
    req.pathParams = matched.params;
    next();
  };
}
