import { bearer, testAppWithAdmin, unique } from '../helpers/test-app';
import { until, WebhookReceiver } from '../helpers/webhook-receiver';

const { t, admin } = testAppWithAdmin({ env: { WEBHOOK_ALLOW_HTTP: '1', WEBHOOK_ALLOW_PRIVATE: '1' }, webhookPollMs: 50 });
const receiver = new WebhookReceiver();
beforeAll(() => receiver.start());
afterAll(() => receiver.stop());

async function create(body: Record<string, unknown> = {}) {
  const res = await t.http().post('/webhook').set(bearer(admin.jwt)).send({ url: receiver.url(`/${unique('p')}`), events: ['*'], ...body });
  if (res.status !== 201) throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { id: string; url: string; secret: string };
}

async function auditOf(action: string): Promise<{ summary: Record<string, unknown>; target: unknown }[]> {
  const res = await t.http().get('/audit').query({ action }).set(bearer(admin.jwt)).expect(200);
  return res.body;
}

describe('webhook endpoints', () => {
  it('creates with a secret shown once, lists, gets, updates and deletes; each change audited without the secret', async () => {
    const url = receiver.url('/created');
    const res = await t.http().post('/webhook').set(bearer(admin.jwt)).send({ url, events: ['user.created', 'group.deleted'], description: 'Billing' });
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`/webhook/${res.body.id}`);
    expect(res.body).toEqual({ id: expect.any(String), url, events: ['user.created', 'group.deleted'], description: 'Billing', enabled: true, created: expect.any(String), disabled_reason: null, secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]{43}=$/) });
    const { id, secret } = res.body;
    const got = await t.http().get(`/webhook/${id}`).set(bearer(admin.jwt)).expect(200);
    expect(got.body).not.toHaveProperty('secret');
    expect(JSON.stringify(got.body)).not.toContain(secret.slice(6));
    const list = await t.http().get('/webhook').set(bearer(admin.jwt)).expect(200);
    expect(list.body.map((w: { id: string }) => w.id)).toContain(id);
    expect(JSON.stringify(list.body)).not.toContain('whsec_');
    const updated = await t.http().post(`/webhook/${id}`).set(bearer(admin.jwt)).send({ enabled: false, events: ['*'] }).expect(200);
    expect([updated.body.enabled, updated.body.events]).toEqual([false, ['*']]);
    await t.http().delete(`/webhook/${id}`).set(bearer(admin.jwt)).expect(204);
    await t.http().get(`/webhook/${id}`).set(bearer(admin.jwt)).expect(404);
    await t.http().delete(`/webhook/${id}`).set(bearer(admin.jwt)).expect(404);
    const audited = [...(await auditOf('webhook.created')), ...(await auditOf('webhook.updated')), ...(await auditOf('webhook.deleted'))].filter((e) => JSON.stringify(e).includes(id));
    expect(audited).toHaveLength(3);
    expect(audited.find((e) => 'changes' in e.summary)?.summary.changes).toEqual({ enabled: { from: true, to: false }, events: { from: ['user.created', 'group.deleted'], to: ['*'] } });
    expect(JSON.stringify(audited)).not.toContain(secret.slice(6));
  });

  it('stores the secret sealed (not as shown) and rotates it: a new secret, audited', async () => {
    const w = await create();
    const row = await t.knex('webhooks').where({ id: w.id }).first();
    expect(row.secret).not.toContain(w.secret.slice(6, 20));
    expect(row.secret).toMatch(/^[0-9a-f]{16}:/);
    const rotated = await t.http().post(`/webhook/${w.id}/secret`).set(bearer(admin.jwt)).expect(200);
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(w.secret);
    const after = await t.knex('webhooks').where({ id: w.id }).first();
    expect(after.previous_secret).toBe(row.secret);
    expect(after.previous_secret_until.getTime() - Date.now()).toBeGreaterThan(23 * 3600_000);
    expect((await auditOf('webhook.secret_rotated')).some((e) => JSON.stringify(e).includes(w.id) && !JSON.stringify(e).includes('whsec_'))).toBe(true);
  });

  it('refuses what is not a system admin with 403, and unknown ids with 404', async () => {
    const w = await create();
    const user = await t.factory.loggedIn();
    for (const [method, path] of [
      ['get', '/webhook'],
      ['post', '/webhook'],
      ['get', `/webhook/${w.id}`],
      ['post', `/webhook/${w.id}`],
      ['delete', `/webhook/${w.id}`],
      ['post', `/webhook/${w.id}/secret`],
      ['post', `/webhook/${w.id}/test`],
      ['get', `/webhook/${w.id}/delivery`],
      ['post', `/webhook/${w.id}/delivery/${w.id}/retry`],
    ] as const) {
      const res = await t.http()[method](path).set(bearer(user.jwt)).send(method === 'post' ? { url: receiver.url(), events: ['*'] } : undefined);
      expect([path, method, res.status]).toEqual([path, method, 403]);
    }
    const missing = '00000000-0000-4000-8000-000000000000';
    await t.http().get(`/webhook/${missing}`).set(bearer(admin.jwt)).expect(404);
    await t.http().post(`/webhook/${missing}/test`).set(bearer(admin.jwt)).expect(404);
    await t.http().get('/webhook/not-a-uuid').set(bearer(admin.jwt)).expect(400);
  });

  it('checks events: unknown types, "*" with others and an empty list are 400', async () => {
    for (const events of [['user.nope'], ['*', 'user.created'], [], ['login.succeeded'], ['settings.changed']]) {
      const res = await t.http().post('/webhook').set(bearer(admin.jwt)).send({ url: receiver.url(), events });
      expect([JSON.stringify(events), res.status, res.body.code]).toEqual([JSON.stringify(events), 400, 'validation_failed']);
    }
  });

  it('pages the list like GET /user, with a Link while more remain', async () => {
    await create();
    await create();
    const first = await t.http().get('/webhook').query({ limit: 1 }).set(bearer(admin.jwt)).expect(200);
    expect(first.body).toHaveLength(1);
    expect(first.headers.link).toMatch(/rel="next"/);
    const next = /<([^>]+)>/.exec(first.headers.link)![1];
    const second = await t.http().get(next).set(bearer(admin.jwt)).expect(200);
    expect(second.body[0].id).not.toBe(first.body[0].id);
    await t.http().get('/webhook').query({ cursor: 'garbage' }).set(bearer(admin.jwt)).expect(400);
  });

  it('queues a webhook.test delivery (202), shows it in the log, filters by status, and replays it (202; 404 for another endpoint)', async () => {
    const w = await create();
    const other = await create();
    await t.http().post(`/webhook/${w.id}/test`).set(bearer(admin.jwt)).expect(202);
    const [got] = await receiver.waitFor(1, { filter: (r) => r.path === new URL(w.url).pathname });
    expect(got.json).toEqual({ type: 'webhook.test', timestamp: expect.any(String), data: { webhook: { id: w.id } } });
    const log = await until(async () => {
      const res = await t.http().get(`/webhook/${w.id}/delivery`).query({ status: 'delivered' }).set(bearer(admin.jwt)).expect(200);
      return res.body.length === 1 ? res.body : undefined;
    });
    expect(log[0]).toEqual({ id: expect.any(String), event_id: expect.any(String), type: 'webhook.test', status: 'delivered', attempts: 1, last_status: 200, last_error: null, next_attempt: expect.any(String), created: expect.any(String), delivered: expect.any(String) });
    expect((await t.http().get(`/webhook/${w.id}/delivery`).query({ status: 'pending' }).set(bearer(admin.jwt)).expect(200)).body).toEqual([]);
    await t.http().post(`/webhook/${other.id}/delivery/${log[0].id}/retry`).set(bearer(admin.jwt)).expect(404);
    await t.http().post(`/webhook/${w.id}/delivery/${log[0].id}/retry`).set(bearer(admin.jwt)).expect(202);
    const both = await receiver.waitFor(2, { filter: (r) => r.path === new URL(w.url).pathname });
    expect(both[1].headers['webhook-id']).toBe(`msg_${log[0].event_id}`);
    expect(both[1].headers['webhook-id']).toBe(both[0].headers['webhook-id']);
    expect(both[1].raw).toBe(both[0].raw);
  });

  it('drops the deliveries with the endpoint', async () => {
    const w = await create({ enabled: false });
    await t.http().post(`/webhook/${w.id}/test`).set(bearer(admin.jwt)).expect(202);
    expect(await t.knex('webhook_deliveries').where({ webhook_id: w.id }).count('* as n')).toEqual([{ n: '1' }]);
    await t.http().delete(`/webhook/${w.id}`).set(bearer(admin.jwt)).expect(204);
    expect(await t.knex('webhook_deliveries').where({ webhook_id: w.id }).count('* as n')).toEqual([{ n: '0' }]);
  });
});

