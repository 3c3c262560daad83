import type { Request } from 'express';
import { NotFoundError } from '../../domain/errors';
import type { GroupPermission } from '../../domain/groups';
import type { GroupService } from '../../services/group-service';
import { callerOf } from '../authenticate';
import { body } from '../bodies';
import { auditContext } from '../audit-context';
import type { Handlers } from '../mount';
import { linkNext, pageQuery } from '../paging';
import { presentEffective, presentGroup, presentGroupDetailed, presentMember } from '../presenters';

/** User groups (RhodeCode); the service checks the caller's permission on the group. */
export function groupHandlers(groups: GroupService): Handlers {
  const actor = (req: Request) => callerOf(req).user;
  const group = (req: Request) => req.params.group as string;
  const permission = (req: Request): GroupPermission => body(req, 'grantUserOnUserGroup').permission;

  return {
    listUserGroups: async (req, res) => {
      const q = pageQuery(req);
      const page = await groups.list(actor(req), q);
      linkNext(req, res, page, q.limit);
      res.json(page.items.map(presentGroup));
    },

    createUserGroup: async (req, res) => {
      const created = await groups.create(actor(req), body(req, 'createUserGroup'), auditContext(req));
      res.status(201).location(`/user_group/${created.id}`).json(presentGroupDetailed(await groups.detailsOf(actor(req), created)));
    },

    getUserGroup: async (req, res) => {
      res.json(presentGroupDetailed(await groups.details(actor(req), group(req))));
    },

    updateUserGroup: async (req, res) => {
      const updated = await groups.update(actor(req), group(req), body(req, 'updateUserGroup'), auditContext(req));
      res.json(presentGroupDetailed(await groups.detailsOf(actor(req), updated)));
    },

    deleteUserGroup: async (req, res) => {
      await groups.delete(actor(req), group(req), auditContext(req));
      res.status(204).end();
    },

    listUserGroupMembers: async (req, res) => {
      const q = pageQuery(req);
      const page = await groups.members(actor(req), group(req), q);
      linkNext(req, res, page, q.limit);
      res.json(page.items.map(presentMember));
    },

    addUserGroupMember: async (req, res) => {
      const { added } = await groups.addMember(actor(req), group(req), req.params.user as string, auditContext(req));
      res.status(added ? 201 : 200).json({ added });
    },

    removeUserGroupMember: async (req, res) => {
      const { removed } = await groups.removeMember(actor(req), group(req), req.params.user as string, auditContext(req));
      if (!removed) throw new NotFoundError('not a member of this user group');
      res.status(204).end();
    },

    grantUserOnUserGroup: async (req, res) => {
      await groups.grantUser(actor(req), group(req), req.params.user as string, permission(req), auditContext(req));
      res.json({ permission: permission(req) });
    },

    revokeUserOnUserGroup: async (req, res) => {
      const { revoked } = await groups.revokeUser(actor(req), group(req), req.params.user as string, auditContext(req));
      if (!revoked) throw new NotFoundError('no such grant');
      res.status(204).end();
    },

    grantUserGroupOnUserGroup: async (req, res) => {
      await groups.grantGroup(actor(req), group(req), req.params.source as string, permission(req), auditContext(req));
      res.json({ permission: permission(req) });
    },

    revokeUserGroupOnUserGroup: async (req, res) => {
      const { revoked } = await groups.revokeGroup(actor(req), group(req), req.params.source as string, auditContext(req));
      if (!revoked) throw new NotFoundError('no such grant');
      res.status(204).end();
    },

    getEffectiveUserGroupPermission: async (req, res) => {
      res.json(presentEffective(await groups.effective(actor(req), group(req), req.params.user as string)));
    },
  };
}
