import pino from 'pino';
import { KeyRing, MFA_KEY } from '../../src/keys';
import { WebhookSecrets } from '../../src/services/webhook-secrets';
import { CLAIM, DELIVERED, type WebhookStore } from '../../src/stores/webhook-store';
import { perEndpointShare, WebhookSender } from '../../src/webhooks/sender';
import { bearer, captureQueries, createTestApp, testAppWithAdmin, unique, type TestApp } from '../helpers/test-app';
import { registerEndpoint, until, WebhookReceiver, type ReceivedWebhook } from '../helpers/webhook-receiver';

// 8 in flight, at most 4 of them to one endpoint.
const { t, admin } = testAppWithAdmin({ env: { WEBHOOK_ALLOW_HTTP: '1', WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_CONCURRENCY: '8' }, webhookPollMs: 50 });
const receiver = new WebhookReceiver();
beforeAll(() => receiver.start());
afterAll(() => receiver.stop());

const endpoint = () => registerEndpoint(t, admin.jwt, receiver);


const at = (path: string) => (r: ReceivedWebhook) => r.path === path;

describe('the sender', () => {
  it('keeps a slow endpoint from holding up the others, and gives up on an answer after 15 s', async () => {
    const slow = await endpoint();
    const fast = await endpoint();
    receiver.reply = (r) => (r.path === slow.path ? { status: 200, delayMs: 17_000 } : { status: 200 });
    try {
      expect(perEndpointShare(8)).toBe(4);
      // More than one endpoint's share of slots (4) in flight to the slow one.
      for (let i = 0; i < 6; i++) await t.http().post(`/webhook/${slow.id}/test`).set(bearer(admin.jwt)).expect(202);
      await until(async () => Number((await t.knex('webhook_deliveries').where({ webhook_id: slow.id }).where('attempts', '>', 0).count('* as n'))[0].n) >= 4);
      const started = Date.now();
      for (let i = 0; i < 3; i++) await t.http().post(`/webhook/${fast.id}/test`).set(bearer(admin.jwt)).expect(202);
      await receiver.waitFor(3, { filter: at(fast.path), timeoutMs: 10_000 });
      expect(Date.now() - started).toBeLessThan(10_000);
      // At most 4 at once to one endpoint: 2 of the slow one's wait their turn.
      expect(Number((await t.knex('webhook_deliveries').where({ webhook_id: slow.id, attempts: 0 }).count('* as n'))[0].n)).toBe(2);
      const timedOut = await until(async () => {
        const rows = await t.knex('webhook_deliveries').where({ webhook_id: slow.id }).whereNotNull('last_error');
        return rows.length > 0 ? rows : undefined;
      }, 30_000);
      expect(timedOut[0]).toMatchObject({ status: 'pending', last_status: null, last_error: 'no answer within 15 s' });
    } finally {
      receiver.reply = { status: 200 };
    }
  }, 60_000);

  it('delivers each event once with two instances sending from one database', async () => {
    const other: TestApp = await createTestApp({ sameDatabaseAs: t, env: { WEBHOOK_ALLOW_HTTP: '1', WEBHOOK_ALLOW_PRIVATE: '1' }, webhookPollMs: 50 });
    try {
      const e = await endpoint();
      const n = 30;
      await Promise.all(Array.from({ length: n }, (_, i) => (i % 2 ? other : t).http().post(`/webhook/${e.id}/test`).set(bearer(admin.jwt)).expect(202)));
      await receiver.waitFor(n, { filter: at(e.path) });
      await until(async () => Number((await t.knex('webhook_deliveries').where({ webhook_id: e.id, status: 'delivered' }).count('* as n'))[0].n) === n);
      const got = receiver.to(e.path);
      expect(got).toHaveLength(n);
      expect(new Set(got.map((r) => r.headers['webhook-id'])).size).toBe(n);
      expect((await t.knex('webhook_deliveries').where({ webhook_id: e.id }).select('attempts')).every((r: { attempts: number }) => r.attempts === 1)).toBe(true);
    } finally {
      await other.close();
    }
  });

  it('claims again at once when deliveries end while a claim is under way, rather than at the next poll', async () => {
    const u = await createTestApp({ env: { WEBHOOK_ALLOW_HTTP: '1', WEBHOOK_ALLOW_PRIVATE: '1' }, webhookPollMs: 3_600_000 });
    let sender: WebhookSender | undefined;
    try {
      await u.container.webhookSender.stop(); // only the sender below sends
      const uAdmin = await u.factory.loggedIn({ admin: true });
      const path = `/${unique('hook')}`;
      const made = await u.http().post('/webhook').set(bearer(uAdmin.jwt)).send({ url: receiver.url(path), events: ['webhook.test'] }).expect(201);
      const share = perEndpointShare(16);
      for (let i = 0; i <= share; i++) await u.http().post(`/webhook/${made.body.id}/test`).set(bearer(uAdmin.jwt)).expect(202);
      // The first claim takes the endpoint's share; every later one starts (counting those in
      // flight) and only then waits for them to be recorded: the race a busy process meets, made
      // certain. That claim finds nothing; the one left must still go without waiting an hour.
      const real = u.container.stores.webhooks;
      const delivered = async () => Number((await u.knex('webhook_deliveries').where({ webhook_id: made.body.id, status: 'delivered' }).count('* as n'))[0].n);
      let claims = 0;
      const store: WebhookStore = Object.assign(Object.create(real) as WebhookStore, {
        claim: async (now: Date, limit: number, leaseMs: number, perEndpoint: number, inFlight: ReadonlyMap<string, number>) => {
          const counted = new Map(inFlight); // as the statement's values are taken when it is sent
          if (claims++ > 0) {
            await until(async () => (await delivered()) >= share);
            await new Promise((r) => setTimeout(r, 200)); // the records' answers reach the sender
          }
          return real.claim(now, limit, leaseMs, perEndpoint, counted);
        },
      });
      const secrets = new WebhookSecrets(KeyRing.of(MFA_KEY.variable, u.config.mfaKeys));
      sender = new WebhookSender(store, u.container.transact, secrets, u.clock, pino({ level: 'silent' }), {
        concurrency: 16,
        allowPrivate: true,
        pollIntervalMs: 3_600_000,
        mail: { appName: u.config.appName, appUrl: u.config.appUrl },
      });
      sender.start();
      await receiver.waitFor(share + 1, { filter: at(path), timeoutMs: 10_000 });
      await until(async () => (await delivered()) === share + 1);
      expect(claims).toBeGreaterThanOrEqual(3);
    } finally {
      await sender?.stop();
      await u.close();
    }
  });

  it("is left out of a request's captured statements, as the other workers are (its claim and record are prepared)", async () => {
    const e = await endpoint();
    await t.http().post(`/webhook/${e.id}/test`).set(bearer(admin.jwt)).expect(202);
    const seen: string[] = [];
    const listener = (q: { sql: string }) => seen.push(q.sql);
    t.knex.on('query', listener);
    let statements: string[];
    try {
      statements = await captureQueries(t.knex, () => Promise.all([t.http().get('/user/me').set(bearer(admin.jwt)).expect(200), t.container.webhookSender.runOnce()]));
    } finally {
      t.knex.removeListener('query', listener);
    }
    const sender = (sql: string) => sql === CLAIM.text || sql === DELIVERED.text;
    expect(seen.filter(sender).length).toBeGreaterThan(0); // the claim ran meanwhile
    expect(statements.filter(sender)).toEqual([]);
    expect(statements[0]).toMatch(/from user_tokens t join users/); // the request's token check
  });

  // Last: it stops this app's sender.
  it('cuts an attempt still in flight 5 s into a shutdown: nothing recorded, the delivery left to its lease (sent again with its webhook-id)', async () => {
    const slow = await endpoint();
    receiver.reply = (r) => (r.path === slow.path ? { status: 200, delayMs: 20_000 } : { status: 200 });
    try {
      await t.http().post(`/webhook/${slow.id}/test`).set(bearer(admin.jwt)).expect(202);
      await until(async () => (await t.knex('webhook_deliveries').where({ webhook_id: slow.id }).first())?.attempts === 1);
      const started = Date.now();
      await t.container.webhookSender.stop();
      expect(Date.now() - started).toBeLessThan(9_000);
      const row = await t.knex('webhook_deliveries').where({ webhook_id: slow.id }).first();
      expect(row).toMatchObject({ status: 'pending', attempts: 1, last_status: null, last_error: null });
      expect(row.locked_until.getTime()).toBeGreaterThan(Date.now());
    } finally {
      receiver.reply = { status: 200 };
    }
  });
});
