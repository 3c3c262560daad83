import type { NextFunction, Request, Response } from 'express';
import { authorize } from '../domain/policy';
import type { AuthService } from '../services/auth-service';
import { lookupCaller } from './authenticate';

/**
 * Enforces the matched operation's policy: authenticates the caller with the credentials its
 * security accepts (public operations skip this), then `authorize`. Every answer to an
 * authenticated caller, errors too, is marked `Cache-Control: no-store`.
 */
export function enforcePolicy(auth: AuthService) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const operation = req.operation!;
    if (!operation.accepts) return next();
    try {
      const caller = await lookupCaller(req, auth, operation.accepts);
      res.set('Cache-Control', 'no-store');
      authorize(caller, operation.policy, req.pathParams?.user);
      req.caller = caller;
    } catch (err) {
      return next(err);
    }
    next();
  };
}
