import type { UserGroup } from '../domain/groups';
import type { User } from '../domain/types';
import { isFullUser, type Member } from '../services/group-service';

/** RhodeCode's `User.get_api_data()`, without secrets (tokens are never shown). */
export function rhodecodeUser(u: User) {
  return {
    user_id: u.id,
    username: u.name,
    firstname: u.firstName,
    lastname: u.lastName,
    email: u.email,
    emails: [u.email],
    active: u.deactivated === null,
    admin: u.isAdmin,
    force_password_change: u.forcePasswordChange,
    last_login: u.lastLogin?.toISOString() ?? null,
    last_activity: u.lastSeen?.toISOString() ?? null,
    extern_type: 'rhodecode',
    extern_name: 'rhodecode',
    ip_addresses: [] as string[],
    language: null,
  };
}

/** A group's member: RhodeCode's user object to system admins, `{user_id, username}` to other readers (§2.5). */
export function rhodecodeMember(m: Member) {
  return isFullUser(m) ? rhodecodeUser(m) : { user_id: m.id, username: m.name };
}

/** RhodeCode's `UserGroup.get_api_data()`: with every member, as the caller may see them. */
export function rhodecodeUserGroup(g: UserGroup, members: Member[]) {
  return {
    users_group_id: g.id,
    group_name: g.name,
    group_description: g.description,
    active: g.active,
    owner: g.owner.name,
    users: members.map(rhodecodeMember),
  };
}
