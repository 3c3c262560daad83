import type { ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import { AppError, ForbiddenError, NotFoundError, UnauthenticatedError, ValidationError, type ErrorDetail } from '../domain/errors';
import { presentConflictUser } from './presenters';

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
      return new AppError(413, 'payload_too_large', 'request body too large');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new AppError(415, 'unsupported_media_type', err.message ?? 'unsupported encoding');
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
      return new AppError(413, 'payload_too_large', 'request body too large');
    case 415:
      return new AppError(415, 'unsupported_media_type', 'Content-Type must be application/json');
  }
  return undefined;
}

/** One place that turns every failure into the contract's error body. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    const requestId = String(req.id ?? '');
    let appError = err instanceof AppError ? err : translate((err ?? {}) as HttpishError);
    if (!appError || appError.status >= 500) {
      if (!appError) log.error({ err, request_id: requestId }, 'unexpected error');
      appError ??= new AppError(500, 'internal_error', 'Internal Server Error');
    }
    const body: Record<string, unknown> = { error: appError.message, code: appError.code };
    if (appError.extra.details?.length) body.details = appError.extra.details;
    if (appError.extra.user) body.user = presentConflictUser(appError.extra.user);
    body.request_id = requestId;
    if (appError.extra.headers) res.set(appError.extra.headers);
    res.status(appError.status).json(body);
  };
}
