import type { User } from './types';

export interface ErrorDetail {
  path: string;
  message: string;
}

/** A failure the client caused or may see; `code` is stable once published. */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: {
      details?: ErrorDetail[];
      /** The user a conflict is about; shown to admins only. */
      user?: User;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends AppError {
  constructor(message: string, details?: ErrorDetail[]) {
    super(400, 'validation_failed', message, { details });
  }
}

export class WeakPasswordError extends AppError {
  constructor(message: string) {
    super(400, 'weak_password', message);
  }
}

export class InvalidTokenError extends AppError {
  constructor() {
    super(400, 'invalid_token', 'The link is invalid, used or expired');
  }
}

export class UnauthenticatedError extends AppError {
  constructor(message = 'Unauthorized') {
    super(401, 'unauthenticated', message, { headers: { 'WWW-Authenticate': 'Bearer' } });
  }
}

export class PasswordChangeRequiredError extends AppError {
  constructor() {
    super(401, 'password_change_required', 'Password change required', {
      headers: { 'WWW-Authenticate': 'Bearer', Location: '/user/me/password' },
    });
  }
}

export class ForbiddenError extends AppError {
  constructor(message = 'Forbidden') {
    super(403, 'forbidden', message);
  }
}

export class NotFoundError extends AppError {
  constructor(message = 'Not Found') {
    super(404, 'not_found', message);
  }
}

export class ConflictError extends AppError {
  constructor(message: string, user?: User) {
    super(409, 'conflict', message, { user });
  }
}

export class UserDeactivatedError extends AppError {
  constructor(user: User) {
    super(410, 'user_deactivated', 'user is deactivated', { user });
  }
}

/** Seconds a client is asked to wait before trying again after a 503. */
export const RETRY_AFTER_SECONDS = 2;

export class UnavailableError extends AppError {
  constructor(message = 'Service unavailable') {
    super(503, 'unavailable', message, { headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) } });
  }
}

/** `429`: too many attempts; `Retry-After` says when to try again. */
export class RateLimitedError extends AppError {
  constructor(retryAfterSeconds: number, limit?: number) {
    const wait = String(Math.max(1, retryAfterSeconds));
    const headers: Record<string, string> = { 'Retry-After': wait };
    if (limit !== undefined) Object.assign(headers, { 'RateLimit-Limit': String(limit), 'RateLimit-Remaining': '0', 'RateLimit-Reset': wait });
    super(429, 'rate_limited', 'too many attempts; try again later', { headers });
  }
}
