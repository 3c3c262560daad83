import { Webhook } from 'standardwebhooks';
import { bearer, queuedMail, testAppWithAdmin, unique } from '../helpers/test-app';
import { until, WebhookReceiver, type ReceivedWebhook } from '../helpers/webhook-receiver';

// Local receivers: the relaxing flags on here (the SSRF refusals are in ssrf.test.ts, with them off).
const { t, admin } = testAppWithAdmin({ env: { WEBHOOK_ALLOW_HTTP: '1', WEBHOOK_ALLOW_PRIVATE: '1' }, webhookPollMs: 50 });
const receiver = new WebhookReceiver();
beforeAll(() => receiver.start());
afterAll(() => receiver.stop());

interface Endpoint {
  id: string;
  path: string;
  secret: string;
}

async function endpoint(body: Record<string, unknown> = {}): Promise<Endpoint> {
  const path = `/${unique('hook')}`;
  const res = await t.http().post('/webhook').set(bearer(admin.jwt)).send({ url: receiver.url(path), events: ['*'], ...body });
  if (res.status !== 201) throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.id, path, secret: res.body.secret };
}

/** A user made through the API (a `user.created` event), and its id. */
async function createUser(name = unique('wh')): Promise<{ id: string; name: string; password: string }> {
  const password = `pw-${unique('x')}-long`;
  const res = await t.http().post('/user').set(bearer(admin.jwt)).send({ name, email: `${name}@example.test`, password });
  if (res.status !== 201) throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.id, name, password };
}

const at = (e: Endpoint) => (r: ReceivedWebhook) => r.path === e.path;
const ofUser = (id: string) => (r: ReceivedWebhook) => r.json?.data?.user?.id === id;

async function deliveriesOf(e: Endpoint): Promise<{ status: string; attempts: number; last_status: number | null; last_error: string | null; event_id: string }[]> {
  return (await t.http().get(`/webhook/${e.id}/delivery`).set(bearer(admin.jwt)).expect(200)).body;
}


describe('deliveries', () => {
  it('posts each event signed per Standard Webhooks: verified by the standardwebhooks package, the event id as webhook-id', async () => {
    const e = await endpoint({ events: ['user.created'] });
    const user = await createUser();
    const [got] = await receiver.waitFor(1, { filter: (r) => at(e)(r) && ofUser(user.id)(r) });
    expect(got.method).toBe('POST');
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['user-agent']).toBe('Accounts webhooks');
    expect(new Webhook(e.secret).verify(got.raw, got.headers as Record<string, string>)).toEqual(got.json);
    const [entry] = (await t.http().get('/audit').query({ action: 'user.created', target: user.id }).set(bearer(admin.jwt)).expect(200)).body;
    expect(got.headers['webhook-id']).toBe(`msg_${entry.id}`);
    expect(Math.abs(Number(got.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);
    expect(got.json).toEqual({
      type: 'user.created',
      timestamp: entry.time,
      data: { ...entry.summary, user: { id: user.id, name: user.name }, actor: { id: admin.user.id, name: admin.user.name } },
    });
    // Tampered with, it does not verify.
    expect(() => new Webhook(e.secret).verify(got.raw.replace(user.name, 'mallory'), got.headers as Record<string, string>)).toThrow();
    expect((await deliveriesOf(e))[0]).toMatchObject({ status: 'delivered', attempts: 1, last_status: 200, event_id: entry.id });
  });

  it('sends each endpoint only the types it asked for ("*" all); a disabled endpoint gets nothing, not even a row', async () => {
    const users = await endpoint({ events: ['user.created', 'user.updated'] });
    const all = await endpoint({ events: ['*'] });
    const groups = await endpoint({ events: ['group.created'] });
    const disabled = await endpoint({ events: ['*'], enabled: false });
    const user = await createUser();
    const group = (await t.http().post('/user_group').set(bearer(admin.jwt)).send({ name: unique('grp') }).expect(201)).body;
    await receiver.waitFor(2, { filter: (r) => at(all)(r) && (ofUser(user.id)(r) || r.json?.data?.group?.id === group.id) });
    await receiver.waitFor(1, { filter: (r) => at(groups)(r) && r.json?.data?.group?.id === group.id });
    await receiver.waitFor(1, { filter: (r) => at(users)(r) && ofUser(user.id)(r) });
    // Everything of these two changes has been fanned out (the group came after the user): the rows say what each endpoint got.
    expect((await deliveriesOf(users)).length).toBe(1);
    expect((await deliveriesOf(groups)).length).toBe(1);
    expect(receiver.to(groups.path).map((r) => r.json.type)).toEqual(['group.created']);
    expect(receiver.to(users.path).map((r) => r.json.type)).toEqual(['user.created']);
    expect(await deliveriesOf(disabled)).toEqual([]);
    expect(receiver.to(disabled.path)).toEqual([]);
  });

  it('sends nothing for a change that failed (rolled back): the next change arrives alone', async () => {
    const e = await endpoint({ events: ['user.created'] });
    const taken = await createUser();
    await receiver.waitFor(1, { filter: (r) => at(e)(r) && ofUser(taken.id)(r) });
    const refused = await t.http().post('/user').set(bearer(admin.jwt)).send({ name: taken.name, email: `${unique('dup')}@example.test` });
    expect(refused.status).toBe(409);
    const marker = await createUser();
    await receiver.waitFor(1, { filter: (r) => at(e)(r) && ofUser(marker.id)(r) });
    expect(receiver.to(e.path).map((r) => r.json.data.user.id)).toEqual([taken.id, marker.id]);
    expect((await deliveriesOf(e)).length).toBe(2);
  });

  it('retries after a 500 with the same webhook-id and body, after about 5 s (the test clock skips it)', async () => {
    const e = await endpoint({ events: ['user.created'] });
    let calls = 0;
    receiver.reply = (r) => (r.path === e.path && calls++ === 0 ? { status: 500, body: 'boom' } : { status: 200 });
    try {
      const user = await createUser();
      await receiver.waitFor(1, { filter: at(e) });
      const [failed] = await until(async () => ((await deliveriesOf(e))[0]?.last_status === 500 ? deliveriesOf(e) : undefined));
      expect(failed).toMatchObject({ status: 'pending', attempts: 1, last_status: 500, last_error: 'HTTP 500: boom' });
      const row = await t.knex('webhook_deliveries').where({ webhook_id: e.id }).first();
      const wait = row.next_attempt.getTime() - Date.now();
      expect(wait).toBeGreaterThan(3_000); // 5 s ± 20 %, less the time since
      expect(wait).toBeLessThanOrEqual(6_000);
      t.clock.advance(7_000);
      t.container.webhookSender.kick();
      const [first, second] = await receiver.waitFor(2, { filter: at(e) });
      t.clock.advance(-7_000);
      expect(second.headers['webhook-id']).toBe(first.headers['webhook-id']);
      expect(second.raw).toBe(first.raw);
      expect(ofUser(user.id)(second)).toBe(true);
      expect(new Webhook(e.secret).verify(second.raw, second.headers as Record<string, string>)).toBeTruthy();
      await until(async () => (await deliveriesOf(e))[0].status === 'delivered');
      expect((await deliveriesOf(e))[0]).toMatchObject({ attempts: 2, last_status: 200, last_error: null });
    } finally {
      receiver.reply = { status: 200 };
    }
  });

  it('follows no redirect: a 302 is a failed attempt', async () => {
    const e = await endpoint({ events: ['webhook.test'] });
    const elsewhere = `/${unique('elsewhere')}`;
    receiver.reply = (r) => (r.path === e.path ? { status: 302, headers: { Location: receiver.url(elsewhere) } } : { status: 200 });
    try {
      await t.http().post(`/webhook/${e.id}/test`).set(bearer(admin.jwt)).expect(202);
      const [d] = await until(async () => ((await deliveriesOf(e))[0]?.last_status ? deliveriesOf(e) : undefined));
      expect(d).toMatchObject({ status: 'pending', last_status: 302, last_error: 'redirect 302 (not followed)' });
      expect(receiver.to(elsewhere)).toEqual([]);
    } finally {
      receiver.reply = { status: 200 };
    }
  });

  it('disables an endpoint that answers 410 at once; its deliveries wait, and are sent when it is enabled again', async () => {
    const e = await endpoint({ events: ['webhook.test'] });
    receiver.reply = (r) => (r.path === e.path ? { status: 410 } : { status: 200 });
    try {
      await t.http().post(`/webhook/${e.id}/test`).set(bearer(admin.jwt)).expect(202);
      const disabled = await until(async () => {
        const w = (await t.http().get(`/webhook/${e.id}`).set(bearer(admin.jwt)).expect(200)).body;
        return w.enabled ? undefined : w;
      });
      expect(disabled.disabled_reason).toBe('the endpoint answered 410 Gone');
      expect((await deliveriesOf(e))[0]).toMatchObject({ status: 'pending', last_status: 410 });
    } finally {
      receiver.reply = { status: 200 };
    }
    const enabled = await t.http().post(`/webhook/${e.id}`).set(bearer(admin.jwt)).send({ enabled: true }).expect(200);
    expect(enabled.body.disabled_reason).toBeNull();
    await t.http().post(`/webhook/${e.id}/delivery/${(await t.knex('webhook_deliveries').where({ webhook_id: e.id }).first()).id}/retry`).set(bearer(admin.jwt)).expect(202);
    await until(async () => (await deliveriesOf(e))[0].status === 'delivered');
  });

  it('signs with both secrets for a day after a rotation: two signatures, each secret verifies', async () => {
    const e = await endpoint({ events: ['webhook.test'] });
    const rotated = (await t.http().post(`/webhook/${e.id}/secret`).set(bearer(admin.jwt)).expect(200)).body.secret as string;
    await t.http().post(`/webhook/${e.id}/test`).set(bearer(admin.jwt)).expect(202);
    const [got] = await receiver.waitFor(1, { filter: at(e) });
    const signatures = String(got.headers['webhook-signature']).split(' ');
    expect(signatures).toHaveLength(2);
    expect(signatures.every((s) => s.startsWith('v1,'))).toBe(true);
    for (const secret of [e.secret, rotated]) {
      expect(new Webhook(secret).verify(got.raw, got.headers as Record<string, string>)).toEqual(got.json);
      // Each signature is one secret's: the other one alone does not verify with it.
      const alone = signatures.filter((s) => {
        try {
          new Webhook(secret).verify(got.raw, { ...(got.headers as Record<string, string>), 'webhook-signature': s });
          return true;
        } catch {
          return false;
        }
      });
      expect(alone).toHaveLength(1);
    }
    // A day later only the new secret signs.
    t.clock.advance(24 * 3600_000 + 60_000);
    try {
      await t.http().post(`/webhook/${e.id}/test`).set(bearer(admin.jwt)).expect(202);
      const [, later] = await receiver.waitFor(2, { filter: at(e) });
      expect(String(later.headers['webhook-signature']).split(' ')).toHaveLength(1);
      // standardwebhooks refuses a timestamp 5 minutes off: the test clock is a day ahead, so check the signature by hand.
      const signed = `${later.headers['webhook-id']}.${later.headers['webhook-timestamp']}.${later.raw}`;
      const hmac = (secret: string) => require('node:crypto').createHmac('sha256', Buffer.from(secret.slice(6), 'base64')).update(signed).digest('base64');
      expect(later.headers['webhook-signature']).toBe(`v1,${hmac(rotated)}`);
    } finally {
      t.clock.advance(-(24 * 3600_000 + 60_000));
    }
  });

  it('never puts a password, token, secret, link or setting value in a payload', async () => {
    const e = await endpoint({ events: ['*'] });
    const secrets: string[] = [e.secret.slice(6)];
    const created = await createUser(); // with a password, by an admin
    secrets.push(created.password);
    const self = await t.factory.loggedIn();
    const user = { id: self.user.id, name: self.user.name };
    secrets.push(self.password, self.jwt);
    const made = await t.http().post('/user/me/token').set(bearer(self.jwt)).send({ name: unique('tok') }).expect(201);
    secrets.push(made.body.token);
    const key = unique('key');
    const settingValue = unique('setting-value');
    await t.http().post(`/user/me/settings/${key}`).set(bearer(self.jwt)).send({ [key]: settingValue }).expect(204);
    secrets.push(settingValue);
    const newPassword = `pw-${unique('new')}-long`;
    await t.http().post('/user/me/password').set(bearer(self.jwt)).send({ password: newPassword, current_password: self.password }).expect(204);
    secrets.push(newPassword);
    await t.http().delete(`/user/me/token/${encodeURIComponent(made.body.name)}`).set(bearer(await t.factory.login({ email: self.email, password: newPassword }))).expect(204);
    await t.http().delete(`/user/${user.id}/password`).query({ send_mail: '1' }).set(bearer(admin.jwt)).expect(204);
    const rotated = (await t.http().post(`/webhook/${e.id}/secret`).set(bearer(admin.jwt)).expect(200)).body.secret as string;
    secrets.push(rotated.slice(6));
    await t.http().delete(`/user/${user.id}`).set(bearer(admin.jwt)).expect(204);
    await receiver.waitFor(1, { filter: (r) => at(e)(r) && r.json?.type === 'user.deactivated' && ofUser(user.id)(r) });
    const links = (await queuedMail(t.knex, self.email)).length;
    expect(links).toBeGreaterThan(0);
    const linkTokens = await until(async () => {
      const found = t.mail.mails.filter((m) => m.to.includes(self.email)).flatMap((m) => [...m.text.matchAll(/token=([A-Za-z0-9_-]+)/g)].map((x) => x[1]));
      return found.length > 0 ? found : undefined;
    });
    secrets.push(...linkTokens);
    const bodies = (await t.knex('webhook_deliveries').where({ webhook_id: e.id }).select('body')).map((r: { body: string }) => r.body);
    expect(bodies.length).toBeGreaterThanOrEqual(4);
    for (const body of bodies) {
      for (const secret of secrets) expect(body).not.toContain(secret);
      expect(body).not.toMatch(/whsec_|eyJ[A-Za-z0-9_-]{10,}|https?:\/\/|\$2[aby]\$/);
    }
  });
});

/** A sample's value from the /metrics text (0 when absent). */
async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = (await t.http().get('/metrics').expect(200)).text;
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => (l.startsWith(`${name} `) || l.startsWith(`${name}{`)) && wanted.every((w) => l.includes(w)));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('metrics and the 5-day rule', () => {
  it('counts deliveries by result and disables, and shows the queue and its oldest delivery per endpoint', async () => {
    const before = { delivered: await metric('webhook_deliveries_total', { result: 'delivered' }), retried: await metric('webhook_deliveries_total', { result: 'retried' }) };
    const e = await endpoint({ events: ['webhook.test'] });
    let calls = 0;
    receiver.reply = (r) => (r.path === e.path && calls++ === 0 ? { status: 503 } : { status: 200 });
    try {
      await t.http().post(`/webhook/${e.id}/test`).set(bearer(admin.jwt)).expect(202);
      await until(async () => (await deliveriesOf(e))[0]?.last_status === 503);
      // The retry waits: pending, and its age shows under its endpoint's id.
      await t.container.databaseGauges.refresh();
      expect(await metric('webhook_queue_depth')).toBeGreaterThanOrEqual(1);
      expect(await metric('webhook_oldest_pending_seconds', { webhook: e.id })).toBeGreaterThanOrEqual(0);
      expect((await t.http().get('/metrics').expect(200)).text).toContain(`webhook_oldest_pending_seconds{webhook="${e.id}"}`);
      t.clock.advance(7_000);
      t.container.webhookSender.kick();
      await until(async () => (await deliveriesOf(e))[0].status === 'delivered');
      t.clock.advance(-7_000);
    } finally {
      receiver.reply = { status: 200 };
    }
    expect(await metric('webhook_deliveries_total', { result: 'retried' })).toBe(before.retried + 1);
    expect(await metric('webhook_deliveries_total', { result: 'delivered' })).toBeGreaterThanOrEqual(before.delivered + 1);
    await t.container.databaseGauges.refresh();
    expect((await t.http().get('/metrics').expect(200)).text).not.toContain(`webhook_oldest_pending_seconds{webhook="${e.id}"}`);
  });

  it('disables an endpoint failing for 5 days at its next failure, mails the active system admins (no secret), and counts it', async () => {
    const disabledBefore = await metric('webhook_disabled_total');
    const e = await endpoint({ events: ['webhook.test'] });
    receiver.reply = (r) => (r.path === e.path ? { status: 500 } : { status: 200 });
    const skipped = 5 * 24 * 3600_000 + 3600_000;
    try {
      await t.http().post(`/webhook/${e.id}/test`).set(bearer(admin.jwt)).expect(202);
      await until(async () => (await deliveriesOf(e))[0]?.attempts === 1 && (await deliveriesOf(e))[0].last_status === 500);
      // Failing, not yet 5 days: still enabled, no mail.
      expect((await t.http().get(`/webhook/${e.id}`).set(bearer(admin.jwt)).expect(200)).body.enabled).toBe(true);
      t.clock.advance(skipped);
      t.container.webhookSender.kick();
      const w = await until(async () => {
        const got = (await t.http().get(`/webhook/${e.id}`).set(bearer(admin.jwt)).expect(200)).body;
        return got.enabled ? undefined : got;
      });
      expect(w.disabled_reason).toBe('nothing was delivered to it for 5 days of failures');
      const mails = (await queuedMail(t.knex, admin.email)).filter((m) => m.subject === 'A webhook of Accounts has been disabled');
      expect(mails).toHaveLength(1);
      const sent = await until(async () => t.mail.mails.find((m) => m.to.includes(admin.email) && m.subject === 'A webhook of Accounts has been disabled'));
      expect(sent.text).toContain(`http://127.0.0.1:${receiver.port}`);
      expect(sent.text).toContain('5 days');
      expect(sent.text).not.toContain(e.path);
      expect(sent.text).not.toContain(e.secret.slice(6));
      expect(await metric('webhook_disabled_total')).toBe(disabledBefore + 1);
      // Disabled: a test waits, unsent.
      const attempts = (await deliveriesOf(e))[0].attempts;
      await t.http().post(`/webhook/${e.id}/test`).set(bearer(admin.jwt)).expect(202);
      await t.container.webhookSender.runOnce();
      expect((await deliveriesOf(e)).map((d) => d.attempts)).toEqual([0, attempts]);
    } finally {
      receiver.reply = { status: 200 };
      t.clock.advance(-skipped);
    }
  });
});
