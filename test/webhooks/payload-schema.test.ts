import { eventPayload, testPayload } from '../../src/domain/webhook-events';
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
