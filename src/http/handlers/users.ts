import type { User } from '../../domain/types';
import type { GroupService } from '../../services/group-service';
import type { UserService } from '../../services/user-service';
import { auditContext } from '../audit-context';
import { callerOf } from '../authenticate';
import { body, query } from '../bodies';
import { flag } from '../flags';
import type { Handlers } from '../mount';
import { owner } from '../owner';
import { linkNext, pageQuery } from '../paging';
import { presentNewUser, presentUserDetailed, presentUserListItem } from '../presenters';
import { toNewUser, toUserChanges } from '../user-bodies';

/** User administration (system admins: the operations' policy). */
export function userHandlers(users: UserService, groups: GroupService): Handlers {
  const detailed = async (user: User) => presentUserDetailed(user, await groups.membershipsOf(user));
  const target = owner(users);

  return {
    listUsers: async (req, res) => {
      const q = query(req, 'listUsers');
      const includeDeactivated = flag(q.include_deactivated, false);
      const { limit, cursor } = pageQuery(req);
      const page = await users.list({ limit, cursor, q: q.q, isAdmin: q.is_admin === undefined ? undefined : flag(q.is_admin, false), includeDeactivated });
      linkNext(req, res, page, limit);
      res.json(page.items.map((u) => presentUserListItem(u, includeDeactivated)));
    },

    createUser: async (req, res) => {
      const user = await users.create(callerOf(req).user, toNewUser(body(req, 'createUser')), flag(query(req, 'createUser').send_mail, true), auditContext(req));
      res.status(201).location(`/user/${user.id}`).json(presentNewUser(user));
    },

    getUser: async (req, res) => {
      res.json(await detailed(await target(req)));
    },

    updateUser: async (req, res) => {
      const { user, token } = callerOf(req);
      const b = body(req, 'updateUser');
      const updated = await users.update(user, await target(req), toUserChanges(b), flag(query(req, 'updateUser').send_mail, true), auditContext(req), {
        tokenKind: token.kind,
        currentPassword: b.current_password,
      });
      res.json(await detailed(updated));
    },

    deactivateUser: async (req, res) => {
      await users.deactivate(callerOf(req).user, await target(req), auditContext(req));
      res.status(204).end();
    },

    reactivateUser: async (req, res) => {
      const user = await users.reactivate(callerOf(req).user, await target(req, { allowDeactivated: true }), flag(query(req, 'reactivateUser').send_mail, true), auditContext(req));
      res.json(await detailed(user));
    },
  };
}
