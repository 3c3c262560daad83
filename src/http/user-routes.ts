import { Router } from 'express';
import type { GroupService } from '../services/group-service';
import type { UserService } from '../services/user-service';
import { callerOf } from './authenticate';
import { flag } from './flags';
import { linkNext, pageQuery } from './paging';
import { presentNewUser, presentUserDetailed, presentUserListItem } from './presenters';
import { toNewUser, toUserChanges, type NewUserBody, type UpdateUserBody } from './user-bodies';

/** User administration; the service refuses non-admins before looking at the target. */
export function userRoutes(users: UserService, groups: GroupService): Router {
  const router = Router();

  router.get('/user', async (req, res) => {
    const q = req.query as Record<string, string | undefined>;
    const includeDeactivated = flag(q.include_deactivated, false);
    const { limit, cursor } = pageQuery(req);
    const page = await users.list(callerOf(req).user, {
      limit,
      cursor,
      q: q.q,
      isAdmin: q.is_admin === undefined ? undefined : flag(q.is_admin, false),
      includeDeactivated,
    });
    linkNext(req, res, page, limit);
    res.json(page.items.map((u) => presentUserListItem(u, includeDeactivated)));
  });

  router.post('/user', async (req, res) => {
    const user = await users.create(callerOf(req).user, toNewUser(req.body as NewUserBody), flag(req.query.send_mail, true));
    res.status(201).location(`/user/${user.id}`).json(presentNewUser(user));
  });

  router.get('/user/:user', async (req, res) => {
    const user = await users.getUser(callerOf(req).user, req.params.user);
    res.json(presentUserDetailed(user, await groups.membershipsOf(user)));
  });

  router.post('/user/:user', async (req, res) => {
    const updated = await users.updateByRef(
      callerOf(req).user,
      req.params.user,
      toUserChanges(req.body as UpdateUserBody),
      flag(req.query.send_mail, true),
    );
    res.json(presentUserDetailed(updated, await groups.membershipsOf(updated)));
  });

  router.delete('/user/:user', async (req, res) => {
    await users.deactivate(callerOf(req).user, req.params.user);
    res.status(204).end();
  });

  router.post('/user/:user/reactivate', async (req, res) => {
    const user = await users.reactivate(callerOf(req).user, req.params.user, flag(req.query.send_mail, true));
    res.json(presentUserDetailed(user, await groups.membershipsOf(user)));
  });

  return router;
}
