import type { User } from '../domain/types';

/** Domain → response shapes of openapi.yaml. */
export function iso(date: Date): string;
export function iso(date: Date | null): string | null;
export function iso(date: Date | null): string | null {
  return date ? date.toISOString() : null;
}

export function presentUser(u: User) {
  return {
    id: u.id,
    name: u.name,
    email: u.email,
    first_name: u.firstName,
    last_name: u.lastName,
    created: iso(u.created),
    last_login: iso(u.lastLogin),
    last_seen: iso(u.lastSeen),
    force_password_change: u.forcePasswordChange,
    is_admin: u.isAdmin,
  };
}

export function presentUserListItem(u: User, includeDeactivated: boolean) {
  return includeDeactivated ? { ...presentUser(u), deactivated: iso(u.deactivated) } : presentUser(u);
}

/** `groups` stays empty until user groups exist. */
export function presentUserDetailed(u: User) {
  return { ...presentUser(u), groups: [] as { id: string; name: string; permission: string }[] };
}

export function presentNewUser(u: User) {
  return { id: u.id, email: u.email, name: u.name };
}

/** Conch's UserError member: shown to admins only. */
export function presentConflictUser(u: User) {
  return { id: u.id, email: u.email, name: u.name, created: iso(u.created), deactivated: iso(u.deactivated) };
}
