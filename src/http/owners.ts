import type { Request } from 'express';
import type { User } from '../domain/types';
import type { UserService } from '../services/user-service';
import { callerOf } from './authenticate';

/**
 * The `/user/me/...` and `/user/:user/...` forms of a route act on different owners with the same
 * handler: the caller, or an admin's target (non-admins refused before the lookup).
 */
export function ownerForms(users: UserService): [prefix: string, owner: (req: Request) => Promise<User>][] {
  return [
    ['/user/me', async (req) => callerOf(req).user],
    ['/user/:user', (req) => users.resolveTarget(callerOf(req).user, req.params.user as string)],
  ];
}
