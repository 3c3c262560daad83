import { WEBHOOK_EVENT_TYPES } from '../../src/domain/webhook-events';
import { cliFixture, type CliRun } from '../helpers/cli';

/**
 * `accounts admin webhook list|add|remove|test`: the operator's webhooks (API.md §2.9), through the
 * service the API's `/webhook` routes use (the same URL rule, audit entries and refusals). Each
 * command runs as its own process, as an operator runs it; on this run's Postgres (a fresh
 * database) or an embedded PGlite in a temporary DATA_DIR.
 */
const fixture = cliFixture('accounts-cli-webhook-');
const withDb = fixture.withDb;
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => fixture.spawn(['admin', 'webhook', ...args], '', env);
/** What local development relaxes: http, and hosts on private addresses. */
const RELAXED = { WEBHOOK_ALLOW_HTTP: '1', WEBHOOK_ALLOW_PRIVATE: '1' };
/** A public address, so no name is resolved. */
const PUBLIC = 'https://93.184.215.14/hooks/accounts';

/** A refusal for bad usage: one line, the usage after it, exit status 2, nothing on stdout. */
function expectUsageError(res: CliRun, line: string): void {
  expect(res.out).toBe('');
  const [first, blank, usage] = res.err.split('\n');
  expect({ code: res.code, first, blank }).toEqual({ code: 2, first: line, blank: '' });
  expect(usage).toMatch(/^Usage: accounts <command> \[options\]/);
}

const rows = () => withDb((k) => k('webhooks').orderBy('created').select('id', 'url', 'events', 'description', 'enabled', 'secret'));

describe('accounts admin webhook', () => {
  let billing: { id: string; secret: string };

  it('add prints the new endpoint with its secret, the only time it is shown; the secret is stored sealed and audited never', async () => {
    const res = await cli(['add', PUBLIC, '--events', 'user.created,group.deleted,user.created', '--description', 'The billing system']);
    expect({ code: res.code, err: res.err }).toEqual({ code: 0, err: '' });
    expect(res.out.endsWith('\n') && res.out.split('\n')).toHaveLength(2);
    const out = JSON.parse(res.out);
    expect(out).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), url: PUBLIC, events: ['user.created', 'group.deleted'], enabled: true, secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]{43}=$/) });
    billing = out;

    const [row] = await rows();
    expect(row).toMatchObject({ id: out.id, url: PUBLIC, events: ['user.created', 'group.deleted'], description: 'The billing system', enabled: true });
    expect(row.secret).not.toContain(out.secret.slice('whsec_'.length));
    const audit = await withDb((k) => k('audit_log').where({ action: 'webhook.created' }).select('actor_id', 'user_agent', 'summary'));
    expect(audit).toEqual([{ actor_id: null, user_agent: 'accounts CLI', summary: { webhook: out.id, url: PUBLIC, events: ['user.created', 'group.deleted'], enabled: true } }]);
  }, 60_000);

  it('add takes every event type (*), and a local http receiver when the relaxing flags are set', async () => {
    const all = await cli(['add', 'https://93.184.215.14/all', '--events', '*']);
    expect(all.code).toBe(0);
    expect(JSON.parse(all.out)).toMatchObject({ events: ['*'] });
    const local = await cli(['add', 'http://127.0.0.1:9/hook', '--events', 'webhook.test'], RELAXED);
    expect({ code: local.code, err: local.err }).toEqual({ code: 0, err: '' });
    expect(JSON.parse(local.out)).toMatchObject({ url: 'http://127.0.0.1:9/hook', events: ['webhook.test'] });
  }, 60_000);

  it('list shows a table: id, url, events, enabled and why the service disabled one', async () => {
    const gone = (await rows())[1];
    await withDb((k) => k('webhooks').where({ id: gone.id }).update({ enabled: false, disabled_reason: 'the endpoint answered 410 Gone' }));
    const res = await cli(['list']);
    expect({ code: res.code, err: res.err }).toEqual({ code: 0, err: '' });
    const ids = (await rows()).map((r) => r.id);
    const lines = res.out.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((l) => l.split(/ {2,}/))).toEqual([
      ['id', 'url', 'events', 'enabled', 'disabled_reason'],
      [ids[0], PUBLIC, 'user.created,group.deleted', 'yes', '-'],
      [ids[1], 'https://93.184.215.14/all', '*', 'no', 'the endpoint answered 410 Gone'],
      [ids[2], 'http://127.0.0.1:9/hook', 'webhook.test', 'yes', '-'],
    ]);
    // The columns line up: each starts where its heading does.
    const at = (l: string, cell: string) => l.indexOf(cell);
    expect(new Set(lines.slice(1).map((l, i) => at(l, ['user.created,group.deleted', '*', 'webhook.test'][i])))).toEqual(new Set([at(lines[0], 'events')]));
  }, 60_000);

  it('test queues a webhook.test event for that endpoint alone', async () => {
    const res = await cli(['test', billing.id.toUpperCase()]);
    expect({ code: res.code, err: res.err }).toEqual({ code: 0, err: '' });
    const deliveries = await withDb((k) => k('webhook_deliveries').select('id', 'webhook_id', 'type', 'status', 'attempts', 'body'));
    expect(deliveries).toEqual([{ id: expect.any(String), webhook_id: billing.id, type: 'webhook.test', status: 'pending', attempts: 0, body: expect.any(String) }]);
    expect(JSON.parse(deliveries[0].body)).toMatchObject({ type: 'webhook.test', data: { webhook: { id: billing.id } } });
    expect(res.out).toBe(`queued a webhook.test event for ${PUBLIC} (delivery ${deliveries[0].id}); a running service sends it\n`);

    // A disabled endpoint (the list's second) gets it too, sent once it is enabled again.
    const disabled = (await rows())[1];
    const queued = await cli(['test', disabled.id]);
    const [waiting] = await withDb((k) => k('webhook_deliveries').where({ webhook_id: disabled.id }).select('id', 'type', 'status'));
    expect(waiting).toMatchObject({ type: 'webhook.test', status: 'pending' });
    expect(queued).toEqual({ code: 0, err: '', out: `queued a webhook.test event for https://93.184.215.14/all (delivery ${waiting.id}); the endpoint is disabled: it is sent once it is enabled again\n` });
  }, 60_000);

  it('remove deletes the endpoint and its deliveries, audited', async () => {
    const res = await cli(['remove', billing.id]);
    expect(res).toEqual({ code: 0, err: '', out: `removed webhook ${billing.id} (${PUBLIC}) and its deliveries\n` });
    expect((await rows()).map((r) => r.id)).not.toContain(billing.id);
    expect(await withDb((k) => k('webhook_deliveries').where({ webhook_id: billing.id }).select('id'))).toEqual([]);
    expect(await withDb((k) => k('audit_log').where({ action: 'webhook.deleted' }).select('summary'))).toEqual([{ summary: { webhook: billing.id, url: PUBLIC } }]);
    expect((await cli(['list'])).out).not.toContain(billing.id);
  }, 60_000);

  it('refuses an unknown endpoint: one line, exit status 1', async () => {
    for (const task of ['remove', 'test']) {
      expect(await cli([task, billing.id])).toEqual({ code: 1, out: '', err: 'accounts: webhook not found\n' });
    }
  }, 60_000);

  it.each([
    [['add', 'http://93.184.215.14/hook', '--events', '*'], 'accounts: url: must be https'],
    [['add', 'https://127.0.0.1/hook', '--events', '*'], 'accounts: url: must name a public host (127.0.0.1 is a loopback address)'],
    [['add', 'https://169.254.169.254/latest', '--events', '*'], 'accounts: url: must name a public host (169.254.169.254 is a linkLocal address)'],
    [['add', 'https://ops:pw@93.184.215.14/hook', '--events', '*'], 'accounts: url: must not hold credentials'],
    [['add', 'not a url', '--events', '*'], 'accounts: url: is not an absolute URL'],
  ])('refuses what the API refuses, by the service’s URL rule: %j, exit status 2, nothing added', async (args, line) => {
    const before = await rows();
    expectUsageError(await cli(args), line);
    expect(await rows()).toEqual(before);
  }, 60_000);

  it.each([
    [['add', PUBLIC], 'accounts: webhook add needs --events'],
    [['add', '--events', '*'], 'accounts: webhook add needs the URL to post the events to'],
    [['add', PUBLIC, '--events', 'user.created,login.failed'], `accounts: webhook add: --events takes * or a comma-separated list of event types (not "login.failed"): ${WEBHOOK_EVENT_TYPES.join(', ')}`],
    [['add', PUBLIC, '--events', '*,user.created'], `accounts: webhook add: --events takes * or a comma-separated list of event types (not "*"): ${WEBHOOK_EVENT_TYPES.join(', ')}`],
    [['add', PUBLIC, '--events', '*', '--description', 'd'.repeat(1001)], 'accounts: webhook add: --description is longer than 1000 characters'],
    [['add', `https://93.184.215.14/${'p'.repeat(2048)}`, '--events', '*'], 'accounts: webhook add: the URL is longer than 2048 characters'],
    [['add', PUBLIC, 'extra', '--events', '*'], 'accounts: webhook add: unexpected argument "extra"'],
    [['remove'], 'accounts: webhook remove needs the ID of a webhook (webhook list shows them)'],
    [['test', 'billing'], 'accounts: webhook test: "billing" is not a webhook id (webhook list shows them)'],
    [['list', '--events', '*'], 'accounts: webhook list: --events goes with webhook add'],
    [['list', 'all'], 'accounts: webhook list: unexpected argument "all"'],
    [['enable'], 'accounts: webhook: unknown task "enable" (list, add, remove or test)'],
    [[], 'accounts: webhook needs list, add, remove or test'],
    [['add', PUBLIC, '--event', '*'], 'accounts: webhook: unknown option --event'],
  ])('refuses bad usage before it opens the database: %j', async (args, line) => {
    // An unreachable database: a refusal that opened it would say so instead.
    expectUsageError(await cli(args, { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' }), line);
  }, 60_000);

  it('is in the usage', async () => {
    const res = await fixture.run(['admin', '--help']);
    expect(res.out).toContain('  webhook add URL --events TYPE,TYPE|* [--description TEXT]\n');
    for (const task of ['list', 'remove ID', 'test ID']) expect(res.out).toContain(`  webhook ${task}\n`);
  });
});
