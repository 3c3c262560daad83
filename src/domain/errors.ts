import type { User } from './types';

/** The contract's stable error codes (API.md §0). The HTTP layer maps each to its status. */
export type ErrorCode =
  | 'validation_failed'
  | 'weak_password'
  | 'wrong_password'
  | 'email_unverified'
  | 'invalid_token'
  | 'unauthenticated'
  | 'password_change_required'
  | 'forbidden'
  | 'not_found'
  | 'user_deactivated'
  | 'conflict'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'rate_limited'
  | 'unavailable'
  | 'internal_error'
  | 'mfa_required'
  | 'mfa_enrollment_required'
  | 'mfa_failed';

export interface ErrorDetail {
  path: string;
  message: string;
}

/**
 * A failure the client caused or may see. `code` is stable once published; adapters (HTTP,
 * JSON-RPC, the CLI) tell failures apart by class and code, never by message.
 */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra: {
      details?: ErrorDetail[];
      /** The user a conflict or a 410 is about; shown to admins only. */
      user?: User;
      /** When to try again (rate_limited, unavailable). */
      retryAfterSeconds?: number;
      /** The limit that was reached (rate_limited). */
      limit?: number;
      /** Where a code was refused (mfa_failed): the second step of a login (401) or confirming a factor (400). */
      stage?: 'login' | 'enrolment';
    } = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends AppError {
  constructor(message: string, details?: ErrorDetail[]) {
    super('validation_failed', message, { details });
  }
}

export class WeakPasswordError extends AppError {
  constructor(message: string) {
    super('weak_password', message);
  }
}

export class WrongPasswordError extends AppError {
  constructor(message = 'current password is wrong') {
    super('wrong_password', message);
  }
}

/** The right password of a self-registered account whose address is not yet verified. */
export class EmailUnverifiedError extends AppError {
  constructor() {
    super('email_unverified', 'Verify your email address first: follow the link mailed to you');
  }
}

export class InvalidTokenError extends AppError {
  constructor() {
    super('invalid_token', 'The link is invalid, used or expired');
  }
}

export class UnauthenticatedError extends AppError {
  constructor(message = 'Unauthorized') {
    super('unauthenticated', message);
  }
}

export class PasswordChangeRequiredError extends AppError {
  constructor() {
    super('password_change_required', 'Password change required');
  }
}

export class ForbiddenError extends AppError {
  constructor(message = 'Forbidden') {
    super('forbidden', message);
  }
}

/** The token's scopes do not allow the call (an `api:read` token calling what writes). */
export class ScopeError extends ForbiddenError {
  constructor() {
    super("the token's scopes do not allow this call");
  }
}

/** The operation takes another kind of token (`x-policy.tokens`): a session only, or an API token only. */
export class TokenKindError extends ForbiddenError {
  constructor(wanted: 'login' | 'api') {
    super(wanted === 'login' ? 'this call needs a login session, not an API token' : 'this call takes an API token, not a login session');
  }
}

/** A caller who is not a system admin named another user where only they themself may be named. */
export class NotSelfError extends ForbiddenError {
  constructor() {
    super('only system admins may name another user');
  }
}

/** The caller lacks a group permission the operation needs (and can read the group, else it is "not found"). */
export class GroupPermissionError extends ForbiddenError {
  constructor(readonly needed: string) {
    super(`${needed} is required on this user group`);
  }
}

/**
 * Adding a member to a group would confer (through the grants the group holds on other groups)
 * more than the caller holds there. Names no other group: the caller may not be able to read it.
 */
export class GroupGrantEscalationError extends ForbiddenError {
  constructor() {
    super('membership of this user group carries permissions on other user groups that you do not hold yourself');
  }
}

/** A login token of a user with MFA that has not passed the second step, or a call that needs an `aal2` session. */
export class MfaRequiredError extends AppError {
  constructor(message = 'two-factor sign-in required: complete the second step (POST /login/mfa)') {
    super('mfa_required', message);
  }
}

/** REQUIRE_MFA_FOR_ADMINS: a system admin without MFA may only set up a factor. */
export class MfaEnrollmentRequiredError extends AppError {
  constructor() {
    super('mfa_enrollment_required', 'system admins must set up two-factor sign-in first (POST /user/me/factor)');
  }
}

/** A wrong, used or replayed code. Never says which. */
export class MfaFailedError extends AppError {
  constructor(stage: 'login' | 'enrolment', what: 'code' | 'passkey' = 'code') {
    const message = what === 'passkey' ? 'the passkey was not accepted' : stage === 'login' ? 'the code is wrong or was used already' : 'the code is wrong';
    super('mfa_failed', message, { stage });
  }
}

export class NotFoundError extends AppError {
  constructor(message = 'Not Found') {
    super('not_found', message);
  }
}

/** No such (active, visible) user. */
export class UserNotFoundError extends NotFoundError {
  constructor() {
    super('user not found');
  }
}

/** No such user group, or one the caller cannot read. */
export class GroupNotFoundError extends NotFoundError {
  constructor() {
    super('user group not found');
  }
}

export class ConflictError extends AppError {
  constructor(message: string, user?: User) {
    super('conflict', message, { user });
  }
}

/** Removing (or demoting) the last active system admin. */
export class LastAdminError extends ConflictError {
  constructor(user?: User) {
    super('cannot remove the last active admin', user);
  }
}

export class UserDeactivatedError extends AppError {
  constructor(user: User) {
    super('user_deactivated', 'user is deactivated', { user });
  }
}

/** Seconds a client is asked to wait before trying again after a 503. */
export const RETRY_AFTER_SECONDS = 2;

export class UnavailableError extends AppError {
  constructor(message = 'Service unavailable') {
    super('unavailable', message, { retryAfterSeconds: RETRY_AFTER_SECONDS });
  }
}

/** Too many attempts; `retryAfterSeconds` says when to try again. */
export class RateLimitedError extends AppError {
  constructor(retryAfterSeconds?: number, limit?: number) {
    super('rate_limited', 'too many attempts; try again later', {
      retryAfterSeconds: retryAfterSeconds === undefined ? undefined : Math.max(1, retryAfterSeconds),
      limit,
    });
  }
}

export class UnsupportedMediaTypeError extends AppError {
  constructor(message = 'Content-Type must be application/json') {
    super('unsupported_media_type', message);
  }
}

export class PayloadTooLargeError extends AppError {
  /** `limit`: the operation's limit in bytes, when known. */
  constructor(limit?: number) {
    super('payload_too_large', limit === undefined ? 'request body too large' : `request body too large: at most ${limit} bytes here`);
  }
}

export class InternalError extends AppError {
  constructor() {
    super('internal_error', 'Internal Server Error');
  }
}
