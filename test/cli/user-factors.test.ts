import { Secret, TOTP } from 'otpauth';
import { SoftAuthenticator } from '../helpers/soft-authenticator';
import { userCliFixture } from '../helpers/user-cli';

/**
 * `accounts user factor list` (issue 20): authenticator apps and passkeys among the factors, and
 * that they are added in the console; `accounts user auth` for an account whose only factor is a
 * passkey (the command line cannot use one: a recovery code serves). Against a real server whose
 * passkeys' relying party is `localhost` with the origin the software authenticator claims.
 */
const ORIGIN = 'http://localhost:3000';
const cli = userCliFixture('accounts-user-factors-', { WEBAUTHN_RP_ID: 'localhost', WEBAUTHN_ORIGINS: ORIGIN });

interface Account {
  email: string;
  password: string;
  /** A login token at aal2 (the session that confirmed the first factor). */
  token: string;
  recoveryCodes: string[];
}

async function account(name: string): Promise<{ email: string; password: string; token: string }> {
  const email = `${name}@example.test`;
  const password = `${name} has a long password`;
  await cli.account(name, email, password);
  return { email, password, token: await cli.login(email, password) };
}

/** Adds and confirms a passkey through the API, as the console does with a browser. */
async function addPasskey(u: { password: string; token: string }, name: string, authenticator: SoftAuthenticator): Promise<{ recoveryCodes?: string[] }> {
  const added = await cli.call('POST', '/user/me/factor', u.token, { type: 'webauthn', name, current_password: u.password });
  expect(added.status).toBe(201);
  const { id, options } = added.body as { id: string; options: Parameters<SoftAuthenticator['create']>[0] };
  const verified = await cli.call('POST', `/user/me/factor/${id}/verify`, u.token, { credential: authenticator.create(options) });
  expect(verified.status).toBe(200);
  return { recoveryCodes: (verified.body as { recovery_codes?: string[] }).recovery_codes };
}

async function addApp(u: { password: string; token: string }, name: string): Promise<void> {
  const added = await cli.call('POST', '/user/me/factor', u.token, { type: 'totp', name, current_password: u.password });
  expect(added.status).toBe(201);
  const { id, secret } = added.body as { id: string; secret: string };
  const code = new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 }).generate();
  expect((await cli.call('POST', `/user/me/factor/${id}/verify`, u.token, { code })).status).toBe(200);
}

/** Stores an API key for `u` with ACCOUNTS_KEY-free config: made with the aal2 session, given by env. */
async function apiKey(u: { token: string }): Promise<string> {
  const made = await cli.call('POST', '/user/me/token', u.token, { name: `cli-${Math.random().toString(36).slice(2)}`, scopes: ['api:read'] });
  expect(made.status).toBe(201);
  return (made.body as { token: string }).token;
}

describe('accounts user factor list', () => {
  let ada: Account;
  let key: string;
  beforeAll(async () => {
    const u = await account('ada');
    const { recoveryCodes } = await addPasskey(u, 'laptop passkey', new SoftAuthenticator({ rpId: 'localhost', origin: ORIGIN }));
    await addApp(u, 'phone');
    ada = { ...u, recoveryCodes: recoveryCodes! };
    key = await apiKey(ada);
  }, 60_000);

  it('lists passkeys and apps, confirmed, and says where they are added', async () => {
    const res = await cli.run(['user', 'factor', 'list'], { env: { ACCOUNTS_KEY: key } });
    expect(res).toMatchObject({ code: 0, err: '' });
    const lines = res.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TYPE +NAME +STATUS +ADDED +LAST USED$/);
    expect(lines[1]).toMatch(/^passkey +laptop passkey +confirmed +\d{4}-\d\d-\d\dT/);
    expect(lines[2]).toMatch(/^app +phone +confirmed +\d{4}-\d\d-\d\dT/);
    expect(lines[3]).toBe(`Authenticator apps and passkeys are added, renamed and removed in the web console at ${cli.url}/account/security.`);
    expect(lines).toHaveLength(4);
  }, 60_000);

  it('--json gives the API\'s list, no secret in it', async () => {
    const res = await cli.run(['user', 'factor', 'list', '--json'], { env: { ACCOUNTS_KEY: key } });
    expect(res.code).toBe(0);
    const list = JSON.parse(res.out) as Record<string, unknown>[];
    expect(list.map((f) => [f.type, f.name, f.verified])).toEqual([
      ['webauthn', 'laptop passkey', true],
      ['totp', 'phone', true],
    ]);
    for (const f of list) expect(Object.keys(f).sort()).toEqual(['created', 'id', 'last_used', 'name', 'type', 'verified']);
  }, 60_000);

  it('says how to add one when there is none', async () => {
    const bob = await account('bob');
    const res = await cli.run(['user', 'factor', 'list'], { env: { ACCOUNTS_KEY: await apiKey(bob) } });
    expect(res).toMatchObject({ code: 0, err: '', out: `No two-factor sign-in: add an authenticator app or a passkey in the web console at ${cli.url}/account/security.\n` });
  }, 60_000);

  it('--help tells that passkeys are added in the console', async () => {
    const res = await cli.run(['user', 'factor', 'list', '--help']);
    expect(res).toMatchObject({ code: 0, err: '' });
    expect(res.out).toContain('added, renamed and removed in the web console');
    expect((await cli.run(['user', '--help'])).out).toContain('factor list');
  }, 60_000);
});

describe('accounts user auth for an account whose only factor is a passkey', () => {
  let cy: Account;
  beforeAll(async () => {
    const u = await account('cy');
    const { recoveryCodes } = await addPasskey(u, 'phone passkey', new SoftAuthenticator({ rpId: 'localhost', origin: ORIGIN }));
    cy = { ...u, recoveryCodes: recoveryCodes! };
  }, 60_000);

  it('without a terminal and --otp, says to give a recovery code (exit 2)', async () => {
    const res = await cli.run(['user', 'auth', '--email', cy.email], { config: cli.configHome(), stdin: `${cy.password}\n\n` });
    expect(res).toMatchObject({ code: 2, out: '', err: `accounts: ${cy.email} signs in with a passkey, which the command line cannot use: give one of your recovery codes with --otp CODE\n` });
  }, 60_000);

  it('on a terminal asks for a recovery code, and signs in with one', async () => {
    const res = await cli.runTty(
      ['user', 'auth', '--email', cy.email, '--key-name', 'tty'],
      [
        ['Password: ', `${cy.password}\r`],
        ['(empty: unencrypted): ', '\r'],
        ['(again): ', '\r'],
        ['Recovery code: ', `${cy.recoveryCodes[0]}\r`],
      ],
      { config: cli.configHome() },
    );
    expect(res.out).toContain('signs in with a passkey, which the command line cannot use: give one of your recovery codes.');
    expect(res.unanswered).toBe(0);
    expect(res.out).toContain('Authenticated as cy <cy@example.test>: key "tty"');
    expect(res.code).toBe(0);
  }, 60_000);
});
