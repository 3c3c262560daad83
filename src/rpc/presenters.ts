import type { UserGroup } from '../domain/groups';
import type { User } from '../domain/types';

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

/** RhodeCode's `UserGroup.get_api_data()`: with every member. */
export function rhodecodeUserGroup(g: UserGroup, members: User[]) {
  return {
    users_group_id: g.id,
    group_name: g.name,
    group_description: g.description,
    active: g.active,
    owner: g.owner.name,
    users: members.map(rhodecodeUser),
  };
}
