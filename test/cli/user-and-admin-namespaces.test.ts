import { cliFixture } from '../helpers/cli';

/**
 * One bin, two namespaces: `accounts user <task>` (the user's client over HTTP) and
 * `accounts admin <command>` (the operator's, on the database), whose commands keep their old
 * spellings without `admin`. Run in-process (see cliFixture).
 */
const fixture = cliFixture('accounts-cli-namespaces-');
const cli = fixture.run;

describe('accounts admin <command>', () => {
  it('runs the operator commands, the same as their old spellings', async () => {
    expect((await cli(['admin', 'migrate'])).code).toBe(0);
    expect(await cli(['migrate'])).toMatchObject({ code: 0, out: 'already up to date\n' });
    const created = await cli(['admin', 'create-user', '--email', 'ops@example.test', '--name', 'ops', '--password-stdin'], 'ops has a long password\n');
    expect(created).toMatchObject({ code: 0, err: '' });
    expect(JSON.parse(created.out)).toMatchObject({ email: 'ops@example.test', name: 'ops' });
    const token = await cli(['admin', 'create-token', '--user', 'ops@example.test', '--name', 'deploy', '--scopes', 'api:read']);
    expect(JSON.parse(token.out)).toMatchObject({ name: 'deploy', scopes: ['api:read'] });
    expect(await cli(['admin', 'force-password-change', '--user', 'ops@example.test'])).toMatchObject({ code: 0, out: 'the user must change their password\n' });
    const rows = await fixture.withDb((k) => k('users').select('email', 'force_password_change'));
    expect(rows).toEqual([{ email: 'ops@example.test', force_password_change: true }]);
  }, 120_000);

  it('answers bad usage as before: one line, the usage, exit 2', async () => {
    for (const [args, line] of [
      [['admin'], 'accounts: no command given'],
      [['admin', 'frobnicate'], 'accounts: unknown command frobnicate'],
      [['admin', 'create-user', '--name', 'a'], 'accounts: create-user needs --email'],
    ] as const) {
      const res = await cli([...args]);
      expect(res.code).toBe(2);
      expect(res.err.split('\n').slice(0, 3)).toEqual([line, '', expect.stringMatching(/^Usage: accounts <command> \[options\]/)]);
    }
  }, 60_000);

  it('has --help, which names both namespaces', async () => {
    for (const args of [['admin', '--help'], ['admin', 'create-user', '--help'], ['--help']]) {
      const res = await cli(args);
      expect(res).toMatchObject({ code: 0, err: '' });
      expect(res.out).toMatch(/^Usage: accounts <command> \[options\]/);
      expect(res.out).toContain('accounts user <task>');
      expect(res.out).toContain('accounts admin <command>');
    }
  });
});

describe('accounts user <task>, in-process', () => {
  it('is routed to the user client: its help, and its one-line bad usage (no operator usage after it)', async () => {
    const help = await cli(['user', '--help']);
    expect(help).toMatchObject({ code: 0, err: '' });
    expect(help.out).toMatch(/^Usage: accounts user <task> \[options\]/);
    expect(await cli(['user', 'frobnicate'])).toMatchObject({ code: 2, out: '', err: 'accounts: user: unknown task frobnicate (accounts user --help lists them)\n' });
  });
});
