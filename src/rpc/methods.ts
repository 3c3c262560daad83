import { z } from 'zod';
import { GroupNotFoundError, type ConflictError } from '../domain/errors';
import { namesUser, parseUserRef } from '../domain/identifiers';
import { nameSkeleton } from '../domain/name-skeleton';
import type { UserGroup } from '../domain/groups';
import type { AuditContext } from '../domain/audit';
import type { User } from '../domain/types';
import type { GroupService, Member } from '../services/group-service';
import type { PasswordService } from '../services/password-service';
import type { UserService } from '../services/user-service';
import { arg, optional, required } from './args';
import { toRpcError, type Subjects } from './errors';
import { rhodecodeUser, rhodecodeUserGroup } from './presenters';

/**
 * RhodeCode's JSON-RPC methods for users and user groups, over the same services as the REST
 * routes. Arguments, results and messages follow RhodeCode's `rhodecode/api/views/user_api.py`
 * and `user_group_api.py`. Who may call each method is its policy in openapi.yaml
 * (`x-rpc-methods`), checked before it runs (rpc/api.ts): no method repeats that check.
 */

export interface RpcServices {
  users: UserService;
  groups: GroupService;
  passwords: PasswordService;
}

interface Context extends RpcServices {
  actor: User;
  /** The caller and the request, for the audit log. */
  audit: AuditContext;
}

export interface RpcMethod<S extends z.ZodObject = z.ZodObject> {
  args: S;
  /** What the method's errors name, from its arguments. */
  subjects?: (args: z.output<S>) => Subjects;
  run(ctx: Context, args: z.output<S>): Promise<unknown>;
}

const method = <S extends z.ZodObject>(m: RpcMethod<S>) => m as unknown as RpcMethod;

/** "Everything" for the services' paged reads (RhodeCode does not page). */
const ALL = 1_000_000;

/** Runs service calls, turning the domain's errors into RhodeCode's messages (for steps whose subjects differ). */
async function guard<T>(subjects: Subjects, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw toRpcError(err, subjects);
  }
}

/** RhodeCode's create_user wording: which of name (or a name confusable with it) and email is taken (admins are told who holds it). */
function conflictMessage(err: ConflictError, name: string | undefined, email: string | undefined): string {
  const holder = err.extra.user;
  if (holder && name !== undefined && (holder.name === name || nameSkeleton(holder.name) === nameSkeleton(name))) return `user \`${name}\` already exist`;
  if (holder && email !== undefined && holder.email.toLowerCase() === email.toLowerCase()) return `email \`${email}\` already exist`;
  return err.message;
}

/** A user named by a UUID or an email as REST names them, or (RhodeCode) by an active user's name. */
async function userRef(ctx: Context, raw: string): Promise<string> {
  try {
    parseUserRef(raw);
    return raw;
  } catch {
    return guard({ user: raw }, async () => (await ctx.groups.user(ctx.actor, raw, 'loose', undefined)).id);
  }
}

/** Every member, as the caller may see them. */
async function allMembers(ctx: Context, group: UserGroup): Promise<Member[]> {
  return (await ctx.groups.members(ctx.actor, group.id, { limit: ALL })).items;
}

const userChanges = {
  username: optional(arg.name()),
  email: optional(arg.email()),
  firstname: arg.personalName(),
  lastname: arg.personalName(),
  admin: optional(arg.boolean()),
};

export const RPC_METHODS: Record<string, RpcMethod> = {
  create_user: method({
    args: z.object({
      username: required(arg.name()),
      email: required(arg.email()),
      password: optional(arg.text(4096)),
      firstname: arg.personalName(),
      lastname: arg.personalName(),
      active: optional(arg.boolean()),
      admin: optional(arg.boolean()),
      force_password_change: optional(arg.boolean()),
    }),
    subjects: (a) => ({ conflict: (err) => conflictMessage(err, a.username, a.email) }),
    async run(ctx, a) {
      let user = await ctx.users.create(
        ctx.actor,
        {
          name: a.username,
          email: a.email,
          password: a.password || undefined,
          firstName: a.firstname,
          lastName: a.lastname,
          isAdmin: a.admin ?? false,
          forcePasswordChange: a.force_password_change ?? false,
        },
        false,
        ctx.audit,
      );
      if (a.active === false) {
        await ctx.users.deactivate(ctx.actor, user, ctx.audit);
        user = await ctx.users.target(user.id, { allowDeactivated: true });
      }
      return { msg: `created new user \`${user.name}\``, user: rhodecodeUser(user) };
    },
  }),

  /** Without `userid`, the caller; a non-admin may name only themself (the policy: self_or_admin), and naming oneself needs no lookup. */
  get_user: method({
    args: z.object({ userid: optional(arg.ref()) }),
    subjects: (a) => ({ user: a.userid }),
    async run(ctx, a) {
      const user = a.userid === undefined || namesUser(ctx.actor, a.userid, true) ? ctx.actor : await ctx.users.target(await userRef(ctx, a.userid), { allowDeactivated: true });
      const memberships = await ctx.groups.membershipsOf(user);
      return { ...rhodecodeUser(user), groups: memberships.map((m) => ({ id: m.id, name: m.name, permission: m.permission })) };
    },
  }),

  get_users: method({
    args: z.object({}),
    async run(ctx) {
      return (await ctx.users.list({ limit: ALL, includeDeactivated: true })).items.map(rhodecodeUser);
    },
  }),

  update_user: method({
    args: z.object({ userid: required(arg.ref()), ...userChanges, active: optional(arg.boolean()), password: optional(arg.text(4096)) }),
    subjects: (a) => ({ user: a.userid, conflict: (err) => conflictMessage(err, a.username, a.email) }),
    async run(ctx, a) {
      if (a.password !== undefined) ctx.passwords.checkPolicy(a.password); // before anything changes
      const ref = await userRef(ctx, a.userid);
      // Reactivate first (so the changes apply to an active user); deactivate last.
      const target = a.active === true ? await ctx.users.reactivate(ctx.actor, await ctx.users.target(ref, { allowDeactivated: true }), false, ctx.audit) : await ctx.users.target(ref);
      const changes = { name: a.username, email: a.email, firstName: a.firstname, lastName: a.lastname, isAdmin: a.admin };
      // Only API tokens reach JSON-RPC: exempt from the current password (API.md §2.2).
      let user = await ctx.users.update(ctx.actor, target, changes, false, ctx.audit, { tokenKind: 'api' });
      if (a.password !== undefined) await ctx.passwords.setByAdmin(user, a.password, ctx.audit);
      if (a.active === false) {
        await ctx.users.deactivate(ctx.actor, user, ctx.audit);
        user = await ctx.users.target(user.id, { allowDeactivated: true });
      }
      return { msg: `updated user ID:${user.id} ${user.name}`, user: rhodecodeUser(user) };
    },
  }),

  /** Deactivates, as `DELETE /user/{user}` (the row stays; RhodeCode deletes it). */
  delete_user: method({
    args: z.object({ userid: required(arg.ref()) }),
    subjects: (a) => ({ user: a.userid }),
    async run(ctx, a) {
      const user = await ctx.users.target(await userRef(ctx, a.userid));
      await ctx.users.deactivate(ctx.actor, user, ctx.audit);
      return { msg: `deleted user ID:${user.id} ${user.name}`, user: null };
    },
  }),

  create_user_group: method({
    args: z.object({ group_name: required(arg.name()), description: optional(arg.text(10_000)), owner: optional(arg.ref()), active: optional(arg.boolean()) }),
    subjects: (a) => ({ user: a.owner, conflict: () => `user group \`${a.group_name}\` already exist` }),
    async run(ctx, a) {
      const group = await ctx.groups.create(ctx.actor, { name: a.group_name, description: a.description, owner: a.owner, active: a.active }, ctx.audit, 'loose');
      return { msg: `created new user group \`${group.name}\``, user_group: rhodecodeUserGroup(group, []) };
    },
  }),

  get_user_group: method({
    args: z.object({ usergroupid: required(arg.ref()) }),
    subjects: (a) => ({ group: a.usergroupid }),
    async run(ctx, a) {
      const details = await ctx.groups.details(ctx.actor, a.usergroupid);
      const members = details.membersCount > details.members.length ? await allMembers(ctx, details.group) : details.members;
      return {
        ...rhodecodeUserGroup(details.group, members),
        permissions: details.grants.map((g) => ({ name: g.name, permission: g.permission, origin: g.origin === 'owner' ? 'owner' : 'permission', type: g.type })),
      };
    },
  }),

  get_user_groups: method({
    args: z.object({}),
    async run(ctx) {
      const listed = await Promise.all(
        (await ctx.groups.all(ctx.actor)).map(async (g) => {
          try {
            return rhodecodeUserGroup(g, await allMembers(ctx, g));
          } catch (err) {
            if (err instanceof GroupNotFoundError) return undefined; // deleted (or unshared) meanwhile
            throw err;
          }
        }),
      );
      return listed.filter((g) => g !== undefined);
    },
  }),

  update_user_group: method({
    args: z.object({ usergroupid: required(arg.ref()), group_name: optional(arg.name()), description: optional(arg.text(10_000)), owner: optional(arg.ref()), active: optional(arg.boolean()) }),
    subjects: (a) => ({ group: a.usergroupid, user: a.owner, conflict: () => `user group \`${a.group_name}\` already exist` }),
    async run(ctx, a) {
      // Members first: a new owner may leave the caller unable to read the group afterwards.
      const before = await ctx.groups.access(ctx.actor, a.usergroupid, 'usergroup.admin');
      const members = await allMembers(ctx, before);
      const group = await ctx.groups.update(ctx.actor, before.id, { name: a.group_name, description: a.description, owner: a.owner, active: a.active }, ctx.audit, 'loose');
      return { msg: `updated user group ID:${group.id} ${group.name}`, user_group: rhodecodeUserGroup(group, members) };
    },
  }),

  delete_user_group: method({
    args: z.object({ usergroupid: required(arg.ref()) }),
    subjects: (a) => ({ group: a.usergroupid }),
    async run(ctx, a) {
      const group = await ctx.groups.delete(ctx.actor, a.usergroupid, ctx.audit);
      return { msg: `deleted user group ID:${group.id} ${group.name}`, user_group: null };
    },
  }),

  add_user_to_user_group: method({
    args: z.object({ usergroupid: required(arg.ref()), userid: required(arg.ref()) }),
    subjects: (a) => ({ group: a.usergroupid, user: a.userid }),
    async run(ctx, a) {
      const { added, group, user } = await ctx.groups.addMember(ctx.actor, a.usergroupid, a.userid, ctx.audit, 'loose');
      return { success: added, msg: added ? `added member \`${user.name}\` to user group \`${group.name}\`` : 'User is already in that group' };
    },
  }),

  remove_user_from_user_group: method({
    args: z.object({ usergroupid: required(arg.ref()), userid: required(arg.ref()) }),
    subjects: (a) => ({ group: a.usergroupid, user: a.userid }),
    async run(ctx, a) {
      const { removed, group, user } = await ctx.groups.removeMember(ctx.actor, a.usergroupid, a.userid, ctx.audit, 'loose');
      return { success: removed, msg: removed ? `removed member \`${user.name}\` from user group \`${group.name}\`` : "User wasn't in group" };
    },
  }),

  grant_user_permission_to_user_group: method({
    args: z.object({ usergroupid: required(arg.ref()), userid: required(arg.ref()), perm: required(arg.permission()) }),
    subjects: (a) => ({ group: a.usergroupid, user: a.userid }),
    async run(ctx, a) {
      const { group, user } = await ctx.groups.grantUser(ctx.actor, a.usergroupid, a.userid, a.perm, ctx.audit, 'loose');
      return { msg: `Granted perm: \`${a.perm}\` for user: \`${user.name}\` in user group: \`${group.name}\``, success: true };
    },
  }),

  revoke_user_permission_from_user_group: method({
    args: z.object({ usergroupid: required(arg.ref()), userid: required(arg.ref()) }),
    subjects: (a) => ({ group: a.usergroupid, user: a.userid }),
    async run(ctx, a) {
      const { group, user } = await ctx.groups.revokeUser(ctx.actor, a.usergroupid, a.userid, ctx.audit, 'loose');
      return { msg: `Revoked perm for user: \`${user.name}\` in user group: \`${group.name}\``, success: true };
    },
  }),

  grant_user_group_permission_to_user_group: method({
    args: z.object({ usergroupid: required(arg.ref()), sourceusergroupid: required(arg.ref()), perm: required(arg.permission()) }),
    async run(ctx, a) {
      // The target is checked first, so that a "does not exist" names the right group.
      const target = await guard({ group: a.usergroupid }, () => ctx.groups.access(ctx.actor, a.usergroupid, 'usergroup.admin'));
      const done = await guard({ group: a.sourceusergroupid }, () => ctx.groups.grantGroup(ctx.actor, target.id, a.sourceusergroupid, a.perm, ctx.audit));
      return { msg: `Granted perm: \`${a.perm}\` for user group: \`${done.source.name}\` in user group: \`${done.group.name}\``, success: true };
    },
  }),

  revoke_user_group_permission_from_user_group: method({
    args: z.object({ usergroupid: required(arg.ref()), sourceusergroupid: required(arg.ref()) }),
    async run(ctx, a) {
      const target = await guard({ group: a.usergroupid }, () => ctx.groups.access(ctx.actor, a.usergroupid, 'usergroup.admin'));
      const done = await guard({ group: a.sourceusergroupid }, () => ctx.groups.revokeGroup(ctx.actor, target.id, a.sourceusergroupid, ctx.audit));
      return { msg: `Revoked perm for user group: \`${done.source.name}\` in user group: \`${done.group.name}\``, success: true };
    },
  }),
};
