import fs from 'node:fs';
import path from 'node:path';
import { Secret, TOTP } from 'otpauth';
import { loadConfig } from '../../src/config';
import type { Container } from '../../src/container';
import { createLogger } from '../../src/logger';
import { openRuntime } from '../../src/runtime';
import { cliFixture } from '../helpers/cli';

/**
 * `accounts admin reset-mfa --user <id|email>`: the operator's reset of a user's two-factor
 * sign-in (a lost device), on the database as the other admin commands, through the MFA service
 * the API's `DELETE /user/{user}/factor` uses: the same transaction, audit entry and mail. On this
 * run's Postgres (a fresh database) or an embedded PGlite in a temporary DATA_DIR; mail as .eml
 * files.
 */
const fixture = cliFixture('accounts-cli-mfa-', (dir) => ({ MAIL_OUTBOX_DIR: path.join(dir, 'outbox') }));
const cli = fixture.run;
const withDb = fixture.withDb;

const ADA = { email: 'ada@example.test', name: 'ada', password: 'ada has a long password' };
const CLIENT = { ip: null, userAgent: 'test', requestId: null, actor: null };

/** The service, in this process, while the CLI is not running (the embedded database has one user at a time). */
async function withServices<T>(work: (c: Container) => Promise<T>): Promise<T> {
  const { database, container } = await openRuntime(loadConfig(fixture.env), createLogger('silent'));
  try {
    return await work(container);
  } finally {
    await database.close();
  }
}

function outboxMails(): string[] {
  const dir = path.join(fixture.dataDir, 'outbox');
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
}

const RESET_SUBJECT = 'Subject: Two-factor sign-in on your Accounts account was reset';

describe('accounts admin reset-mfa', () => {
  let secret: string;
  let recoveryCodes: string[];
  let adaId: string;

  beforeAll(async () => {
    const created = await cli(['admin', 'create-user', '--email', ADA.email, '--name', ADA.name, '--password-stdin'], `${ADA.password}\n`);
    expect(created.code).toBe(0);
    adaId = JSON.parse(created.out).id;
    // ada adds an authenticator app and confirms it, as through the API; she has another login
    // session and an API token besides.
    await withServices(async ({ services: { auth, mfa, tokens, users } }) => {
      const caller = await auth.authenticate((await auth.login({ email: ADA.email }, ADA.password, CLIENT)).jwt, CLIENT, 'bearer');
      const added = await mfa.enrol(caller, { type: 'totp', name: 'phone', currentPassword: ADA.password }, CLIENT);
      secret = added.secret;
      const totp = new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 });
      recoveryCodes = (await mfa.verify(caller, added.factor.id, { code: totp.generate() }, CLIENT)).recoveryCodes!;
      expect(recoveryCodes).toHaveLength(10);
      const second = await auth.login({ email: ADA.email }, ADA.password, CLIENT);
      expect(second.mfaRequired).toEqual([expect.objectContaining({ type: 'totp', name: 'phone' })]);
      await tokens.create(await users.target(ADA.email), { name: 'ci', scopes: ['api'] }, CLIENT);
    });
    const before = await withDb(async (k) => ({
      factors: await k('mfa_factors').where({ user_id: adaId }).count<{ count: string }[]>('* as count'),
      codes: await k('mfa_recovery_codes').where({ user_id: adaId }).count<{ count: string }[]>('* as count'),
      logins: await k('user_tokens').where({ user_id: adaId, kind: 'login' }).count<{ count: string }[]>('* as count'),
    }));
    expect(before).toEqual({ factors: [{ count: '1' }], codes: [{ count: '10' }], logins: [{ count: '2' }] });
  }, 120_000);

  it('removes every factor and recovery code, ends the login sessions (not the API tokens), audits it and mails the user', async () => {
    const res = await cli(['admin', 'reset-mfa', '--user', ADA.email]);
    expect(res).toMatchObject({ code: 0, err: '', out: `two-factor sign-in of ${ADA.email} reset: 1 factor (1 verified) and the recovery codes removed, login sessions ended\n` });

    const after = await withDb(async (k) => ({
      user: await k('users').where({ id: adaId }).first('mfa_enabled'),
      factors: await k('mfa_factors').where({ user_id: adaId }).select('id'),
      codes: await k('mfa_recovery_codes').where({ user_id: adaId }).select('id'),
      tokens: await k('user_tokens').where({ user_id: adaId }).orderBy('name').select('kind', 'name'),
      audit: await k('audit_log').where({ action: 'mfa.reset' }).select('actor_id', 'target_id', 'user_agent', 'ip', 'summary'),
    }));
    expect(after.user).toEqual({ mfa_enabled: false });
    expect(after.factors).toEqual([]);
    expect(after.codes).toEqual([]);
    expect(after.tokens).toEqual([{ kind: 'api', name: 'ci' }]);
    expect(after.audit).toEqual([{ actor_id: null, target_id: adaId, user_agent: 'accounts CLI', ip: null, summary: expect.objectContaining({ recovery_codes: 10, sessions_ended: 2 }) }]);

    // The mail went out before the command ended (no server runs meanwhile on the embedded database).
    const mails = outboxMails().filter((m) => m.includes(RESET_SUBJECT));
    expect(mails).toHaveLength(1);
    expect(mails[0]).toContain(`To: ${ADA.email}`);

    // Nothing secret in the answer, the entry or the mail.
    const said = [res.out, JSON.stringify(after.audit), mails[0]].join('\n');
    expect(said).not.toContain(secret);
    for (const code of recoveryCodes) expect(said).not.toContain(code);

    // The password alone signs her in again; the password is untouched.
    await withServices(async ({ services: { auth } }) => {
      const login = await auth.login({ email: ADA.email }, ADA.password, CLIENT);
      expect(login.mfaRequired).toBeUndefined();
    });
  }, 120_000);

  it('is idempotent: a user without two-factor sign-in is told so, with no mail and no audit entry', async () => {
    const mailsBefore = outboxMails().length;
    const res = await cli(['admin', 'reset-mfa', '--user', adaId]);
    expect(res).toMatchObject({ code: 0, err: '', out: `${ADA.email} has no two-factor sign-in: nothing to reset\n` });
    expect(outboxMails()).toHaveLength(mailsBefore);
    expect(await withDb((k) => k('audit_log').where({ action: 'mfa.reset' }).select('id'))).toHaveLength(1);
  }, 60_000);

  it('refuses an unknown user in one line (exit 1), and bad usage with the usage (exit 2)', async () => {
    const unknown = await cli(['admin', 'reset-mfa', '--user', 'nobody@example.test']);
    expect(unknown.code).toBe(1);
    expect(unknown.out).toBe('');
    expect(unknown.err).toMatch(/^accounts: [^\n]+\n$/);
    for (const [args, line] of [
      [['admin', 'reset-mfa'], 'accounts: reset-mfa needs --user'],
      [['admin', 'reset-mfa', '--user', 'not a user'], 'accounts: reset-mfa: --user "not a user" is neither a user id nor an email address'],
      [['admin', 'reset-mfa', '--user', ADA.email, '--all'], 'accounts: reset-mfa: unknown option --all'],
    ] as const) {
      const res = await cli([...args]);
      expect(res.code).toBe(2);
      expect(res.err.split('\n').slice(0, 3)).toEqual([line, '', expect.stringMatching(/^Usage: accounts <command> \[options\]/)]);
    }
  }, 60_000);

  it('is in --help', async () => {
    const res = await cli(['admin', 'reset-mfa', '--help']);
    expect(res.code).toBe(0);
    expect(res.out).toContain('reset-mfa --user <id|email>');
    expect(res.out).toContain('Remove every two-factor factor and recovery code of a user who lost their device');
  });
});
