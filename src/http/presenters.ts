import type { Effective, Membership, UserGroup } from '../domain/groups';
import type { Factor, FactorRef } from '../domain/mfa';
import type { Token, User } from '../domain/types';
import { isFullUser, type GroupDetails, type Member } from '../services/group-service';
import type { Session } from '../services/token-service';

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

/** `groups`: the user's memberships with their effective permission on each. */
export function presentUserDetailed(u: User, groups: Membership[]) {
  return { ...presentUser(u), pending_email: u.pendingEmail ?? null, mfa_enabled: u.mfaEnabled, groups: groups.map((g) => ({ id: g.id, name: g.name, permission: g.permission })) };
}

export function presentGroup(g: UserGroup) {
  return { id: g.id, name: g.name, description: g.description, active: g.active, owner: g.owner, created: iso(g.created) };
}

/** A group's member: a `User` to system admins, `{id, name}` to other readers (the service decides). */
export function presentMember(m: Member) {
  return isFullUser(m) ? presentUser(m) : { id: m.id, name: m.name };
}

export function presentGroupDetailed(d: GroupDetails) {
  return {
    ...presentGroup(d.group),
    members_count: d.membersCount,
    members: d.members.map(presentMember),
    grants: d.grants.map((g) => ({ type: g.type, id: g.id, name: g.name, permission: g.permission, origin: g.origin })),
  };
}

export function presentEffective(e: Effective) {
  return e.via.type === 'group_grant' ? { permission: e.permission, via: { type: e.via.type, group: e.via.group } } : { permission: e.permission, via: { type: e.via.type } };
}

export function presentNewUser(u: User) {
  return { id: u.id, email: u.email, name: u.name };
}

/** Conch's UserError member: shown to admins only. */
export function presentConflictUser(u: User) {
  return { id: u.id, email: u.email, name: u.name, created: iso(u.created), deactivated: iso(u.deactivated) };
}

export function presentToken(t: Token) {
  return { name: t.name, scopes: t.scopes, created: iso(t.created), last_used: iso(t.lastUsed), expires: iso(t.expires), last_ipaddr: t.lastIpaddr };
}

/** The only time a token's secret is shown. */
export function presentNewToken(t: Token, jwt: string) {
  return { name: t.name, scopes: t.scopes, created: iso(t.created), last_used: iso(t.lastUsed), expires: iso(t.expires), token: jwt };
}

export function presentSession(s: Session) {
  return {
    id: s.id,
    created: iso(s.created),
    last_used: iso(s.lastUsed),
    last_ipaddr: s.lastIpaddr,
    user_agent: s.userAgent,
    expires: iso(s.expires),
    current: s.current,
    aal: s.aal,
  };
}

/** A factor: never its secret. */
export function presentFactor(f: Factor) {
  return { id: f.id, type: f.type, name: f.name, created: iso(f.created), last_used: iso(f.lastUsed), verified: f.verified };
}

/** A factor as a login names it. */
export function presentFactorRef(f: FactorRef) {
  return { id: f.id, type: f.type, name: f.name };
}
