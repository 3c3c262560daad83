import {
  AppError,
  ConflictError,
  ForbiddenError,
  GroupNotFoundError,
  GroupPermissionError,
  NotSelfError,
  ScopeError,
  TokenKindError,
  UserDeactivatedError,
  UserNotFoundError,
} from '../domain/errors';

/** An expected failure of a method: its message is the envelope's `error`, in RhodeCode's words. */
export class RpcError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RpcError';
  }
}

/** RhodeCode's JSONRPCForbidden message. */
export const ACCESS_DENIED = 'Access was denied to this resource.';
/** RhodeCode's answer to a missing, unknown or unfit token. */
export const INVALID_API_KEY = 'Invalid API KEY';
export const BAD_ROLE = 'API KEY has bad role for an API call';

/** What a method's error names, to word RhodeCode's "`x` does not exist". */
export interface Subjects {
  group?: string;
  user?: string;
  /** The conflict message, when the method knows better than the service. */
  conflict?: (err: ConflictError) => string;
}

/**
 * The domain's errors in RhodeCode's words, told apart by class (never by message). Anything
 * that is not the caller's doing (a database outage, a bug) is returned as it is, to be answered
 * as such by the HTTP adapter.
 */
export function toRpcError(err: unknown, subjects: Subjects = {}): unknown {
  if (err instanceof RpcError || !(err instanceof AppError)) return err;
  if (err instanceof GroupNotFoundError) return new RpcError(subjects.group === undefined ? err.message : `user group \`${subjects.group}\` does not exist`);
  if (err instanceof UserNotFoundError) return new RpcError(subjects.user === undefined ? err.message : `user \`${subjects.user}\` does not exist`);
  // RhodeCode answers a lacking grant on a user group as if the group did not exist.
  if (err instanceof GroupPermissionError && subjects.group !== undefined) return new RpcError(`user group \`${subjects.group}\` does not exist`);
  if (err instanceof TokenKindError) return new RpcError(INVALID_API_KEY);
  if (err instanceof NotSelfError) return new RpcError('userid is not the same as your user');
  if (err instanceof ScopeError) return new RpcError(BAD_ROLE);
  if (err instanceof ForbiddenError) return new RpcError(ACCESS_DENIED);
  if (err instanceof UserDeactivatedError) return new RpcError(`user \`${subjects.user ?? err.extra.user?.name ?? ''}\` is deactivated`);
  if (err instanceof ConflictError && err.constructor === ConflictError && subjects.conflict) return new RpcError(subjects.conflict(err));
  if (err.code === 'unavailable' || err.code === 'internal_error') return err;
  return new RpcError(err.message);
}
