import type { User } from './types';

/** Where a change came from: the request's address, client and id (all null for the CLI and background work). */
export interface RequestMeta {
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
}

/** Who made a change, and from where. `actor` is null for the anonymous (a login, a link) and the system. */
export interface AuditContext extends RequestMeta {
  actor: { id: string; name: string } | null;
}

/** A change made by an authenticated user. */
export interface ActorContext extends AuditContext {
  actor: User;
}

/** The context of work the service does by itself (background jobs, housekeeping) or the operator's CLI. */
export const SYSTEM: AuditContext = Object.freeze({ actor: null, ip: null, userAgent: null, requestId: null });

/** Every action the audit log records (API.md §2.4b). */
export const AUDIT_ACTIONS = [
  'user.created',
  'user.updated',
  'user.deactivated',
  'user.reactivated',
  'user.registered',
  'user.verified',
  'email.change_requested',
  'email.change_confirmed',
  'email.change_reverted',
  'password.changed',
  'password.reset_requested',
  'password.reset_used',
  'password.admin_reset',
  'token.created',
  'token.deleted',
  'tokens.revoked',
  'session.ended',
  'settings.changed',
  'group.created',
  'group.updated',
  'group.deleted',
  'group.member_added',
  'group.member_removed',
  'group.grant_set',
  'group.grant_removed',
  'login.succeeded',
  'login.failed',
  'login.throttled',
  'login.mfa_succeeded',
  'login.passkey_succeeded',
  'mfa.failed',
  'mfa.factor_added',
  'mfa.factor_verified',
  'mfa.factor_removed',
  'mfa.reset',
  'mfa.recovery_codes_created',
  'mfa.recovery_code_used',
  'mfa.factor_renamed',
  'mfa.passkey_counter_rejected',
  'webhook.created',
  'webhook.updated',
  'webhook.deleted',
  'webhook.secret_rotated',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditTarget {
  type: 'user' | 'group';
  id: string;
  name: string;
}

/**
 * What happened. `summary` says what changed (field names, old and new values) and never a
 * password, token, link or settings value.
 */
export interface AuditEvent {
  action: AuditAction;
  target: AuditTarget | null;
  summary: Record<string, unknown>;
}

/** A user as an audit target. */
export function userTarget(u: { id: string; name: string }): AuditTarget {
  return { type: 'user', id: u.id, name: u.name };
}

export interface AuditEntry extends AuditEvent, RequestMeta {
  id: string;
  seq: string;
  time: Date;
  actor: { id: string; name: string } | null;
}

/** JSON with every object's keys sorted: the same text for the same value, however stored. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/**
 * An entry's fields in the order of the store's insert (the time as ISO text): what the store
 * writes and, as canonical JSON, what its link covers (domain/audit-chain.ts).
 */
export function auditFields(e: Omit<AuditEntry, 'seq'>): [string, string, string, ...(string | null)[], Record<string, unknown>] {
  return [
    e.id,
    e.time.toISOString(),
    e.action,
    e.actor?.id ?? null,
    e.actor?.name ?? null,
    e.target?.type ?? null,
    e.target?.id ?? null,
    e.target?.name ?? null,
    e.ip,
    e.userAgent,
    e.requestId,
    e.summary,
  ];
}
