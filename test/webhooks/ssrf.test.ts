import crypto from 'node:crypto';
import { KeyRing } from '../../src/keys';
import { WebhookSecrets } from '../../src/services/webhook-secrets';
import { bearer, MFA_KEY, testAppWithAdmin } from '../helpers/test-app';
import { until, WebhookReceiver } from '../helpers/webhook-receiver';

// The relaxing flags off, as in production: WEBHOOK_ALLOW_HTTP and WEBHOOK_ALLOW_PRIVATE unset.
const { t, admin } = testAppWithAdmin({ webhookPollMs: 50 });
const receiver = new WebhookReceiver();
beforeAll(() => receiver.start());
afterAll(() => receiver.stop());


describe('the URL rule at registration', () => {
  it.each([
    ['https://127.0.0.1/hook', 'loopback'],
    ['https://[::1]/hook', 'loopback'],
    ['https://10.1.2.3/hook', 'private'],
    ['https://192.168.0.10/hook', 'private'],
    ['https://169.254.169.254/latest/meta-data', 'linkLocal'],
    ['https://100.64.0.1/hook', 'carrierGradeNat'],
    ['https://[fd00::1]/hook', 'uniqueLocal'],
    ['https://0.0.0.0/hook', 'unspecified'],
    ['https://[::ffff:127.0.0.1]/hook', 'loopback'],
    ['https://localhost/hook', 'loopback'],
    ['http://93.184.215.14/hook', 'must be https'],
    ['https://user:pw@93.184.215.14/hook', 'credentials'],
    ['not a url', 'absolute URL'],
  ])('refuses %s with 400 validation_failed (%s)', async (url, why) => {
    const res = await t.http().post('/webhook').set(bearer(admin.jwt)).send({ url, events: ['*'] });
    expect([res.status, res.body.code]).toEqual([400, 'validation_failed']);
    expect(JSON.stringify(res.body)).toContain(why);
    expect(await t.knex('webhooks').where({ url }).first()).toBeUndefined();
  });

  it('takes an https URL on a public address, and refuses an update to an internal one', async () => {
    const res = await t.http().post('/webhook').set(bearer(admin.jwt)).send({ url: 'https://93.184.215.14/hook', events: ['*'], enabled: false }).expect(201);
    const refused = await t.http().post(`/webhook/${res.body.id}`).set(bearer(admin.jwt)).send({ url: 'https://127.0.0.1/hook' });
    expect([refused.status, refused.body.code]).toEqual([400, 'validation_failed']);
    expect((await t.http().get(`/webhook/${res.body.id}`).set(bearer(admin.jwt)).expect(200)).body.url).toBe('https://93.184.215.14/hook');
  });
});

describe('the address check at delivery', () => {
  // An endpoint whose name resolved to a public address when it was registered, and to an
  // internal one now (DNS rebinding): put in as the registration would have left it.
  async function registeredEarlier(url: string): Promise<string> {
    const id = crypto.randomUUID();
    const secrets = new WebhookSecrets(KeyRing.of('MFA_KEY', [MFA_KEY]));
    await t.container.stores.webhooks.insert({ id, url, events: ['*'], description: null, enabled: true, secret: secrets.seal(secrets.newSecret(), id), createdBy: null, at: new Date() });
    return id;
  }

  it.each([
    ['a name that now resolves to 127.0.0.1', () => `http://localhost:${receiver.port}/rebound`, /^refused: localhost resolves to (127\.0\.0\.1|::1)/],
    ['a literal loopback address', () => `http://127.0.0.1:${receiver.port}/literal`, /^refused: 127\.0\.0\.1/],
  ])('fails the delivery to %s with that reason, and sends nothing', async (_what, url, reason) => {
    const id = await registeredEarlier(url());
    await t.http().post(`/webhook/${id}/test`).set(bearer(admin.jwt)).expect(202);
    const [d] = await until(async () => {
      const log = (await t.http().get(`/webhook/${id}/delivery`).set(bearer(admin.jwt)).expect(200)).body;
      return log[0]?.attempts > 0 && log[0].last_error ? log : undefined;
    });
    expect(d).toMatchObject({ status: 'pending', last_status: null });
    expect(d.last_error).toMatch(reason);
    expect(receiver.received).toEqual([]);
  });
});
