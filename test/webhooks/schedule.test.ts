import { retryDelay, RETRY_SCHEDULE_MS } from '../../src/webhooks/sender';
import { bearer, testAppWithAdmin } from '../helpers/test-app';
import { registerEndpoint, until, WebhookReceiver } from '../helpers/webhook-receiver';

describe('the retry schedule (API.md §2.9)', () => {
  it('waits about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, each within ±20 %, then gives up', () => {
    const minutes = [5 / 60, 5, 30, 120, 300, 600, 600];
    expect(RETRY_SCHEDULE_MS).toEqual(minutes.map((m) => Math.round(m * 60_000)));
    for (let failures = 1; failures <= 7; failures++) {
      const base = RETRY_SCHEDULE_MS[failures - 1];
      expect([failures, retryDelay(failures, () => 0), retryDelay(failures, () => 0.5)]).toEqual([failures, Math.round(base * 0.8), base]);
      expect(retryDelay(failures, () => 0.999999)).toBeLessThanOrEqual(Math.round(base * 1.2));
      expect(retryDelay(failures, () => 0.999999)).toBeGreaterThan(base * 1.19);
    }
    expect(retryDelay(8, () => 0.5)).toBeNull();
  });
});

const { t, admin } = testAppWithAdmin({ env: { WEBHOOK_ALLOW_HTTP: '1', WEBHOOK_ALLOW_PRIVATE: '1' }, webhookPollMs: 50 });
const receiver = new WebhookReceiver();
beforeAll(() => receiver.start());
afterAll(() => receiver.stop());

const endpoint = () => registerEndpoint(t, admin.jwt, receiver);

describe('the last attempt, and a replay asked while an attempt is in flight', () => {
  it('marks a delivery failed after its eighth failed attempt, and sends it no more', async () => {
    const e = await endpoint();
    receiver.reply = (r) => (r.path === e.path ? { status: 500 } : { status: 200 });
    try {
      await t.http().post(`/webhook/${e.id}/test`).set(bearer(admin.jwt)).expect(202);
      await until(async () => (await t.knex('webhook_deliveries').where({ webhook_id: e.id, attempts: 1 }).whereNotNull('last_error').first()) ?? false);
      // As if the first seven attempts had failed: the next one is the last.
      await t.knex('webhook_deliveries').where({ webhook_id: e.id }).update({ attempts: 7, next_attempt: new Date(Date.now() - 1000) });
      const row = await until(async () => (await t.knex('webhook_deliveries').where({ webhook_id: e.id, status: 'failed' }).first()) ?? false);
      expect(row).toMatchObject({ attempts: 8, last_status: 500, status: 'failed' });
      expect(receiver.to(e.path)).toHaveLength(2);
    } finally {
      receiver.reply = { status: 200 };
    }
  });

  it('never puts a second attempt of one delivery in flight: a replay during an attempt is that attempt', async () => {
    const e = await endpoint();
    receiver.reply = (r) => (r.path === e.path ? { status: 200, delayMs: 2_000 } : { status: 200 });
    try {
      await t.http().post(`/webhook/${e.id}/test`).set(bearer(admin.jwt)).expect(202);
      const inFlight = await until(async () => (await t.knex('webhook_deliveries').where({ webhook_id: e.id, attempts: 1 }).first()) ?? false);
      await t.http().post(`/webhook/${e.id}/delivery/${inFlight.id}/retry`).set(bearer(admin.jwt)).expect(202);
      await until(async () => (await t.knex('webhook_deliveries').where({ id: inFlight.id, status: 'delivered' }).first()) ?? false);
      // Time for a second claim, had the replay freed the lease.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await t.knex('webhook_deliveries').where({ id: inFlight.id }).first()).toMatchObject({ status: 'delivered', attempts: 1 });
      expect(receiver.to(e.path)).toHaveLength(1);
    } finally {
      receiver.reply = { status: 200 };
    }
  });
});
