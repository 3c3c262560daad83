import { parse as parseCookies } from 'cookie';
import type { NextFunction, Request, Response } from 'express';
import { ForbiddenError, PasswordChangeRequiredError, UnauthenticatedError } from '../domain/errors';
import { scopesAllow } from '../domain/scopes';
import type { Caller } from '../domain/types';
import type { AuthService, RequestContext } from '../services/auth-service';

export const SESSION_COOKIE = 'account_session';

/** Operations a login token of a user who must change their password may still call. */
export const PASSWORD_CHANGE_EXTENSION = 'x-allowed-during-password-change';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set for authenticated operations by `authenticate`. */
    caller?: Caller;
    callerLookup?: Promise<Caller>;
  }
}

/** Read when used: authenticating needs the address only for its once-a-minute `last_ipaddr`. */
class LazyRequestContext implements RequestContext {
  constructor(private readonly req: Request) {}
  get ip(): string | null {
    return this.req.ip ?? null;
  }
  get userAgent(): string | null {
    return this.req.get('user-agent') ?? null;
  }
}

export function requestContext(req: Request): RequestContext {
  return new LazyRequestContext(req);
}

/** Which of the spec's security schemes an operation accepts. */
interface Accepts {
  bearer: boolean;
  cookie: boolean;
}

const ANY_CREDENTIAL: Accepts = { bearer: true, cookie: true };

/**
 * A present Authorization header decides (a malformed one is not a fall-back to the cookie).
 * The Cookie header is parsed only here, when there is no bearer token: nothing else reads it.
 */
function credential(req: Request, accepts: Accepts): { jwt: string; via: Caller['via'] } | undefined {
  const header = req.headers.authorization;
  if (header !== undefined && accepts.bearer) {
    const match = /^Bearer[ ]+([A-Za-z0-9._~+/=-]+)[ ]*$/i.exec(header);
    return { jwt: match ? match[1] : '', via: 'bearer' };
  }
  const cookieHeader = accepts.cookie ? req.headers.cookie : undefined;
  const cookie = cookieHeader ? parseCookies(cookieHeader)[SESSION_COOKIE] : undefined;
  return typeof cookie === 'string' && cookie !== '' ? { jwt: cookie, via: 'cookie' } : undefined;
}

/** The caller behind the request's credential, looked up once per request. */
export function lookupCaller(req: Request, auth: AuthService, accepts: Accepts = ANY_CREDENTIAL): Promise<Caller> {
  if (!req.callerLookup) {
    const cred = credential(req, accepts);
    req.callerLookup = cred ? auth.authenticate(cred.jwt, requestContext(req), cred.via) : Promise.reject(new UnauthenticatedError());
  }
  return req.callerLookup;
}

/** The spec's security schemes, by the credential each stands for. */
const SCHEMES = { bearerAuth: 'bearer', cookieAuth: 'cookie' } as const;

type SecurityRequirement = Record<string, unknown>;
type Operation = Record<string, unknown> & { security?: SecurityRequirement[] };

/**
 * What an operation's security (its own, else the document's) accepts; undefined when it is
 * public (`security: []`). Anything this middleware cannot enforce faithfully (an unknown scheme,
 * two schemes required together, an optional `{}`) is refused, so a spec change fails closed.
 */
function acceptsOf(security: SecurityRequirement[] | undefined, where: string): Accepts | undefined {
  if (!security || security.length === 0) return undefined;
  const accepts: Accepts = { bearer: false, cookie: false };
  for (const requirement of security) {
    const schemes = Object.keys(requirement);
    if (schemes.length !== 1 || !(schemes[0] in SCHEMES)) {
      throw new Error(`${where}: unsupported security requirement ${JSON.stringify(requirement)}`);
    }
    accepts[SCHEMES[schemes[0] as keyof typeof SCHEMES]] = true;
  }
  return accepts;
}

/**
 * Enforces the spec's security, in the validator's security slot: after the operation is
 * matched (unknown routes are 404 first), before the request is validated (so an anonymous
 * caller gets 401, not 400). Every operation is authenticated unless the spec says
 * `security: []` (fail closed). Besides the token it checks what the operation allows: the
 * token's scopes, and the confinement of a user who must change their password.
 *
 * It replaces express-openapi-validator's security handlers, which with two schemes (bearer OR
 * cookie) ran both on every request and built an Error with a stack for the absent one.
 */
export function authenticate(auth: AuthService, apiDoc: { security?: SecurityRequirement[] }) {
  const documentAccepts = acceptsOf(apiDoc.security, 'security');
  const byOperation = new WeakMap<Operation, Accepts | null>();
  const acceptsFor = (operation: Operation): Accepts | undefined => {
    let accepts = byOperation.get(operation);
    if (accepts === undefined) {
      accepts = (operation.security ? acceptsOf(operation.security, 'operation security') : documentAccepts) ?? null;
      byOperation.set(operation, accepts);
    }
    return accepts ?? undefined;
  };

  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const operation = (req as Request & { openapi?: { schema?: Operation } }).openapi?.schema;
    // Not an operation of the spec: the validator or the final 404 answers it.
    const accepts = operation && acceptsFor(operation);
    if (!accepts) return next();
    try {
      const caller = await lookupCaller(req, auth, accepts);
      // Every answer to an authenticated caller, errors too, is theirs alone.
      res.set('Cache-Control', 'no-store');
      if (caller.token.kind === 'login' && caller.user.forcePasswordChange && operation[PASSWORD_CHANGE_EXTENSION] !== true) {
        throw new PasswordChangeRequiredError();
      }
      if (!scopesAllow(caller.token.scopes, req.method)) throw new ForbiddenError("the token's scopes do not allow this call");
      req.caller = caller;
    } catch (err) {
      return next(err);
    }
    next();
  };
}

export function callerOf(req: Request): Caller {
  if (!req.caller) throw new UnauthenticatedError();
  return req.caller;
}
