import { AUDIT_EVENT_TYPES, eventPayload, testPayload, type WebhookEventType, type WebhookPayload } from '../../src/domain/webhook-events';
import { webhookPayloadProblem } from '../helpers/webhook-schema';

// The check every WebhookReceiver runs on what it is sent: it must tell a body that matches
// openapi.yaml's webhooks section from one that does not, or it proves nothing.
describe("openapi.yaml's webhook payloads, as the test receiver checks them", () => {
  const at = new Date('2026-12-08T09:00:00.000Z');
  const userEvent = eventPayload({ action: 'user.updated', time: at, actor: { id: '6a1f1c1e-4a7e-4d39-9c55-1f1ad1c0ffee', name: 'ada' }, target: { type: 'user', id: '0b3e4c7a-2f6d-4d0e-8d7c-5a9b1e2f3c4d', name: 'bob' }, summary: { changes: { name: { from: 'bob', to: 'rob' } } } });

  it('takes the payloads the service builds', () => {
    expect(webhookPayloadProblem(userEvent)).toBeUndefined();
    expect(webhookPayloadProblem(JSON.parse(JSON.stringify(testPayload('0b3e4c7a-2f6d-4d0e-8d7c-5a9b1e2f3c4d', at))))).toBeUndefined();
  });

  it('refuses a body that drifted from the spec', () => {
    const noUser = JSON.parse(JSON.stringify(userEvent));
    delete noUser.data.user;
    expect(webhookPayloadProblem(noUser)).toMatch(/^user\.updated: .*user/);
    expect(webhookPayloadProblem({ ...userEvent, timestamp: 'yesterday' })).toMatch(/timestamp/);
    expect(webhookPayloadProblem({ ...userEvent, extra: 1 })).toMatch(/additional/);
    expect(webhookPayloadProblem({ ...userEvent, type: 'login.failed' })).toBe('no payload schema for type "login.failed"');
  });
});

// Each event type's exact payload: the summaries the services write (src/services/*: the
// `s.audit.add(...)` of each action), one of each variant, as eventPayload makes them into bodies.
describe('the payload schema of each event type is exact', () => {
  const at = new Date('2026-12-08T09:00:00.000Z');
  const ada = { id: '6a1f1c1e-4a7e-4d39-9c55-1f1ad1c0ffee', name: 'ada' };
  const bob = { id: '0b3e4c7a-2f6d-4d0e-8d7c-5a9b1e2f3c4d', name: 'bob' };
  const ops = { id: '3c2d1e0f-9a8b-4c7d-8e6f-5a4b3c2d1e0f', name: 'ops' };
  const devs = { id: '7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918', name: 'devs' };
  const factor = 'f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9';

  type Sample = { target: 'user' | 'group'; summary: Record<string, unknown>; actor?: null };
  const SAMPLES: Record<Exclude<WebhookEventType, 'webhook.test'>, Sample[]> = {
    'user.created': [
      { target: 'user', summary: { email: 'bob@example.test', is_admin: false, password_set: true, welcome_mail: false } },
      { target: 'user', actor: null, summary: { email: 'root@example.test', is_admin: true, password_set: true, welcome_mail: false } },
    ],
    'user.updated': [
      {
        target: 'user',
        summary: {
          changes: {
            name: { from: 'bob', to: 'rob' },
            email: { from: 'bob@example.test', to: 'rob@example.test' },
            first_name: { from: null, to: 'Rob' },
            last_name: { from: 'Old', to: null },
            is_admin: { from: false, to: true },
          },
        },
      },
      { target: 'user', actor: null, summary: { changes: { force_password_change: { from: false, to: true } } } },
    ],
    'user.deactivated': [{ target: 'user', summary: { email: 'bob@example.test' } }],
    'user.reactivated': [{ target: 'user', summary: { welcome_mail: true } }],
    'user.registered': [{ target: 'user', actor: null, summary: { email: 'bob@example.test' } }],
    'user.verified': [{ target: 'user', actor: null, summary: { email: 'bob@example.test' } }],
    'email.change_confirmed': [{ target: 'user', actor: null, summary: { from: 'bob@example.test', to: 'rob@example.test' } }],
    'email.change_reverted': [
      { target: 'user', actor: null, summary: { from: 'evil@example.test', to: 'bob@example.test', cancelled_pending: null, tokens_ended: 'all', force_password_change: true, password_unusable: true, reset_link_mailed: true } },
      { target: 'user', actor: null, summary: { from: 'evil@example.test', to: 'bob@example.test', cancelled_pending: 'other@example.test', tokens_ended: 'all', force_password_change: true, password_unusable: true, reset_link_mailed: true } },
    ],
    'password.changed': [
      { target: 'user', summary: { by: 'self', tokens_ended: 'login_only', was_forced: false } },
      { target: 'user', summary: { by: 'admin', tokens_ended: 'login_only' } },
      { target: 'user', actor: null, summary: { by: 'operator', tokens_ended: 'none' } },
    ],
    'password.reset_used': [
      { target: 'user', actor: null, summary: { link: 'reset', tokens_ended: 'login_only' } },
      { target: 'user', actor: null, summary: { link: 'welcome', tokens_ended: 'login_only' } },
    ],
    'password.admin_reset': [{ target: 'user', summary: { tokens_ended: 'all', link_mailed: true } }],
    'token.created': [{ target: 'user', summary: { name: 'ci deploys', scopes: ['api:read'], expires: '2027-06-01T00:00:00.000Z' } }],
    'token.deleted': [{ target: 'user', summary: { name: 'ci deploys' } }],
    'tokens.revoked': [
      { target: 'user', summary: { mode: 'all', login_tokens: 2, api_tokens: ['a', 'b'] } },
      { target: 'user', summary: { mode: 'login_only', login_tokens: 1, api_tokens: [] } },
    ],
    'group.created': [{ target: 'group', summary: { owner: ada, active: true, description: '' } }],
    'group.updated': [
      { target: 'group', summary: { changes: { name: { from: 'ops', to: 'sre' }, description: { from: '', to: 'on call' }, active: { from: true, to: false }, owner: { from: ada, to: bob } } } },
    ],
    'group.deleted': [{ target: 'group', summary: { owner: ada } }],
    'group.member_added': [{ target: 'group', summary: { user: bob } }],
    'group.member_removed': [{ target: 'group', summary: { user: bob } }],
    'group.grant_set': [
      { target: 'group', summary: { to: { type: 'user', ...bob }, permission: 'usergroup.write' } },
      { target: 'group', summary: { to: { type: 'user_group', ...devs }, permission: 'usergroup.read' } },
    ],
    'group.grant_removed': [
      { target: 'group', summary: { to: { type: 'user', ...bob } } },
      { target: 'group', summary: { to: { type: 'user_group', ...devs } } },
    ],
    'mfa.factor_added': [{ target: 'user', summary: { factor, type: 'totp', name: 'phone' } }],
    'mfa.factor_verified': [
      { target: 'user', summary: { factor, type: 'totp', name: 'phone', first: true, sessions_ended: 2 } },
      { target: 'user', summary: { factor, type: 'webauthn', name: 'key', first: false, sessions_ended: 0 } },
    ],
    'mfa.factor_removed': [{ target: 'user', summary: { factor, type: 'webauthn', name: 'key', verified: true, mfa_off: true } }],
    'mfa.reset': [
      { target: 'user', summary: { factors: [{ id: factor, type: 'totp', name: 'phone', verified: true }], recovery_codes: 10, sessions_ended: 1 } },
      { target: 'user', summary: { factors: [], recovery_codes: 3, sessions_ended: 0 } },
    ],
    'mfa.recovery_codes_created': [
      { target: 'user', summary: { count: 10 } },
      { target: 'user', summary: { count: 10, replaced: true } },
    ],
    'mfa.recovery_code_used': [{ target: 'user', summary: { remaining: 9 } }],
    'mfa.factor_renamed': [{ target: 'user', summary: { factor, type: 'totp', name: 'new phone', previous: 'phone' } }],
    'mfa.passkey_counter_rejected': [
      { target: 'user', summary: { factor, stored: 7, presented: 7 } },
      { target: 'user', actor: null, summary: { factor, stored: 0, presented: 0 } },
    ],
  };

  /** The body the fan-out would send (through JSON, as it goes over the wire). */
  function body(type: keyof typeof SAMPLES, sample: Sample): WebhookPayload {
    const target = sample.target === 'group' ? { type: 'group' as const, ...ops } : { type: 'user' as const, ...bob };
    return JSON.parse(JSON.stringify(eventPayload({ action: type, time: at, actor: sample.actor === null ? null : ada, target, summary: sample.summary })));
  }
  const cases = (Object.entries(SAMPLES) as [keyof typeof SAMPLES, Sample[]][]).flatMap(([type, samples]) => samples.map((s, i) => [type, i, s] as const));

  it('has a sample of every event type', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual([...AUDIT_EVENT_TYPES].sort());
  });

  it.each(cases)('takes %s (sample %d) as eventPayload builds it', (type, _i, sample) => {
    expect(webhookPayloadProblem(body(type, sample))).toBeUndefined();
  });

  it.each(cases)('refuses %s (sample %d) with a summary field the code does not write', (type, _i, sample) => {
    const b = body(type, sample);
    expect(webhookPayloadProblem({ ...b, data: { ...b.data, surprise: 'x' } })).toMatch(new RegExp(`^${type.replace('.', '\\.')}: .*must NOT have additional properties`));
  });

  it.each(cases)('refuses %s (sample %d) with a summary field missing', (type, _i, sample) => {
    const b = body(type, sample);
    const first = Object.keys(sample.summary).find((k) => k !== 'replaced' && k !== 'was_forced')!;
    const { [first]: _gone, ...data } = b.data;
    expect(webhookPayloadProblem({ ...b, data })).toMatch(/must have required property/);
  });

  it('refuses a wrong value: a type out of its enum, a change of a field not in the shape, a grant to an unknown kind, a null actor that is an object', () => {
    const user = (type: keyof typeof SAMPLES, summary: Record<string, unknown>) => body(type, { target: 'user', summary });
    const group = (type: keyof typeof SAMPLES, summary: Record<string, unknown>) => body(type, { target: 'group', summary });
    expect(webhookPayloadProblem(user('password.changed', { by: 'someone', tokens_ended: 'none' }))).toMatch(/\/data\/by must be equal to one of the allowed values/);
    expect(webhookPayloadProblem(user('password.admin_reset', { tokens_ended: 'some', link_mailed: true }))).toMatch(/tokens_ended/);
    expect(webhookPayloadProblem(user('user.updated', { changes: { password: { from: 'a', to: 'b' } } }))).toMatch(/\/data\/changes must NOT have additional properties/);
    expect(webhookPayloadProblem(user('user.updated', { changes: {} }))).toMatch(/\/data\/changes must NOT have fewer than 1 properties/);
    expect(webhookPayloadProblem(user('user.updated', { changes: { is_admin: { from: 'no', to: 'yes' } } }))).toMatch(/is_admin\/from must be boolean/);
    expect(webhookPayloadProblem(user('token.created', { name: 'ci', scopes: ['root'], expires: '2027-06-01T00:00:00.000Z' }))).toMatch(/scopes\/0/);
    expect(webhookPayloadProblem(group('group.grant_set', { to: { type: 'role', ...devs }, permission: 'usergroup.read' }))).toMatch(/\/data\/to\/type/);
    expect(webhookPayloadProblem(group('group.grant_set', { to: { type: 'user', ...bob }, permission: 'owner' }))).toMatch(/\/data\/permission/);
    expect(webhookPayloadProblem(group('group.member_added', { user: { ...bob, email: 'bob@example.test' } }))).toMatch(/\/data\/user must NOT have additional properties/);
    expect(webhookPayloadProblem(user('mfa.factor_added', { factor: 'not-a-uuid', type: 'totp', name: 'phone' }))).toMatch(/\/data\/factor/);
    expect(webhookPayloadProblem(user('mfa.recovery_codes_created', { count: 10, replaced: false }))).toMatch(/\/data\/replaced must be equal to constant/);
    expect(webhookPayloadProblem(user('email.change_reverted', { ...SAMPLES['email.change_reverted'][0]!.summary, tokens_ended: 'login_only' }))).toMatch(/tokens_ended/);
  });

  it('ties was_forced to a password the user changed: always then, never else', () => {
    const changed = (summary: Record<string, unknown>) => body('password.changed', { target: 'user', summary });
    expect(webhookPayloadProblem(changed({ by: 'self', tokens_ended: 'login_only' }))).toMatch(/must have required property 'was_forced'/);
    expect(webhookPayloadProblem(changed({ by: 'admin', tokens_ended: 'login_only', was_forced: false }))).toMatch(/password\.changed: /);
    expect(webhookPayloadProblem(changed({ by: 'self', tokens_ended: 'login_only', was_forced: true }))).toBeUndefined();
  });
});
