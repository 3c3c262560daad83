import type { NextFunction, Request, Response } from 'express';
import { authorize, type MfaSettings } from '../domain/policy';
import type { AuthService } from '../services/auth-service';
import { lookupCaller } from './authenticate';

/**
 * Enforces the matched operation's policy: authenticates the caller with the credentials its
 * security accepts (public operations skip this), then `authorize`. Every answer to an
 * authenticated caller, errors too, is marked `Cache-Control: no-store`.
 */
export function enforcePolicy(auth: AuthService, mfa: MfaSettings) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const operation = req.operation!;
    if (!operation.accepts) return next();
    // `then`, not `async`: this runs on every authenticated request.
    lookupCaller(req, auth, operation.accepts).then((caller) => {
      res.setHeader('Cache-Control', 'no-store');
      try {
        authorize(caller, operation.policy, req.pathParams?.user, false, mfa);
      } catch (err) {
        return next(err);
      }
      req.caller = caller;
      next();
    }, next);
  };
}
