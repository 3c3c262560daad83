import { parse as parseCookies } from 'cookie';
import type { Request } from 'express';
import { ForbiddenError, UnauthenticatedError } from '../domain/errors';
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

/**
 * A request that changes something and is signed in by the session cookie must show it was sent
 * by a page's script, not by a form of another site: a JSON body (`Content-Type:
 * application/json`) or an `X-Requested-With` header, neither of which a cross-site form can send
 * (and a cross-site script cannot without a CORS preflight that only CORS_ORIGINS pass). Besides
 * the cookie's `SameSite=Strict`, which sibling subdomains get around.
 */
export class CookieWithoutScriptError extends ForbiddenError {
  constructor() {
    super('a request that changes something with the session cookie must send a JSON body or an X-Requested-With header');
  }
}

function sentByScript(req: Request): boolean {
  if (req.method === 'GET') return true; // HEAD is routed as GET
  const type = req.headers['content-type'];
  return (type !== undefined && /^application\/json\s*(;|$)/i.test(type)) || req.headers['x-requested-with'] !== undefined;
}

/** The caller behind the request's credential, looked up once per request. */
export function lookupCaller(req: Request, auth: AuthService, accepts: Accepts = ANY_CREDENTIAL): Promise<Caller> {
  if (!req.callerLookup) {
    const cred = credential(req, accepts);
    req.callerLookup = !cred
      ? Promise.reject(new UnauthenticatedError())
      : cred.via === 'cookie' && !sentByScript(req)
        ? Promise.reject(new CookieWithoutScriptError())
        : auth.authenticate(cred.jwt, requestContext(req), cred.via);
  }
  return req.callerLookup;
}

export function callerOf(req: Request): Caller {
  if (!req.caller) throw new UnauthenticatedError();
  return req.caller;
}
