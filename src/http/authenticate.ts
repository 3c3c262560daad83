import type { Request } from 'express';
import { AppError, ForbiddenError, PasswordChangeRequiredError, UnauthenticatedError } from '../domain/errors';
import { scopesAllow } from '../domain/scopes';
import type { Caller } from '../domain/types';
import type { AuthService, RequestContext } from '../services/auth-service';

export const SESSION_COOKIE = 'account_session';

/** Operations a login token of a user who must change their password may still call. */
export const PASSWORD_CHANGE_EXTENSION = 'x-allowed-during-password-change';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set for authenticated operations by the security handler. */
    caller?: Caller;
    /** Why the security handler refused; the error handler answers with it. */
    authError?: unknown;
    callerLookup?: Promise<Caller>;
  }
}

export function requestContext(req: Request): RequestContext {
  return { ip: req.ip ?? null, userAgent: req.get('user-agent') ?? null };
}

function credential(req: Request): { jwt: string; via: Caller['via'] } | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer[ ]+([A-Za-z0-9._~+/=-]+)[ ]*$/i.exec(header);
    return { jwt: match ? match[1] : '', via: 'bearer' };
  }
  const cookie: unknown = req.cookies?.[SESSION_COOKIE];
  return typeof cookie === 'string' && cookie !== '' ? { jwt: cookie, via: 'cookie' } : undefined;
}

/** The caller behind the request's credential, looked up once per request. */
export function lookupCaller(req: Request, auth: AuthService): Promise<Caller> {
  req.callerLookup ??= (async () => {
    const cred = credential(req);
    if (!cred) throw new UnauthenticatedError();
    return auth.authenticate(cred.jwt, requestContext(req), cred.via);
  })();
  return req.callerLookup;
}

/**
 * express-openapi-validator's security handlers: every operation is authenticated unless the
 * spec says `security: []` (fail closed). Besides the token they check what the operation
 * allows: the token's scopes, and the confinement of a user who must change their password.
 */
export function securityHandlers(auth: AuthService) {
  const handler = async (req: Request): Promise<boolean> => {
    try {
      const caller = await lookupCaller(req, auth);
      const operation = (req as Request & { openapi?: { schema?: Record<string, unknown> } }).openapi?.schema;
      if (caller.token.kind === 'login' && caller.user.forcePasswordChange && operation?.[PASSWORD_CHANGE_EXTENSION] !== true) {
        throw new PasswordChangeRequiredError();
      }
      if (!scopesAllow(caller.token.scopes, req.method)) throw new ForbiddenError("the token's scopes do not allow this call");
      req.caller = caller;
      return true;
    } catch (err) {
      // The validator keeps only a status and a message; the error handler answers with this.
      req.authError = err;
      throw Object.assign(new Error(err instanceof Error ? err.message : 'unauthorized'), {
        status: err instanceof AppError ? err.status : 500,
      });
    }
  };
  return { bearerAuth: handler, cookieAuth: handler };
}

export function callerOf(req: Request): Caller {
  if (!req.caller) throw new UnauthenticatedError();
  return req.caller;
}
