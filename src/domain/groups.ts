export const GROUP_PERMISSIONS = ['usergroup.none', 'usergroup.read', 'usergroup.write', 'usergroup.admin'] as const;
export type GroupPermission = (typeof GROUP_PERMISSIONS)[number];

/** Ranks for "the highest grant wins": none 0, read 1, write 2, admin 3. */
export function rank(permission: GroupPermission): number {
  return GROUP_PERMISSIONS.indexOf(permission);
}

export function permissionOfRank(r: number): GroupPermission {
  return GROUP_PERMISSIONS[Math.max(0, Math.min(3, r))];
}

export interface UserGroup {
  id: string;
  name: string;
  description: string;
  active: boolean;
  owner: { id: string; name: string };
  created: Date;
}

export interface GroupGrant {
  type: 'user' | 'user_group';
  id: string;
  name: string;
  permission: GroupPermission;
  origin: 'owner' | 'grant';
}

export type Via =
  | { type: 'system_admin' | 'owner' | 'user_grant' | 'member' | 'none' }
  | { type: 'group_grant'; group: { id: string; name: string } };

export interface Effective {
  permission: GroupPermission;
  via: Via;
}

/**
 * A member as shown to a reader who is not a system admin (§2.5): who it is, nothing of the
 * account (no email, admin flag, logins or password state). System admins see `User`s.
 */
export interface MemberRef {
  id: string;
  name: string;
}

export interface Membership {
  id: string;
  name: string;
  permission: GroupPermission;
}
