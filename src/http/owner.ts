import type { Request } from 'express';
import type { User } from '../domain/types';
import type { UserService } from '../services/user-service';
import { callerOf } from './authenticate';

/**
 * The owner a `/user/me/...` or `/user/{user}/...` operation acts on: the caller, or the user
 * `{user}` names (looked up only after the policy has let the caller through; 404 unknown, 410
 * deactivated unless `allowDeactivated`). Every handler that names a user by the path goes here.
 */
export function owner(users: UserService): (req: Request, options?: { allowDeactivated?: boolean }) => Promise<User> {
  return async (req, options) => (req.params.user === undefined ? callerOf(req).user : users.target(req.params.user as string, options));
}
