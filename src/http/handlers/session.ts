import type { RequestHandler, Response } from 'express';
import { ValidationError } from '../../domain/errors';
import { parseLoginUser } from '../../domain/identifiers';
import type { UserRef } from '../../domain/types';
import type { AuthService, LoginResult } from '../../services/auth-service';
import type { TokenService } from '../../services/token-service';
import { auditContext, requestMeta } from '../audit-context';
import { callerOf, CookieWithoutScriptError, lookupCaller, requestContext, SESSION_COOKIE } from '../authenticate';
import { body } from '../bodies';
import type { Handlers } from '../mount';
import { presentFactorRef, presentSession } from '../presenters';

/** Logging in and out, refreshing, and the caller's login sessions. */
export function sessionHandlers(auth: AuthService, tokens: TokenService, cookie: { secure: boolean }, loginThrottle: RequestHandler, mfaThrottle: RequestHandler): Handlers {
  const cookieOptions = { httpOnly: true, sameSite: 'strict' as const, secure: cookie.secure, path: '/' };

  const sendToken = (res: Response, result: LoginResult, setCookie: boolean) => {
    res.set('Cache-Control', 'no-store');
    res.set('Expires', result.expires.toUTCString());
    if (setCookie) res.cookie(SESSION_COOKIE, result.jwt, { ...cookieOptions, expires: result.expires });
    const answer: Record<string, unknown> = { jwt_token: result.jwt };
    if (result.mfaRequired) answer.mfa_required = true;
    if (result.mfaRequired) answer.factors = result.mfaRequired.map(presentFactorRef);
    if (result.mfaEnrollmentRequired) answer.mfa_enrollment_required = true;
    if (result.passwordChangeRequired) {
      res.set('Location', '/user/me/password');
      answer.password_change_required = true;
    }
    res.status(200).json(answer);
  };

  return {
    login: [
      loginThrottle,
      async (req, res) => {
        const login = body(req, 'login');
        // The spec has checked that exactly one is given, and `email`'s format.
        let ref: UserRef | undefined;
        if (login.email !== undefined) ref = { email: login.email };
        else if (login.user_id !== undefined) ref = { id: login.user_id };
        else ref = parseLoginUser(login.user ?? '');
        if (!ref) throw new ValidationError('user must be a UUID or an email address', [{ path: '/body/user', message: 'is neither a UUID nor an email address' }]);
        sendToken(res, await auth.login(ref, login.password, requestMeta(req)), login.set_session === true);
      },
    ],

    // The second step: per-IP throttled like /login; the renewed token goes where the caller's came from.
    loginMfa: [
      mfaThrottle,
      async (req, res) => {
        const caller = callerOf(req);
        sendToken(res, await auth.completeMfa(caller, body(req, 'loginMfa') as Parameters<AuthService['completeMfa']>[1], requestMeta(req)), caller.via === 'cookie');
      },
    ],

    // Passkey options for the second step: the same per-IP throttle as the step itself.
    loginMfaOptions: [
      mfaThrottle,
      async (req, res) => {
        res.set('Cache-Control', 'no-store');
        res.json(await auth.mfaOptions(callerOf(req)));
      },
    ],

    // A sign-in with a passkey and no password: per-IP throttled like /login.
    loginPasskeyOptions: [
      loginThrottle,
      async (_req, res) => {
        res.set('Cache-Control', 'no-store');
        res.json(await auth.passkeyOptions());
      },
    ],

    loginPasskey: [
      loginThrottle,
      async (req, res) => {
        const input = body(req, 'loginPasskey');
        sendToken(res, await auth.passkeyLogin(input.credential as Parameters<AuthService['passkeyLogin']>[0], requestMeta(req)), input.set_session === true);
      },
    ],

    logout: async (req, res) => {
      // No caller, or a bad token: nothing to end. A cookie that a cross-site form may have sent: 403.
      const caller = await lookupCaller(req, auth).catch((err: unknown) => {
        if (err instanceof CookieWithoutScriptError) throw err;
        return undefined;
      });
      await auth.logout(caller, requestMeta(req));
      res.clearCookie(SESSION_COOKIE, cookieOptions);
      res.status(204).end();
    },

    refreshToken: async (req, res) => {
      const caller = callerOf(req);
      sendToken(res, await auth.refresh(caller, requestContext(req)), caller.via === 'cookie');
    },

    amILoggedIn: (_req, res) => {
      res.status(204).end();
    },

    listMySessions: async (req, res) => {
      res.json((await tokens.sessions(callerOf(req))).map(presentSession));
    },

    endMySession: async (req, res) => {
      await tokens.endSession(callerOf(req), (req.params.id as string).toLowerCase(), auditContext(req));
      res.status(204).end();
    },
  };
}
