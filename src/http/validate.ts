import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ValidationError } from '../domain/errors';
import { chain } from './mount';
import { hasBody } from './read-body';

/**
 * express-openapi-validator (its public middleware, whole) checks the request's parameters and
 * body against the operation, and in tests every response. An operation with no input, called
 * with no query string and no body, has nothing to check: the validator is skipped then (unless
 * responses are validated), which is most authenticated reads (GET /user/me).
 */
export function validate(validator: RequestHandler[], validateResponses: boolean): RequestHandler {
  const run = chain(validator);
  return (req: Request, res: Response, next: NextFunction) => {
    const operation = req.operation!;
    if (operation.body === 'none' && hasBody(req)) {
      return next(new ValidationError('this route takes no request body', [{ path: '/body', message: 'must be empty' }]));
    }
    if (!validateResponses && !operation.hasInput && !req.url.includes('?')) return next();
    run(req, res, next);
  };
}
