import type { AuditAction, AuditEntry } from './audit';

/**
 * The event types an endpoint may ask for (API.md §2.9): the audit actions that change an account
 * or a group, and `webhook.test`. Not events: logins and failed codes (they change nothing),
 * `session.ended`, `settings.changed` (a setting's value is never sent) and the `*_requested`
 * actions (nothing has changed yet). openapi.yaml's `webhooks` section and its `WebhookEventType`
 * enum list the same types (a test compares them).
 */
export const WEBHOOK_EVENT_TYPES = [
  'user.created',
  'user.updated',
  'user.deactivated',
  'user.reactivated',
  'user.registered',
  'user.verified',
  'email.change_confirmed',
  'email.change_reverted',
  'password.changed',
  'password.reset_used',
  'password.admin_reset',
  'token.created',
  'token.deleted',
  'tokens.revoked',
  'group.created',
  'group.updated',
  'group.deleted',
  'group.member_added',
  'group.member_removed',
  'group.grant_set',
  'group.grant_removed',
  'mfa.factor_added',
  'mfa.factor_verified',
  'mfa.factor_removed',
  'mfa.reset',
  'mfa.recovery_codes_created',
  'mfa.recovery_code_used',
  'mfa.factor_renamed',
  'mfa.passkey_counter_rejected',
  'webhook.test',
] as const satisfies readonly (AuditAction | 'webhook.test')[];
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** The audit actions that are events (all types but `webhook.test`). */
export const AUDIT_EVENT_TYPES: readonly AuditAction[] = WEBHOOK_EVENT_TYPES.filter((t): t is Exclude<WebhookEventType, 'webhook.test'> => t !== 'webhook.test');

export function isWebhookEventType(value: string): value is WebhookEventType {
  return (WEBHOOK_EVENT_TYPES as readonly string[]).includes(value);
}

/** An endpoint's `events`: every type (`["*"]`), or a list of them. */
export type EventFilter = readonly string[];

export function wants(filter: EventFilter, type: string): boolean {
  return filter.includes('*') || filter.includes(type);
}

/** What is sent: `{type, timestamp, data}` (API.md §2.9). */
export interface WebhookPayload {
  type: WebhookEventType;
  timestamp: string;
  data: Record<string, unknown>;
}

/**
 * An audit entry as an event's payload: the target as `user` or `group` (`{id, name}`), the
 * `actor` (`{id, name}` or null) and the fields of the entry's summary (which never holds a
 * password, token, secret, link or setting value: API.md §2.4b). The request's address, client
 * and id stay in the audit log.
 */
export function eventPayload(entry: Pick<AuditEntry, 'action' | 'time' | 'target' | 'actor' | 'summary'>): WebhookPayload {
  const target = entry.target ? { [entry.target.type]: { id: entry.target.id, name: entry.target.name } } : {};
  return {
    type: entry.action as WebhookEventType,
    timestamp: entry.time.toISOString(),
    data: { ...entry.summary, ...target, actor: entry.actor ? { id: entry.actor.id, name: entry.actor.name } : null },
  };
}

/** A `webhook.test` event's payload. */
export function testPayload(webhookId: string, time: Date): WebhookPayload {
  return { type: 'webhook.test', timestamp: time.toISOString(), data: { webhook: { id: webhookId } } };
}
