import { loadApiSpec } from '../../src/api-spec';
import { AUDIT_ACTIONS } from '../../src/domain/audit';
import { eventPayload, WEBHOOK_EVENT_TYPES } from '../../src/domain/webhook-events';

const spec = loadApiSpec() as any;

describe('event types and their payloads in openapi.yaml', () => {
  it('describes every event type in the webhooks section, and no other', () => {
    expect(spec.openapi).toMatch(/^3\.1\./);
    expect(Object.keys(spec.webhooks).sort()).toEqual([...WEBHOOK_EVENT_TYPES].sort());
    expect(spec.components.schemas.WebhookEventType.enum).toEqual([...WEBHOOK_EVENT_TYPES]);
  });

  it('gives each event type a payload schema of its own: its type is that type, its data names the target and the actor and admits nothing else', () => {
    for (const type of WEBHOOK_EVENT_TYPES) {
      const schema = spec.webhooks[type].post.requestBody.content['application/json'].schema;
      const name = schema.$ref.split('/').pop();
      const own = spec.components.schemas[name];
      expect([type, own.properties.type.const, own.required, own.additionalProperties]).toEqual([type, type, ['type', 'timestamp', 'data'], false]);
      const data = own.properties.data;
      expect([type, data.type, data.additionalProperties]).toEqual([type, 'object', false]);
      if (type === 'webhook.test') continue;
      const target = type.startsWith('group.') ? 'group' : 'user';
      expect([type, data.required.slice(0, 2)]).toEqual([type, [target, 'actor']]);
      expect([type, data.properties[target].$ref, data.properties.actor.$ref]).toEqual([type, `#/components/schemas/Event${target === 'group' ? 'Group' : 'User'}`, '#/components/schemas/EventActor']);
      // Never a password, token, secret, link or setting value (API.md §2.9): no field that could hold one.
      for (const field of Object.keys(data.properties)) expect([type, field]).not.toEqual([type, expect.stringMatching(/^(password|current_password|secret|token|jwt|url|uri|code|codes|value|settings|qr_svg)$/)]);
    }
  });

  it('makes events only of audit actions that change an account or a group', () => {
    for (const type of WEBHOOK_EVENT_TYPES.filter((t) => t !== 'webhook.test')) expect(AUDIT_ACTIONS).toContain(type);
    for (const notEvent of ['login.succeeded', 'login.failed', 'mfa.failed', 'session.ended', 'settings.changed', 'password.reset_requested', 'email.change_requested', 'webhook.created']) {
      expect(WEBHOOK_EVENT_TYPES).not.toContain(notEvent);
    }
  });

  it('builds a payload from an audit entry: the target by id and name, the actor, the summary; not the address, client or request', () => {
    const payload = eventPayload({
      action: 'group.member_added',
      time: new Date('2026-12-08T09:00:00.000Z'),
      actor: { id: 'a', name: 'ada' },
      target: { type: 'group', id: 'g', name: 'ops' },
      summary: { user: { id: 'u', name: 'bob' } },
    });
    expect(payload).toEqual({ type: 'group.member_added', timestamp: '2026-12-08T09:00:00.000Z', data: { group: { id: 'g', name: 'ops' }, actor: { id: 'a', name: 'ada' }, user: { id: 'u', name: 'bob' } } });
  });
});
