import type { ErrorRequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { DatabaseAvailability } from '../db/availability';
import { isDiskFull } from '../db/disk-full';
import {
  AppError,
  ForbiddenError,
  InternalError,
  NotFoundError,
  PayloadTooLargeError,
  UnauthenticatedError,
  UnavailableError,
  UnsupportedMediaTypeError,
  ValidationError,
  type ErrorCode,
  type ErrorDetail,
} from '../domain/errors';
import { presentConflictUser } from './presenters';
import { bodyUnread } from './read-body';

/** The HTTP status of each of the contract's error codes. */
export const STATUS: Record<ErrorCode, number> = {
  validation_failed: 400,
  weak_password: 400,
  invalid_token: 400,
  unauthenticated: 401,
  password_change_required: 401,
  wrong_password: 403,
  email_unverified: 403,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  user_deactivated: 410,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal_error: 500,
  unavailable: 503,
  mfa_required: 403,
  mfa_enrollment_required: 403,
  mfa_failed: 401, // 400 when confirming a factor: see statusOf
};

/** The status of an error: its code's, but a code refused while confirming a factor is a bad request (the session is fine). */
export function statusOf(err: AppError): number {
  return err.code === 'mfa_failed' && err.extra.stage === 'enrolment' ? 400 : STATUS[err.code];
}

/** The headers an error's code calls for. */
function setHeaders(res: Response, err: AppError): void {
  switch (err.code) {
    case 'unauthenticated':
      res.set('WWW-Authenticate', 'Bearer');
      break;
    case 'mfa_failed':
      if (statusOf(err) === 401) res.set('WWW-Authenticate', 'Bearer');
      break;
    case 'password_change_required':
      res.set({ 'WWW-Authenticate': 'Bearer', Location: '/user/me/password' });
      break;
    case 'rate_limited':
    case 'unavailable': {
      const wait = err.extra.retryAfterSeconds;
      if (wait !== undefined) res.set('Retry-After', String(wait));
      if (err.extra.limit !== undefined && wait !== undefined) {
        res.set({ 'RateLimit-Limit': String(err.extra.limit), 'RateLimit-Remaining': '0', 'RateLimit-Reset': String(wait) });
      }
      break;
    }
  }
}

interface HttpishError {
  status?: number;
  type?: string;
  errors?: { path?: string; message?: string }[];
  message?: string;
}

/** Body-parser and validator errors as the contract's errors; undefined for anything else. */
function translate(err: HttpishError): AppError | undefined {
  switch (err.type) {
    case 'entity.parse.failed':
      return new ValidationError('malformed JSON body', [{ path: '/body', message: 'is not valid JSON' }]);
    case 'entity.too.large':
      return new PayloadTooLargeError((err as { limit?: number }).limit);
    case 'encoding.unsupported':
      return new UnsupportedMediaTypeError('Content-Encoding is not accepted: send the body as it is (identity)');
    case 'charset.unsupported':
      return new UnsupportedMediaTypeError(err.message ?? 'unsupported encoding');
  }
  switch (err.status) {
    case 400: {
      const details: ErrorDetail[] = (err.errors ?? []).map((e) => ({
        path: (e.path ?? '').startsWith('/') ? (e.path as string) : `/${(e.path ?? '').replace(/^\./, '').replace(/\./g, '/')}`,
        message: e.message ?? 'is invalid',
      }));
      return new ValidationError(err.message ?? 'validation failed', details);
    }
    case 401:
      return new UnauthenticatedError();
    case 403:
      return new ForbiddenError();
    case 404:
    case 405:
      return new NotFoundError('Route Not Found');
    case 413:
      return new PayloadTooLargeError();
    case 415:
      return new UnsupportedMediaTypeError();
  }
  return undefined;
}

/**
 * Database errors that are not bugs: the database out of reach (503, the outage logged once by
 * `availability`), its disk full (503, SQLSTATE 53100), a transaction that kept losing to others or a statement that ran out its
 * timeout (503: try again), and a value
 * Postgres refused (class 22, data exception: 400; validation should have caught it first, so it
 * is logged as a warning for someone to tighten the spec).
 */
function fromDatabase(err: unknown, availability: DatabaseAvailability | undefined, log: Logger, requestId: string): AppError | undefined {
  if (availability?.failed(err)) return new UnavailableError('the database is unreachable; try again shortly');
  // The disk full (logged once by the database's DiskFullLog): writes wait for space, reads go on.
  if (isDiskFull(err)) return new UnavailableError('the database disk is full; try again later');
  const code = (err as { code?: unknown } | null)?.code;
  if (code === '40P01' || code === '40001') return new UnavailableError('too much contention; try again');
  // statement_timeout (DATABASE_STATEMENT_TIMEOUT): the database is there but too slow now.
  if (code === '57014') return new UnavailableError('the database is too slow to answer; try again shortly');
  if (typeof code === 'string' && /^22[0-9A-Z]{3}$/.test(code)) {
    log.warn({ request_id: requestId, sqlstate: code }, 'the database refused a value that validation let through');
    return new ValidationError('invalid input', [{ path: '/body', message: 'holds a value the database cannot store' }]);
  }
  return undefined;
}

/** One place that turns every failure into the contract's error body. */
export function errorHandler(log: Logger, availability?: DatabaseAvailability): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    const requestId = String(req.id ?? '');
    let appError = err instanceof AppError ? err : (translate((err ?? {}) as HttpishError) ?? fromDatabase(err, availability, log, requestId));
    if (!appError) {
      log.error({ err, request_id: requestId }, 'unexpected error');
      appError = new InternalError();
    }
    const body: Record<string, unknown> = { error: appError.message, code: appError.code };
    if (appError.extra.details?.length) body.details = appError.extra.details;
    if (appError.extra.user) body.user = presentConflictUser(appError.extra.user);
    body.request_id = requestId;
    setHeaders(res, appError);
    // Refused before its body was read (a stranger, a body too large, an encoding): the rest of
    // the body is not read, and the connection ends with this answer.
    if (bodyUnread(req)) res.set('Connection', 'close');
    res.status(statusOf(appError)).json(body);
  };
}
