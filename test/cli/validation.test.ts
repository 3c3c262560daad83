import { cliFixture } from '../helpers/cli';

/**
 * The CLI refuses what the API refuses (src/domain's rules, the spec's token name), before it
 * opens the database: one line naming the option and the value, the usage, exit status 2, and
 * nothing written. On this run's Postgres (a fresh database) or an embedded PGlite in a
 * temporary DATA_DIR.
 */
const fixture = cliFixture('accounts-cli-rules-');
const cli = fixture.run;

function users(): Promise<{ name: string; email: string }[]> {
  return fixture.withDb((knex) => knex('users').select('name', 'email').orderBy('name'));
}

/** A refusal for bad usage: exactly one line of error, then the usage; no stack, nothing on stdout. */
function expectUsageError(res: { code: number; out: string; err: string }, line: unknown): void {
  expect(res.code).toBe(2);
  expect(res.out).toBe('');
  const [first, blank, usage] = res.err.split('\n');
  expect(first).toEqual(line);
  expect(blank).toBe('');
  expect(usage).toMatch(/^Usage: accounts <command> \[options\]/);
  expect(res.err).not.toMatch(/\n\s+at /);
}

describe('the CLI applies the API rules', () => {
  beforeAll(async () => {
    expect((await cli(['migrate'])).code).toBe(0);
    expect((await cli(['create-user', '--email', 'ops@example.test', '--name', 'ops'])).code).toBe(0);
  }, 60_000);

  it.each([
    [['--email', 'not-an-email', '--name', 'ada'], 'accounts: create-user: --email "not-an-email" is not an email address'],
    [['--email', 'ada@example.test ', '--name', 'ada'], 'accounts: create-user: --email "ada@example.test " is not an email address'],
    [['--email', `${'a'.repeat(250)}@x.io`, '--name', 'ada'], `accounts: create-user: --email "${'a'.repeat(250)}@x.io" is not an email address`],
    [['--email', 'ada@example.test', '--name', ' ada'], 'accounts: create-user: --name " ada" is not a name (1 to 255 visible characters: no control, format or invisible characters, no white space but single inner spaces)'],
    [['--email', 'ada@example.test', '--name', 'ada '], 'accounts: create-user: --name "ada " is not a name (1 to 255 visible characters: no control, format or invisible characters, no white space but single inner spaces)'],
    [['--email', 'ada@example.test', '--name', ''], 'accounts: create-user: --name "" is not a name (1 to 255 visible characters: no control, format or invisible characters, no white space but single inner spaces)'],
    [['--email', 'ada@example.test', '--name', 'n'.repeat(256)], `accounts: create-user: --name "${'n'.repeat(256)}" is not a name (1 to 255 visible characters: no control, format or invisible characters, no white space but single inner spaces)`],
    [['--email', 'ada@example.test', '--name', 'me'], 'accounts: the name "me" is reserved'],
    [['--email', 'ada@example.test', '--name', 'ops\u200b'], 'accounts: create-user: --name "ops\u200b" is not a name (1 to 255 visible characters: no control, format or invisible characters, no white space but single inner spaces)'],
    [['--email', 'ada@example.test', '--name', 'o\u00adps'], 'accounts: create-user: --name "o\u00adps" is not a name (1 to 255 visible characters: no control, format or invisible characters, no white space but single inner spaces)'],
    [['--email', 'ada@example.test', '--name', '\u202eops'], 'accounts: create-user: --name "\u202eops" is not a name (1 to 255 visible characters: no control, format or invisible characters, no white space but single inner spaces)'],
  ])('create-user %j is refused, and no one is created', async (args, line) => {
    expectUsageError(await cli(['create-user', ...args]), line);
    expect((await users()).map((u) => u.name)).toEqual(['ops']);
  }, 60_000);

  it.each([['\u043eps'], ['\uff4f\uff50\uff53']])('refuses create-user --name %j, a lookalike of ops (exit 1), and no one is created', async (name) => {
    const res = await cli(['create-user', '--email', 'ada@example.test', '--name', name]);
    expect([res.code, res.out, res.err]).toEqual([1, '', 'accounts: a user with that name or email already exists\n']);
    expect((await users()).map((u) => u.name)).toEqual(['ops']);
  }, 60_000);

  it('creates a user with the same values once they follow the rules', async () => {
    const res = await cli(['create-user', '--email', 'ada@example.test', '--name', 'ada lovelace']);
    expect(res).toMatchObject({ code: 0, err: '' });
    expect(await users()).toEqual([
      { name: 'ada lovelace', email: 'ada@example.test' },
      { name: 'ops', email: 'ops@example.test' },
    ]);
  }, 60_000);

  it.each([
    [['--user', 'ops@example.test', '--name', 'x', '--scopes', 'api,root'], 'accounts: create-token: --scopes takes a comma-separated list of api, api:read, api:write (not "root")'],
    [['--user', 'ops@example.test', '--name', 'x', '--expires', '2027-02-30T00:00:00Z'], 'accounts: create-token: --expires "2027-02-30T00:00:00Z" is not an RFC 3339 time such as 2027-01-01T00:00:00Z'],
    [['--user', 'ops@example.test', '--name', 'x', '--expires', '2000-01-01T00:00:00Z'], expect.stringMatching(/^accounts: expires must be in the future and at most \d{4}-/)],
    [['--user', 'ops@example.test', '--name', 'tab\there'], 'accounts: create-token: --name "tab\\there" is not a token name (1 to 100 characters, no control characters)'],
    [['--user', 'ops@example.test', '--name', 't'.repeat(101)], `accounts: create-token: --name "${'t'.repeat(101)}" is not a token name (1 to 100 characters, no control characters)`],
    [['--user', 'ops@example.test', '--name', 'login_jwt_mine'], 'accounts: create-token: token names starting with login_jwt_ are reserved'],
    [['--user', 'ops', '--name', 'x'], 'accounts: create-token: --user "ops" is neither a user id nor an email address'],
    [['--email', 'ops', '--name', 'x'], 'accounts: create-token: --email "ops" is not an email address'],
    [['--user', 'ops@example.test', '--email', 'ops@example.test', '--name', 'x'], 'accounts: create-token: give --user or --email, not both'],
  ])('create-token %j is refused', async (args, line) => {
    expectUsageError(await cli(['create-token', ...args]), line);
  }, 60_000);

  it('takes a token name the API takes: a slash, spaces and an emoji', async () => {
    const res = await cli(['create-token', '--user', 'ops@example.test', '--name', 'laptop \u{1F4BB} / home']);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.out)).toMatchObject({ name: 'laptop \u{1F4BB} / home', scopes: ['api'] });
  }, 60_000);

  it('refuses a --user that is no identifier, for passwd and force-password-change', async () => {
    expectUsageError(await cli(['passwd', '--user', 'not an id'], 'a long enough password\n'), 'accounts: passwd: --user "not an id" is neither a user id nor an email address');
    expectUsageError(await cli(['force-password-change', '--user', 'ops']), 'accounts: force-password-change: --user "ops" is neither a user id nor an email address');
  }, 60_000);
});

describe('the CLI answers bad usage with one line and the usage', () => {
  it.each([
    [['create-user', '--email', 'a@example.test', '--name', 'a', '--frobnicate'], 'accounts: create-user: unknown option --frobnicate'],
    [['create-user', '--email', 'a@example.test', '--name', 'a', '--user', 'x'], 'accounts: create-user: unknown option --user'],
    [['create-user', '--email', 'a@example.test', '--name', 'a', '-x'], 'accounts: create-user: unknown option -x'],
    [['create-user', '--email', 'a@example.test', '--name', 'a', '--admin=yes'], 'accounts: create-user: --admin takes no value'],
    [['create-user', '--name', 'a', '--email'], 'accounts: create-user: --email needs a value'],
    [['create-user', '--name', 'a'], 'accounts: create-user needs --email'],
    [['create-user', 'ada', '--email', 'a@example.test', '--name', 'a'], 'accounts: create-user: unexpected argument "ada"'],
    [['migrate', '--force'], 'accounts: migrate: unknown option --force'],
    [['passwd'], 'accounts: passwd needs --user'],
    [['--email', 'a@example.test', 'create-user'], 'accounts: unknown option --email before the command (the command comes first)'],
    [['frobnicate'], 'accounts: unknown command frobnicate'],
    [[], 'accounts: no command given'],
  ])('%j', async (args, line) => {
    expectUsageError(await cli(args), line);
  }, 60_000);

  it('prints the usage on stdout for --help, with any command', async () => {
    for (const args of [['--help'], ['help'], ['create-user', '--help'], ['-h']]) {
      const res = await cli(args);
      expect(res).toMatchObject({ code: 0, err: '' });
      expect(res.out).toMatch(/^Usage: accounts <command> \[options\]/);
    }
  });

  it('answers an empty password on stdin as bad usage', async () => {
    expectUsageError(await cli(['passwd', '--user', 'ops@example.test'], '\n'), 'accounts: no password on standard input');
  }, 60_000);

  it('answers a refusal of the service (exit 1) with one line and no usage', async () => {
    const res = await cli(['force-password-change', '--user', 'nobody@example.test']);
    expect(res.code).toBe(1);
    expect(res.err).toMatch(/^accounts: [^\n]+\n$/);
  }, 60_000);
});
