import { parse as parseCookies } from 'cookie';
import type { Request } from 'express';
import { UnauthenticatedError } from '../domain/errors';
import type { Caller } from '../domain/types';
import type { AuthService, RequestContext } from '../services/auth-service';
import type { Accepts, Operation } from './route-table';

export const SESSION_COOKIE = 'account_session';

declare module 'express-serve-static-core' {
  interface Request {
    /** The operation of openapi.yaml the request names (set by the route table). */
    operation?: Operation;
    /** Its path parameters, percent-decoded (Express resets `req.params` at each layer; the handler gets them there). */
    pathParams?: Record<string, string>;
    /** Set for authenticated operations by the policy. */
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

export function callerOf(req: Request): Caller {
  if (!req.caller) throw new UnauthenticatedError();
  return req.caller;
}
