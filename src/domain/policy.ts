import { ForbiddenError, MfaEnrollmentRequiredError, MfaRequiredError, NotSelfError, PasswordChangeRequiredError, ScopeError, TokenKindError } from './errors';
import { namesUser } from './identifiers';
import { scopesAllow } from './scopes';
import type { Caller } from './types';

/**
 * Who may call an operation (`x-policy.caller` in openapi.yaml): anyone (`public`, no
 * credential needed), anyone unless `METRICS_TOKEN` is set and then only its bearer
 * (`metrics_token`: not a user's token), any authenticated caller (`user`), the caller themself
 * or a system admin (`self_or_admin`: the operation names a user, `{user}` or an argument), or
 * system admins only (`admin`).
 */
export type CallerRule = 'public' | 'metrics_token' | 'user' | 'self_or_admin' | 'admin';
const CALLER_RULES: readonly CallerRule[] = ['public', 'metrics_token', 'user', 'self_or_admin', 'admin'];

/**
 * What a login token short of the assurance level it needs may call (`x-policy.mfa`):
 * `pending`: also the `aal1` token of a user with MFA (the second step of the login);
 * `enrol`: also a system admin's token without MFA under REQUIRE_MFA_FOR_ADMINS (setting up a factor);
 * `session`: a user with MFA calls it only with an `aal2` login token (not an API token);
 * undefined: a full session is needed.
 */
export type MfaRule = 'pending' | 'enrol' | 'session';
const MFA_RULES: readonly MfaRule[] = ['pending', 'enrol', 'session'];

/**
 * Which kinds of token may call an operation (`x-policy.tokens`): `login` refuses API tokens
 * (`/refresh_token`, minting a session), `api` refuses login tokens (the JSON-RPC methods:
 * RhodeCode takes only API keys).
 */
export type TokenRule = 'any' | 'login' | 'api';
const TOKEN_RULES: readonly TokenRule[] = ['any', 'login', 'api'];

export interface Policy {
  caller: CallerRule;
  /** Whether a login token confined by a pending password change may call it. */
  duringPasswordChange: boolean;
  /** Whether it changes anything: an `api:read` token may call only what does not. */
  writes: boolean;
  mfa: MfaRule | undefined;
  tokens: TokenRule;
}

/** The deployment's MFA rules the policy applies. */
export interface MfaSettings {
  /** REQUIRE_MFA_FOR_ADMINS: a system admin's login token without MFA may only set up a factor. */
  requireMfaForAdmins: boolean;
}

const NO_MFA_SETTINGS: MfaSettings = { requireMfaForAdmins: false };

/** An operation's `x-policy`; throws, naming the operation, when it is missing or malformed (fail closed). */
export function parsePolicy(raw: unknown, where: string): Policy {
  if (typeof raw !== 'object' || raw === null) throw new Error(`${where}: no x-policy (every operation declares who may call it)`);
  const { caller, writes, during_password_change: during = false, mfa, tokens = 'any', ...rest } = raw as Record<string, unknown>;
  if (Object.keys(rest).length) throw new Error(`${where}: x-policy has unknown keys ${Object.keys(rest).join(', ')}`);
  if (!CALLER_RULES.includes(caller as CallerRule)) throw new Error(`${where}: x-policy caller must be one of ${CALLER_RULES.join(', ')}`);
  if (typeof writes !== 'boolean') throw new Error(`${where}: x-policy writes must be true or false`);
  if (typeof during !== 'boolean') throw new Error(`${where}: x-policy during_password_change must be true or false`);
  if (mfa !== undefined && !MFA_RULES.includes(mfa as MfaRule)) throw new Error(`${where}: x-policy mfa must be one of ${MFA_RULES.join(', ')}`);
  if (!TOKEN_RULES.includes(tokens as TokenRule)) throw new Error(`${where}: x-policy tokens must be one of ${TOKEN_RULES.join(', ')}`);
  if (!needsUserToken(caller as CallerRule) && (mfa !== undefined || tokens !== 'any')) throw new Error(`${where}: x-policy mfa and tokens mean nothing without a user's token`);
  return { caller: caller as CallerRule, writes, duringPasswordChange: during, mfa: mfa as MfaRule | undefined, tokens: tokens as TokenRule };
}

/** Whether an operation's caller presents a user's token (else nobody's, or the metrics token). */
export function needsUserToken(caller: CallerRule): boolean {
  return caller !== 'public' && caller !== 'metrics_token';
}

/** The token's kind is one the policy takes (`tokens`); checked first, before what a kind of token may be confined to. */
export function authorizeTokenKind(caller: Caller, policy: Policy): void {
  if (policy.tokens !== 'any' && caller.token.kind !== policy.tokens) throw new TokenKindError(policy.tokens);
}

/**
 * The one check of who may call what, for REST operations and JSON-RPC methods alike, made
 * before any handler runs: so a refused caller learns nothing about a target (it is not looked
 * up), and no service repeats the check. `named`: the user a `self_or_admin` call names
 * (undefined: the caller); `byName`: whether a user name names a user there (JSON-RPC).
 *
 * The assurance level comes first (a pending second step before a pending password change):
 * it is read from the token row the request has loaded, so it costs no query.
 */
export function authorize(caller: Caller, policy: Policy, named?: string, byName = false, mfa: MfaSettings = NO_MFA_SETTINGS): void {
  const { token, user } = caller;
  authorizeTokenKind(caller, policy);
  if (token.kind === 'login') {
    if (user.mfaEnabled && token.aal !== 'aal2' && policy.mfa !== 'pending') throw new MfaRequiredError();
    if (mfa.requireMfaForAdmins && user.isAdmin && !user.mfaEnabled && policy.mfa !== 'pending' && policy.mfa !== 'enrol') {
      throw new MfaEnrollmentRequiredError();
    }
    if (user.forcePasswordChange && !policy.duringPasswordChange) throw new PasswordChangeRequiredError();
  }
  if (!scopesAllow(token.scopes, policy.writes)) throw new ScopeError();
  if (token.kind === 'api' && policy.mfa === 'session' && user.mfaEnabled) {
    throw new MfaRequiredError('a user with two-factor sign-in does this with a two-factor login session (aal2), not an API token');
  }
  if (user.isAdmin) return;
  if (policy.caller === 'admin') throw new ForbiddenError('admin access required');
  if (policy.caller === 'self_or_admin' && named !== undefined && !namesUser(caller.user, named, byName)) throw new NotSelfError();
}
