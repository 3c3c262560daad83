import { Router, type Request } from 'express';
import { NotFoundError } from '../domain/errors';
import type { GroupPermission } from '../domain/groups';
import type { GroupService } from '../services/group-service';
import { callerOf } from './authenticate';
import { linkNext, pageQuery } from './paging';
import { presentEffective, presentGroup, presentGroupDetailed, presentUser } from './presenters';

export function groupRoutes(groups: GroupService): Router {
  const router = Router();
  const actor = (req: Request) => callerOf(req).user;
  const group = (req: Request) => req.params.group as string;

  router.get('/user_group', async (req, res) => {
    const q = pageQuery(req);
    const page = await groups.list(actor(req), q);
    linkNext(req, res, page, q.limit);
    res.json(page.items.map(presentGroup));
  });

  router.post('/user_group', async (req, res) => {
    const created = await groups.create(actor(req), req.body);
    res.status(201).location(`/user_group/${created.id}`).json(presentGroupDetailed(await groups.detailsOf(created)));
  });

  router.get('/user_group/:group', async (req, res) => {
    res.json(presentGroupDetailed(await groups.details(actor(req), group(req))));
  });

  router.post('/user_group/:group', async (req, res) => {
    const updated = await groups.update(actor(req), group(req), req.body);
    res.json(presentGroupDetailed(await groups.detailsOf(updated)));
  });

  router.delete('/user_group/:group', async (req, res) => {
    await groups.delete(actor(req), group(req));
    res.status(204).end();
  });

  router.get('/user_group/:group/member', async (req, res) => {
    const q = pageQuery(req);
    const page = await groups.members(actor(req), group(req), q);
    linkNext(req, res, page, q.limit);
    res.json(page.items.map(presentUser));
  });

  router.put('/user_group/:group/member/:user', async (req, res) => {
    const { added } = await groups.addMember(actor(req), group(req), req.params.user as string);
    res.status(added ? 201 : 200).json({ added });
  });

  router.delete('/user_group/:group/member/:user', async (req, res) => {
    const { removed } = await groups.removeMember(actor(req), group(req), req.params.user as string);
    if (!removed) throw new NotFoundError('not a member of this user group');
    res.status(204).end();
  });

  router.put('/user_group/:group/grant/user/:user', async (req, res) => {
    const permission = (req.body as { permission: GroupPermission }).permission;
    await groups.grantUser(actor(req), group(req), req.params.user as string, permission);
    res.json({ permission });
  });

  router.delete('/user_group/:group/grant/user/:user', async (req, res) => {
    const { revoked } = await groups.revokeUser(actor(req), group(req), req.params.user as string);
    if (!revoked) throw new NotFoundError('no such grant');
    res.status(204).end();
  });

  router.put('/user_group/:group/grant/user_group/:source', async (req, res) => {
    const permission = (req.body as { permission: GroupPermission }).permission;
    await groups.grantGroup(actor(req), group(req), req.params.source as string, permission);
    res.json({ permission });
  });

  router.delete('/user_group/:group/grant/user_group/:source', async (req, res) => {
    const { revoked } = await groups.revokeGroup(actor(req), group(req), req.params.source as string);
    if (!revoked) throw new NotFoundError('no such grant');
    res.status(204).end();
  });

  router.get('/user_group/:group/effective/:user', async (req, res) => {
    res.json(presentEffective(await groups.effective(actor(req), group(req), req.params.user as string)));
  });

  return router;
}
