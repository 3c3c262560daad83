import crypto from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { UnauthenticatedError } from '../domain/errors';
import { authorize, type MfaSettings } from '../domain/policy';
import type { AuthService } from '../services/auth-service';
import { lookupCaller } from './authenticate';

/** The Authorization header carries `Bearer <token>`, compared in constant time. */
function presents(header: string | undefined, token: string): boolean {
  const match = header === undefined ? null : /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
  if (!match) return false;
  const [a, b] = [crypto.createHash('sha256').update(match[1]).digest(), crypto.createHash('sha256').update(token).digest()];
  return crypto.timingSafeEqual(a, b);
}

/**
 * Enforces the matched operation's policy: authenticates the caller with the credentials its
 * security accepts, then `authorize`. Every answer to an authenticated caller, errors too, is
 * marked `Cache-Control: no-store`. Operations without a user's token: `public` ones pass, a
 * `metrics_token` one passes only the bearer of METRICS_TOKEN when it is set (`401` else).
 */
export function enforcePolicy(auth: AuthService, mfa: MfaSettings, metricsToken: string | undefined) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const operation = req.operation!;
    if (!operation.accepts) {
      if (operation.policy.caller === 'metrics_token' && metricsToken !== undefined && !presents(req.headers.authorization, metricsToken)) {
        return next(new UnauthenticatedError());
      }
      return next();
    }
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
