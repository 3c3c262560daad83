import type { EmailChanges } from '../../services/email-change';
import type { GroupService } from '../../services/group-service';
import type { UserService } from '../../services/user-service';
import { auditContext } from '../audit-context';
import { callerOf } from '../authenticate';
import { body, query } from '../bodies';
import { flag } from '../flags';
import type { Handlers } from '../mount';
import { presentUserDetailed } from '../presenters';
import { toUserChanges } from '../user-bodies';

/** The caller's own account, and the links that confirm or undo a change of its address. */
export function meHandlers(users: UserService, groups: GroupService, emailChanges: EmailChanges): Handlers {
  return {
    getMe: async (req, res) => {
      const { user, inGroups } = callerOf(req);
      // The authentication query said whether there are memberships to look up.
      res.json(presentUserDetailed(user, inGroups ? await groups.membershipsOf(user) : []));
    },

    updateMe: async (req, res) => {
      const { user, token } = callerOf(req);
      const b = body(req, 'updateMe');
      const updated = await users.update(user, user, toUserChanges(b), flag(query(req, 'updateMe').send_mail, true), auditContext(req), {
        tokenKind: token.kind,
        currentPassword: b.current_password,
      });
      res.json(presentUserDetailed(updated, await groups.membershipsOf(updated)));
    },

    confirmEmailChange: async (req, res) => {
      await emailChanges.confirm(body(req, 'confirmEmailChange').token, auditContext(req));
      res.status(204).end();
    },

    revertEmailChange: async (req, res) => {
      await emailChanges.revert(body(req, 'revertEmailChange').token, auditContext(req));
      res.status(204).end();
    },
  };
}
