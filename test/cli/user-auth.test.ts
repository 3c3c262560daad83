import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { openKey, type KeyEntry } from '../../src/cli/user/key-store';
import { STACK, userCliFixture } from '../helpers/user-cli';

/**
 * `accounts user auth`, `whoami` and `deauth` without a terminal: answers on standard input, one
 * line each, against a real server (see userCliFixture).
 */
const cli = userCliFixture('accounts-user-auth-');

const ADA = { name: 'ada', email: 'ada@example.test', password: 'ada has a long password' };

function storedEntry(config: string): KeyEntry {
  const file = JSON.parse(fs.readFileSync(cli.keyFile(config), 'utf8')) as { keys: Record<string, KeyEntry> };
  return file.keys[cli.url];
}

/** auth as ada into a fresh config directory, with `localPassword` ('' for none). */
async function authAda(localPassword: string, extra: string[] = []): Promise<{ config: string; res: Awaited<ReturnType<typeof cli.run>> }> {
  const config = cli.configHome();
  const res = await cli.run(['user', 'auth', '--email', ADA.email, ...extra], { config, stdin: `${ADA.password}\n${localPassword}\n` });
  return { config, res };
}

beforeAll(async () => {
  await cli.account(ADA.name, ADA.email, ADA.password);
}, 60_000);

describe('accounts user auth', () => {
  it('stores an encrypted key (no token in clear, mode 0600) and ends the login session it used', async () => {
    const { config, res } = await authAda('local secret', ['--key-name', 'laptop']);
    expect(res.err).toBe('');
    expect(res.code).toBe(0);
    expect(res.out).toBe(`Authenticated as ada <ada@example.test>: key "laptop" (api) stored for ${cli.url} in ${cli.keyFile(config)}.\n`);

    const file = cli.keyFile(config);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(`${config}/accounts`).mode & 0o777).toBe(0o700);
    const entry = storedEntry(config);
    expect(entry).toMatchObject({ key_name: 'laptop', user: ADA.email, sealed: { cipher: 'aes-256-gcm', kdf: 'scrypt' } });
    expect(entry.token).toBeUndefined();
    const text = fs.readFileSync(file, 'utf8');
    expect(text).not.toMatch(/eyJ/); // no JWT, nor any of its parts
    // The sealed key opens with the local password, and is a key the server takes.
    const token = await openKey(entry.sealed!, 'local secret', `accounts CLI key for ${cli.url}, named laptop`, cli.url);
    for (const part of token.split('.')) expect(text).not.toContain(part);
    const me = await cli.call('GET', '/user/me', token);
    expect(me).toMatchObject({ status: 200, body: { email: ADA.email } });

    // The key has the scope api, and the login that made it is over: ada has no live session.
    expect((await cli.call('GET', '/user/me/token', token)).body).toEqual([expect.objectContaining({ name: 'laptop', scopes: ['api'] })]);
    expect((await cli.call('GET', '/user/me/session', token)).body).toEqual([]);
  }, 120_000);

  it('names the key after this host by default, then host-2 when that is taken', async () => {
    const first = await authAda('pw one');
    expect(first.res.code).toBe(0);
    expect(storedEntry(first.config).key_name).toBe(os.hostname());
    const second = await authAda('pw two');
    expect(second.res.code).toBe(0);
    expect(storedEntry(second.config).key_name).toBe(`${os.hostname()}-2`);
  }, 120_000);

  it('stores the key unencrypted for an empty local password, with a warning on stderr', async () => {
    const { config, res } = await authAda('', ['--key-name', 'ci box']);
    expect(res.code).toBe(0);
    expect(res.err).toBe(`accounts: warning: the key is stored unencrypted in ${cli.keyFile(config)}: whoever can read that file can use it\n`);
    const entry = storedEntry(config);
    expect(entry.sealed).toBeUndefined();
    expect((await cli.call('GET', '/user/me', entry.token!)).status).toBe(200);
    // No local password is asked for then: whoami runs with nothing on stdin.
    const who = await cli.run(['user', 'whoami'], { config });
    expect(who).toMatchObject({ code: 0, out: 'ada <ada@example.test>\n', err: '' });
  }, 120_000);

  it('refuses a wrong password with the API error and code, and stores nothing', async () => {
    const config = cli.configHome();
    const res = await cli.run(['user', 'auth', '--email', ADA.email], { config, stdin: 'not her password\nlocal\n' });
    expect(res).toMatchObject({ code: 1, out: '' });
    expect(res.err).toMatch(/^accounts: [^\n]+ \(unauthenticated\)\n$/);
    expect(fs.existsSync(cli.keyFile(config))).toBe(false);
  }, 60_000);

  it('is bad usage (exit 2, one line) when standard input lacks an answer, and asks the server nothing', async () => {
    const config = cli.configHome();
    const noEmail = await cli.run(['user', 'auth'], { config });
    expect(noEmail).toMatchObject({ code: 2, out: '', err: 'accounts: no email on standard input (one line per answer)\n' });
    const noLocal = await cli.run(['user', 'auth', '--email', ADA.email], { config, stdin: `${ADA.password}\n` });
    expect(noLocal).toMatchObject({ code: 2, out: '', err: 'accounts: no local password on standard input (one line per answer)\n' });
    expect(fs.existsSync(cli.keyFile(config))).toBe(false);
  }, 60_000);
});

describe('accounts user whoami', () => {
  let config: string;
  beforeAll(async () => {
    ({ config } = await authAda('local secret', ['--key-name', 'whoami']));
  }, 60_000);

  it('prints the user of the stored key, asking for the local password', async () => {
    const res = await cli.run(['user', 'whoami'], { config, stdin: 'local secret\n' });
    expect(res).toMatchObject({ code: 0, out: 'ada <ada@example.test>\n', err: '' });
    const json = await cli.run(['user', 'whoami', '--json'], { config, stdin: 'local secret\n' });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({ name: 'ada', email: ADA.email, is_admin: false });
  }, 60_000);

  it('uses ACCOUNTS_KEY instead, with no stored key and nothing asked', async () => {
    const token = JSON.parse((await cli.run(['user', 'key', 'generate', '--key-name', 'for env', '--permission', 'api:read', '--json'], { config, stdin: 'local secret\n' })).out).token;
    const res = await cli.run(['user', 'whoami'], { config: cli.configHome(), env: { ACCOUNTS_KEY: token } });
    expect(res).toMatchObject({ code: 0, out: 'ada <ada@example.test>\n', err: '' });
  }, 60_000);

  it('refuses a wrong local password in one line, without a stack trace', async () => {
    const res = await cli.run(['user', 'whoami'], { config, stdin: 'not the local secret\n' });
    expect(res).toMatchObject({ code: 1, out: '', err: `accounts: wrong local password for the key stored for ${cli.url}\n` });
    expect(res.err).not.toMatch(STACK);
  }, 60_000);

  it('says there is no key, in one line, when none is stored', async () => {
    const res = await cli.run(['user', 'whoami'], { config: cli.configHome() });
    expect(res).toMatchObject({ code: 1, out: '', err: `accounts: no key stored for ${cli.url}: run \`accounts user auth\` (or set ACCOUNTS_KEY)\n` });
  }, 60_000);

  it('answers a server that is down with one line, exit 1', async () => {
    // A port that was free a moment ago: nothing listens there.
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const res = await cli.run(['user', 'whoami', '--url', `http://127.0.0.1:${port}`], { config, env: { ACCOUNTS_KEY: 'whatever' } });
    expect(res).toMatchObject({ code: 1, out: '', err: `accounts: cannot reach http://127.0.0.1:${port} (connection refused)\n` });
  }, 60_000);
});

describe('accounts user deauth', () => {
  it('removes the stored key from this machine; it still works on the server', async () => {
    const { config } = await authAda('', ['--key-name', 'deauth plain']);
    const token = storedEntry(config).token!;
    const res = await cli.run(['user', 'deauth'], { config });
    expect(res.code).toBe(0);
    expect(res.out).toMatch(/^Key "deauth plain" removed from this machine/);
    expect(storedEntry(config)).toBeUndefined();
    expect((await cli.call('GET', '/user/me', token)).status).toBe(200);
    expect((await cli.run(['user', 'deauth'], { config })).err).toBe(`accounts: no key stored for ${cli.url}\n`);
  }, 60_000);

  it('with --revoke deletes it on the server too: refused from the next request on', async () => {
    const { config } = await authAda('local secret', ['--key-name', 'deauth revoke']);
    const token = await openKey(storedEntry(config).sealed!, 'local secret', `accounts CLI key for ${cli.url}, named deauth revoke`, cli.url);
    const res = await cli.run(['user', 'deauth', '--revoke'], { config, stdin: 'local secret\n' });
    expect(res).toMatchObject({ code: 0, err: '' });
    expect(res.out).toBe(`Key "deauth revoke" deleted on ${cli.url} and removed from this machine.\n`);
    expect(storedEntry(config)).toBeUndefined();
    expect((await cli.call('GET', '/user/me', token)).status).toBe(401);
  }, 60_000);
});

describe('accounts user: bad usage', () => {
  it.each([
    [['user'], 'accounts: user: no task given (accounts user --help lists them)'],
    [['user', 'frobnicate'], 'accounts: user: unknown task frobnicate (accounts user --help lists them)'],
    [['user', 'whoami', '--frobnicate'], 'accounts: user whoami: unknown option --frobnicate'],
    [['user', 'whoami', 'extra'], 'accounts: user whoami: unexpected argument "extra"'],
    [['user', 'auth', '--email', 'not-an-email'], 'accounts: user auth: --email "not-an-email" is not an email address'],
    [['user', 'key'], 'accounts: user key: give one of generate, list, revoke'],
    [['user', 'key', 'generate', '--permission', 'root'], 'accounts: user key generate: --permission is one of api, api:read, api:write (not "root")'],
    [['user', 'key', 'revoke'], 'accounts: user key revoke: give the KEY_NAME to delete, or --all'],
    [['user', 'key', 'revoke', 'x', '--all'], 'accounts: user key revoke: give KEY_NAME or --all, not both'],
    [['user', 'whoami', '--url', 'ftp://example.test'], 'accounts: user: --url "ftp://example.test" is not an http or https URL'],
  ])('%j is one line, exit 2', async (args, line) => {
    const res = await cli.run(args, { config: cli.configHome() });
    expect(res).toMatchObject({ code: 2, out: '', err: `${line}\n` });
  }, 60_000);

  it('has --help at every level', async () => {
    const top = await cli.run(['--help']);
    expect(top).toMatchObject({ code: 0, err: '' });
    expect(top.out).toMatch(/^Usage: accounts <command> \[options\]/);
    expect(top.out).toContain('accounts user <task>');
    for (const [args, first] of [
      [['user', '--help'], 'Usage: accounts user <task> [options]'],
      [['user', 'auth', '--help'], 'Usage: accounts user auth [--key-name NAME] [--email EMAIL] [--otp CODE] [--url URL]'],
      [['user', 'key', '--help'], 'Usage: accounts user key generate [--key-name NAME] [--permission P ...] [--json] [--url URL]'],
      [['user', 'key', 'list', '-h'], 'Usage: accounts user key list [--json] [--url URL]'],
      [['user', 'reset_password', 'local', '--help'], 'Usage: accounts user reset_password local [--url URL]'],
    ] as const) {
      const res = await cli.run([...args]);
      expect(res).toMatchObject({ code: 0, err: '' });
      expect(res.out.split('\n')[0]).toBe(first);
    }
  }, 120_000);
});
