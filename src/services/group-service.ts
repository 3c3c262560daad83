import { GroupGrantEscalationError, GroupNotFoundError, GroupPermissionError, UserDeactivatedError, UserNotFoundError, ValidationError } from '../domain/errors';
import { rank, type Effective, type GroupGrant, type GroupPermission, type MemberRef, type Membership, type UserGroup } from '../domain/groups';
import { isUuid, parseUserRef } from '../domain/identifiers';
import { NAME_RULE, normalizeName } from '../domain/rules';
import type { Page, User, UserRef } from '../domain/types';
import type { Stores, Transactor } from '../stores';
import type { AuditContext, AuditTarget } from '../domain/audit';
import { decodeCursor, pageOf } from './cursor';

export interface NewGroupInput {
  name: string;
  description?: string;
  /** A user id, email or name; the caller by default. */
  owner?: string;
  active?: boolean;
}

export interface GroupPatch {
  name?: string;
  description?: string;
  owner?: string;
  active?: boolean;
}

/** Members as the caller may see them: `User`s to system admins, `MemberRef`s to anyone else (§2.5). */
export type Member = User | MemberRef;

export interface GroupDetails {
  group: UserGroup;
  membersCount: number;
  members: Member[];
  grants: GroupGrant[];
}

type Needed = 'usergroup.read' | 'usergroup.write' | 'usergroup.admin';

/** How a user is named: REST's `:user` rules, or (RhodeCode) also a plain user name. */
export type UserNaming = 'strict' | 'loose';

export const GROUP_DETAIL_MEMBERS = 100;

/**
 * User groups (RhodeCode): the owner and system admins hold usergroup.admin; grants to users
 * and to groups (held by the granted group's members); membership gives read; the highest wins.
 * A group the caller cannot read is answered 404, never 403.
 */
export class GroupService {
  constructor(
    private readonly stores: Stores,
    private readonly transact: Transactor,
  ) {}

  async permission(actor: User, group: UserGroup): Promise<Effective> {
    if (actor.isAdmin) return { permission: 'usergroup.admin', via: { type: 'system_admin' } };
    return this.stores.groups.effective(group.id, actor.id);
  }

  /** The group named by `raw` (a UUID or a name), if the actor holds `needed` on it. */
  async access(actor: User, raw: string, needed: Needed): Promise<UserGroup> {
    const group = await this.find(raw);
    if (!group) throw new GroupNotFoundError();
    const held = rank((await this.permission(actor, group)).permission);
    if (held < rank('usergroup.read')) throw new GroupNotFoundError();
    if (held < rank(needed)) throw new GroupPermissionError(needed);
    return group;
  }

  async find(raw: string): Promise<UserGroup | undefined> {
    if (isUuid(raw)) {
      const byId = await this.stores.groups.findById(raw.toLowerCase());
      if (byId) return byId;
    }
    return this.stores.groups.findByName(raw);
  }

  /**
   * An active user for a member, grant or owner: 404 when unknown, 410 when deactivated (404 for
   * non-admins). No enumeration: a caller who is not a system admin may name by email (or by
   * name) only themself and the people `within` shows them (its owner, members and grantees); anyone else
   * named so is "not found", whether or not the address has an account. A UUID, which nobody
   * can guess, finds any active user.
   */
  async user(actor: User, raw: string, naming: UserNaming, within: UserGroup | undefined): Promise<User> {
    let ref: UserRef | { name: string };
    try {
      ref = parseUserRef(raw);
    } catch (err) {
      if (naming === 'strict') throw err;
      ref = { name: raw };
    }
    if (!actor.isAdmin && !('id' in ref)) {
      if ('email' in ref ? ref.email.toLowerCase() === actor.email.toLowerCase() : ref.name === actor.name) return actor;
      const shown = within ? await this.stores.groups.findShownUser(within.id, ref) : undefined;
      if (!shown) throw new UserNotFoundError();
      return shown;
    }
    const user = 'name' in ref ? await this.stores.users.findActiveByName(ref.name) : await this.stores.users.findByRef(ref);
    if (!user) throw new UserNotFoundError();
    if (user.deactivated) {
      if (actor.isAdmin) throw new UserDeactivatedError(user);
      throw new UserNotFoundError();
    }
    return user;
  }

  async list(actor: User, page: { limit: number; cursor?: string }): Promise<Page<UserGroup>> {
    const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
    const rows = await this.stores.groups.list({ limit: page.limit + 1, after, readableBy: actor.isAdmin ? undefined : actor.id });
    return pageOf(rows, page.limit);
  }

  /** Everything, for RhodeCode's get_user_groups. */
  async all(actor: User): Promise<UserGroup[]> {
    return this.stores.groups.list({ limit: 1_000_000, readableBy: actor.isAdmin ? undefined : actor.id });
  }

  /** Only system admins create groups: the operation's policy (createUserGroup, create_user_group) says so. */
  async create(actor: User, input: NewGroupInput, ctx: AuditContext, naming: UserNaming = 'strict'): Promise<UserGroup> {
    const name = checkName(input.name);
    const owner = input.owner === undefined ? actor : await this.user(actor, input.owner, naming, undefined);
    return this.transact(async (s) => {
      const group = await s.groups.insert({ name, description: input.description ?? '', active: input.active ?? true, ownerId: owner.id });
      s.audit.add(ctx, { action: 'group.created', target: groupTarget(group), summary: { owner: group.owner, active: group.active, description: group.description } });
      return group;
    });
  }

  async details(actor: User, raw: string): Promise<GroupDetails> {
    return this.detailsOf(actor, await this.access(actor, raw, 'usergroup.read'));
  }

  /** The group as `actor` (who may read it) sees it. */
  async detailsOf(actor: User, group: UserGroup): Promise<GroupDetails> {
    const [membersCount, members, grants] = await Promise.all([
      this.stores.groups.countMembers(group.id),
      this.stores.groups.members(group.id, GROUP_DETAIL_MEMBERS),
      this.stores.groups.grants(group.id),
    ]);
    return { group, membersCount, members: shownTo(actor, members), grants };
  }

  async update(actor: User, raw: string, patch: GroupPatch, ctx: AuditContext, naming: UserNaming = 'strict'): Promise<UserGroup> {
    const group = await this.access(actor, raw, 'usergroup.admin');
    // Only a new name is written (and held to the rule): a name kept from before it stays as it is.
    const normal = patch.name === undefined || patch.name === group.name ? undefined : checkName(patch.name);
    const name = normal === group.name ? undefined : normal;
    const owner = patch.owner === undefined ? undefined : await this.user(actor, patch.owner, naming, group);
    return this.transact(async (s) => {
      const updated = await s.groups.update(group.id, { name, description: patch.description, active: patch.active, ownerId: owner?.id });
      const changes = Object.fromEntries(
        (['name', 'description', 'active', 'owner'] as const)
          .filter((k) => JSON.stringify(group[k]) !== JSON.stringify(updated[k]))
          .map((k) => [k, { from: group[k], to: updated[k] }]),
      );
      if (Object.keys(changes).length > 0) s.audit.add(ctx, { action: 'group.updated', target: groupTarget(group), summary: { changes } });
      return updated;
    });
  }

  /** Members and grants go with it, and so do the grants it held on other groups. */
  async delete(actor: User, raw: string, ctx: AuditContext): Promise<UserGroup> {
    const group = await this.access(actor, raw, 'usergroup.admin');
    await this.transact(async (s) => {
      // Of concurrent deletes, one deletes; the others find it gone.
      if (!(await s.groups.delete(group.id))) throw new GroupNotFoundError();
      s.audit.add(ctx, { action: 'group.deleted', target: groupTarget(group), summary: { owner: group.owner } });
    });
    return group;
  }

  async members(actor: User, raw: string, page: { limit: number; cursor?: string }): Promise<Page<Member>> {
    const group = await this.access(actor, raw, 'usergroup.read');
    const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
    const found = pageOf(await this.stores.groups.members(group.id, page.limit + 1, after), page.limit);
    return { ...found, items: shownTo(actor, found.items) };
  }

  /**
   * Whether the user was added (false: already a member). Needs write on the group and (§2.5),
   * since membership confers the grants the group holds on other groups, at least each of those
   * permissions there (system admins always may): checked in the adding transaction, with the
   * group's membership locked against a grant to the group being made meanwhile.
   */
  async addMember(actor: User, raw: string, userRaw: string, ctx: AuditContext, naming: UserNaming = 'strict'): Promise<{ added: boolean; group: UserGroup; user: User }> {
    const group = await this.access(actor, raw, 'usergroup.write');
    const user = await this.user(actor, userRaw, naming, group);
    const added = await this.transact(async (s) => {
      if (!actor.isAdmin) {
        if (!(await s.groups.lockMembership(group.id))) throw new GroupNotFoundError(); // deleted meanwhile
        if ((await s.groups.confersBeyond(group.id, actor.id)).length > 0) throw new GroupGrantEscalationError();
      }
      const done = await s.groups.addMember(group.id, user.id);
      if (done) s.audit.add(ctx, { action: 'group.member_added', target: groupTarget(group), summary: { user: { id: user.id, name: user.name } } });
      return done;
    });
    return { added, group, user };
  }

  async removeMember(actor: User, raw: string, userRaw: string, ctx: AuditContext, naming: UserNaming = 'strict'): Promise<{ removed: boolean; group: UserGroup; user: User }> {
    const group = await this.access(actor, raw, 'usergroup.write');
    const user = await this.user(actor, userRaw, naming, group);
    const removed = await this.transact(async (s) => {
      const done = await s.groups.removeMember(group.id, user.id);
      if (done) s.audit.add(ctx, { action: 'group.member_removed', target: groupTarget(group), summary: { user: { id: user.id, name: user.name } } });
      return done;
    });
    return { removed, group, user };
  }

  async grantUser(actor: User, raw: string, userRaw: string, permission: GroupPermission, ctx: AuditContext, naming: UserNaming = 'strict'): Promise<{ group: UserGroup; user: User }> {
    const group = await this.access(actor, raw, 'usergroup.admin');
    const user = await this.user(actor, userRaw, naming, group);
    await this.transact(async (s) => {
      await s.groups.setUserGrant(group.id, user.id, permission);
      s.audit.add(ctx, { action: 'group.grant_set', target: groupTarget(group), summary: { to: { type: 'user', id: user.id, name: user.name }, permission } });
    });
    return { group, user };
  }

  async revokeUser(actor: User, raw: string, userRaw: string, ctx: AuditContext, naming: UserNaming = 'strict'): Promise<{ revoked: boolean; group: UserGroup; user: User }> {
    const group = await this.access(actor, raw, 'usergroup.admin');
    const user = await this.user(actor, userRaw, naming, group);
    const revoked = await this.transact(async (s) => {
      const done = await s.groups.deleteUserGrant(group.id, user.id);
      if (done) s.audit.add(ctx, { action: 'group.grant_removed', target: groupTarget(group), summary: { to: { type: 'user', id: user.id, name: user.name } } });
      return done;
    });
    return { revoked, group, user };
  }

  async grantGroup(actor: User, raw: string, sourceRaw: string, permission: GroupPermission, ctx: AuditContext): Promise<{ group: UserGroup; source: UserGroup }> {
    const group = await this.access(actor, raw, 'usergroup.admin');
    const source = await this.access(actor, sourceRaw, 'usergroup.read');
    if (source.id === group.id) throw new ValidationError('a user group cannot be granted a permission on itself');
    await this.transact(async (s) => {
      await s.groups.setGroupGrant(group.id, source.id, permission);
      s.audit.add(ctx, { action: 'group.grant_set', target: groupTarget(group), summary: { to: { type: 'user_group', id: source.id, name: source.name }, permission } });
    });
    return { group, source };
  }

  async revokeGroup(actor: User, raw: string, sourceRaw: string, ctx: AuditContext): Promise<{ revoked: boolean; group: UserGroup; source: UserGroup }> {
    const group = await this.access(actor, raw, 'usergroup.admin');
    const source = await this.access(actor, sourceRaw, 'usergroup.read');
    const revoked = await this.transact(async (s) => {
      const done = await s.groups.deleteGroupGrant(group.id, source.id);
      if (done) s.audit.add(ctx, { action: 'group.grant_removed', target: groupTarget(group), summary: { to: { type: 'user_group', id: source.id, name: source.name } } });
      return done;
    });
    return { revoked, group, source };
  }

  /** The target user's winning permission on the group, and where it comes from. */
  async effective(actor: User, raw: string, userRaw: string): Promise<Effective> {
    const group = await this.access(actor, raw, 'usergroup.read');
    const user = await this.user(actor, userRaw, 'strict', group);
    // To a caller who is not a system admin, what the group itself grants: whether the user is a
    // system admin is not theirs to learn, nor (§2.5) who is a member of a group they cannot read,
    // so grants to groups count only through groups the caller can read.
    if (actor.isAdmin) return this.permission(user, group);
    return this.stores.groups.effective(group.id, user.id, user.id === actor.id ? undefined : actor.id);
  }

  /** UserDetailed.groups: memberships with the user's effective permission on each. */
  async membershipsOf(user: User): Promise<Membership[]> {
    const memberships = await this.stores.groups.membershipsOf(user.id);
    return user.isAdmin ? memberships.map((m) => ({ ...m, permission: 'usergroup.admin' })) : memberships;
  }
}

/** §2.5: members carry `id` and `name` only, unless the caller is a system admin. */
function shownTo(actor: User, members: User[]): Member[] {
  return actor.isAdmin ? members : members.map((u): MemberRef => ({ id: u.id, name: u.name }));
}

/** Whether a member is shown in full (to a system admin). */
export function isFullUser(m: Member): m is User {
  return 'email' in m;
}

/** A group name as it is stored: its NFKC form, within the name rule (domain/rules.ts); else 400. */
function checkName(name: string): string {
  const normal = normalizeName(name);
  if (normal === undefined) {
    throw new ValidationError(`user group names are ${NAME_RULE}`, [{ path: '/body/name', message: 'is not a name' }]);
  }
  return normal;
}

/** A group as an audit target. */
function groupTarget(g: UserGroup): AuditTarget {
  return { type: 'group', id: g.id, name: g.name };
}
