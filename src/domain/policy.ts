import { ForbiddenError, NotSelfError, PasswordChangeRequiredError, ScopeError } from './errors';
import { namesUser } from './identifiers';
import { scopesAllow } from './scopes';
import type { Caller } from './types';

/**
 * Who may call an operation (`x-policy.caller` in openapi.yaml): anyone (`public`, no
 * credential needed), any authenticated caller (`user`), the caller themself or a system admin
 * (`self_or_admin`: the operation names a user, `{user}` or an argument), or system admins only
 * (`admin`).
 */
export type CallerRule = 'public' | 'user' | 'self_or_admin' | 'admin';
const CALLER_RULES: readonly CallerRule[] = ['public', 'user', 'self_or_admin', 'admin'];

export interface Policy {
  caller: CallerRule;
  /** Whether a login token confined by a pending password change may call it. */
  duringPasswordChange: boolean;
  /** Whether it changes anything: an `api:read` token may call only what does not. */
  writes: boolean;
}

/** An operation's `x-policy`; throws, naming the operation, when it is missing or malformed (fail closed). */
export function parsePolicy(raw: unknown, where: string): Policy {
  if (typeof raw !== 'object' || raw === null) throw new Error(`${where}: no x-policy (every operation declares who may call it)`);
  const { caller, writes, during_password_change: during = false, ...rest } = raw as Record<string, unknown>;
  if (Object.keys(rest).length) throw new Error(`${where}: x-policy has unknown keys ${Object.keys(rest).join(', ')}`);
  if (!CALLER_RULES.includes(caller as CallerRule)) throw new Error(`${where}: x-policy caller must be one of ${CALLER_RULES.join(', ')}`);
  if (typeof writes !== 'boolean') throw new Error(`${where}: x-policy writes must be true or false`);
  if (typeof during !== 'boolean') throw new Error(`${where}: x-policy during_password_change must be true or false`);
  return { caller: caller as CallerRule, writes, duringPasswordChange: during };
}

/**
 * The one check of who may call what, for REST operations and JSON-RPC methods alike, made
 * before any handler runs: so a refused caller learns nothing about a target (it is not looked
 * up), and no service repeats the check. `named`: the user a `self_or_admin` call names
 * (undefined: the caller); `byName`: whether a user name names a user there (JSON-RPC).
 */
export function authorize(caller: Caller, policy: Policy, named?: string, byName = false): void {
  if (caller.token.kind === 'login' && caller.user.forcePasswordChange && !policy.duringPasswordChange) {
    throw new PasswordChangeRequiredError();
  }
  if (!scopesAllow(caller.token.scopes, policy.writes)) throw new ScopeError();
  if (caller.user.isAdmin) return;
  if (policy.caller === 'admin') throw new ForbiddenError('admin access required');
  if (policy.caller === 'self_or_admin' && named !== undefined && !namesUser(caller.user, named, byName)) throw new NotSelfError();
}

