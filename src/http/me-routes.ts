import { Router } from 'express';
import type { GroupService } from '../services/group-service';
import type { UserService } from '../services/user-service';
import { callerOf } from './authenticate';
import { flag } from './flags';
import { presentUserDetailed } from './presenters';
import { toUserChanges, type UpdateUserBody } from './user-bodies';

export function meRoutes(users: UserService, groups: GroupService): Router {
  const router = Router();

  router.get('/user/me', async (req, res) => {
    const { user, inGroups } = callerOf(req);
    // The authentication query said whether there are memberships to look up.
    res.json(presentUserDetailed(user, inGroups ? await groups.membershipsOf(user) : []));
  });

  router.post('/user/me', async (req, res) => {
    const { user } = callerOf(req);
    const updated = await users.update(user, user, toUserChanges(req.body as UpdateUserBody), flag(req.query.send_mail, true));
    res.json(presentUserDetailed(updated, await groups.membershipsOf(updated)));
  });

  return router;
}
