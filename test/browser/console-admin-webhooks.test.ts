import { Webhook as Verifier } from 'standardwebhooks';
import supertest from 'supertest';
import { expectNoTrouble, startConsole, type ConsoleRun } from '../helpers/console';
import type { TestUser } from '../helpers/test-app';
import { WebhookReceiver, type ReceivedWebhook } from '../helpers/webhook-receiver';

/** A delivery's headers as the verifier takes them. */
const headers = (r: ReceivedWebhook) => r.headers as Record<string, string>;

/**
 * The administrators' webhooks pages in Chromium, over a test app that may post to a receiver in
 * this process (WEBHOOK_ALLOW_HTTP and WEBHOOK_ALLOW_PRIVATE: http on 127.0.0.1). What the pages
 * show is compared with what the receiver got and what the API answers.
 */
describe('the console: the administrators’ webhooks pages', () => {
  let run: ConsoleRun;
  let admin: TestUser & { jwt: string };
  let receiver: WebhookReceiver;
  const api = () => {
    const agent = supertest(run.t.baseUrl);
    const auth = `Bearer ${admin.jwt}`;
    return {
      get: (path: string) => agent.get(path).set('Authorization', auth),
      post: (path: string, body?: object) => agent.post(path).set('Authorization', auth).send(body),
      delete: (path: string) => agent.delete(path).set('Authorization', auth),
    };
  };

  beforeAll(async () => {
    receiver = new WebhookReceiver();
    await receiver.start();
    run = await startConsole({ env: { WEBHOOK_ALLOW_HTTP: '1', WEBHOOK_ALLOW_PRIVATE: '1' }, webhookPollMs: 50 });
    admin = await run.t.factory.loggedIn({ admin: true, name: 'root', password: 'admin password 1' });
  });
  afterAll(async () => {
    await run?.close();
    await receiver?.stop();
  });

  it('adds a webhook with its secret shown once, sends a test that is delivered and signed, replays it, rotates the secret, disables and deletes it', async () => {
    const tab = await run.open();
    const { page } = tab;
    await run.signIn(tab, admin);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks' }).click();
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    await page.getByText('No webhooks yet.').waitFor();
    await run.check(tab, 'admin-webhooks-empty');

    const form = page.getByRole('form', { name: 'Add a webhook' });
    const url = receiver.url('/accounts');
    // No event chosen: said under the events, before anything is sent.
    await form.getByLabel('URL').fill(url);
    await form.getByRole('button', { name: 'Add webhook' }).click();
    await form.getByText('Choose at least one event, or every event.').waitFor();
    // A URL the API refuses: its message under the URL.
    await form.getByLabel('URL').fill('ftp://example.com/hook');
    await form.getByLabel('user.created').check();
    await form.getByLabel('group.deleted').check();
    await form.getByRole('button', { name: 'Add webhook' }).click();
    await form.locator('#field-url-error').waitFor();
    expect(await form.getByLabel('URL').getAttribute('aria-invalid')).toBe('true');

    await form.getByLabel('URL').fill(url);
    await form.getByLabel('Description').fill('The billing system');
    await form.getByRole('button', { name: 'Add webhook' }).click();
    const box = page.getByRole('region', { name: 'Signing secret of the new webhook' });
    await box.getByText('it will not be shown again').waitFor();
    const secret = (await box.locator('code.webhook-secret').textContent())!.trim();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    await box.getByRole('button', { name: 'Copy secret' }).click();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(secret);
    const table = page.getByRole('table', { name: 'Webhooks, oldest first' });
    const row = table.getByRole('row', { name: new RegExp(url.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')) });
    await row.getByText('Enabled').waitFor();
    expect(await row.getByRole('cell').nth(1).textContent()).toBe('user.createdgroup.deleted');
    await run.check(tab, 'admin-webhooks-created');

    // Shown once: gone when done, and in no answer of the API.
    await box.getByRole('button', { name: 'I have copied it' }).click();
    await box.waitFor({ state: 'detached' });
    const list = await api().get('/webhook');
    expect(list.status).toBe(200);
    expect(list.body).toEqual([expect.objectContaining({ url, events: ['user.created', 'group.deleted'], description: 'The billing system', enabled: true, disabled_reason: null })]);
    expect(JSON.stringify(list.body)).not.toContain(secret.slice(6));
    const id = list.body[0].id as string;

    // The endpoint's page: a test event, delivered and signed with the secret.
    await row.getByRole('link').click();
    await page.getByRole('heading', { name: `Webhook to ${new URL(url).host}`, level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Send a test event' }).click();
    await page.getByText('A webhook.test event was queued for this endpoint').waitFor();
    const log = page.getByRole('table', { name: `Deliveries to ${url}, newest first` });
    const first = log.getByRole('row').nth(1);
    await first.getByText('delivered', { exact: true }).waitFor({ timeout: 30_000 });
    expect(receiver.received).toHaveLength(1);
    const got = receiver.received[0];
    const payload = new Verifier(secret).verify(got.raw, headers(got)) as { type: string; data: unknown };
    expect(payload).toMatchObject({ type: 'webhook.test', data: { webhook: { id } } });
    await first.getByText(headers(got)['webhook-id'], { exact: true }).waitFor();
    await run.check(tab, 'admin-webhook');

    // The status filter.
    await page.getByLabel('Status').selectOption('failed');
    await page.getByText('No failed delivery.').waitFor();
    await page.getByLabel('Status').selectOption('delivered');
    await first.getByText('webhook.test').waitFor();

    // A replay: the same webhook-id again.
    await first.getByRole('button', { name: /^Send again: webhook\.test of / }).click();
    await receiver.waitFor(2, { timeoutMs: 30_000 });
    expect(receiver.received[1].headers['webhook-id']).toBe(got.headers['webhook-id']);
    expect(receiver.received[1].raw).toBe(got.raw);

    // Rotation: the new secret once; the next delivery is signed by both.
    await page.getByRole('button', { name: 'Rotate the secret' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Rotate the secret' }).click();
    const rotated = page.getByRole('region', { name: 'The new signing secret' });
    const second = (await rotated.locator('code.webhook-secret').textContent())!.trim();
    expect(second).toMatch(/^whsec_/);
    expect(second).not.toBe(secret);
    await run.check(tab, 'admin-webhook-rotated');
    await rotated.getByRole('button', { name: 'I have copied it' }).click();
    await page.getByLabel('Status').selectOption('any');
    await page.getByRole('button', { name: 'Send a test event' }).click();
    await receiver.waitFor(3, { timeoutMs: 30_000 });
    const third = receiver.received[2];
    expect(headers(third)['webhook-signature'].split(' ')).toHaveLength(2);
    for (const s of [secret, second]) expect(new Verifier(s).verify(third.raw, headers(third))).toMatchObject({ type: 'webhook.test' });
    await log.getByRole('row').nth(1).getByText('delivered', { exact: true }).waitFor({ timeout: 30_000 });

    // Edit: every event, another description.
    const settings = page.getByRole('form', { name: 'Webhook settings' });
    await settings.getByLabel('Every event (*)').check();
    await settings.getByLabel('Description').fill('Billing, every event');
    await settings.getByRole('button', { name: 'Save changes' }).click();
    await settings.getByText('Saved.').waitFor();
    await page.locator('dl.facts').getByText('every event', { exact: true }).waitFor();
    expect((await api().get(`/webhook/${id}`)).body).toMatchObject({ events: ['*'], description: 'Billing, every event' });

    // Disable, then delete.
    await page.getByRole('button', { name: 'Disable', exact: true }).click();
    await page.getByText('Disabled: nothing is sent to it until it is enabled again.').waitFor();
    await page.getByRole('button', { name: 'Enable', exact: true }).waitFor();
    expect((await api().get(`/webhook/${id}`)).body).toMatchObject({ enabled: false });
    await run.check(tab, 'admin-webhook-disabled');
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete webhook' }).click();
    await page.getByText('No webhooks yet.').waitFor();
    expect((await api().get(`/webhook/${id}`)).status).toBe(404);

    expectNoTrouble(tab.trouble, ['POST /webhook 400']);
  }, 240_000);

  it('the audit log says each change of a webhook as a sentence, never its secret', async () => {
    const url = receiver.url('/audited');
    const made = await api().post('/webhook', { url, events: ['user.created', 'group.deleted'] });
    expect(made.status).toBe(201);
    const id = made.body.id as string;
    expect((await api().post(`/webhook/${id}`, { enabled: false })).status).toBe(200);
    expect((await api().post(`/webhook/${id}/secret`)).status).toBe(200);
    expect((await api().delete(`/webhook/${id}`)).status).toBe(204);

    const tab = await run.open();
    const { page } = tab;
    await run.signIn(tab, admin);
    await page.goto('/admin/audit');
    const entries = page.getByRole('list', { name: 'Audit entries' });
    await entries.getByText(`root added the webhook ${url} for user.created and group.deleted.`).waitFor();
    await entries.getByText(`root changed the webhook ${id}’s enabled from “yes” to “no”.`).waitFor();
    await entries.getByText(`root made a new signing secret for the webhook ${id} (the old one signs too for 24 hours).`).waitFor();
    await entries.getByText(`root deleted the webhook to “${url}”.`).waitFor();
    expect(await entries.textContent()).not.toContain(made.body.secret.slice('whsec_'.length));
    await run.check(tab, 'admin-audit-webhooks');
    expectNoTrouble(tab.trouble);
  }, 120_000);

  it('tells a non-admin the webhooks pages are not theirs, without asking the API', async () => {
    const someone = await run.t.factory.user({ password: 'plain password 1' });
    const tab = await run.open();
    const calls: string[] = [];
    tab.page.on('request', (r) => {
      const path = new URL(r.url()).pathname;
      if (path.startsWith('/webhook')) calls.push(`${r.method()} ${path}`);
    });
    await run.signIn(tab, someone);
    expect(await tab.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks' }).count()).toBe(0);
    await tab.page.goto('/admin/webhooks');
    await tab.page.getByRole('heading', { name: 'Not allowed' }).waitFor();
    expect(calls).toEqual([]);
    expectNoTrouble(tab.trouble);
  });
});
