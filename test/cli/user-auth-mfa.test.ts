import fs from 'node:fs';
import path from 'node:path';
import { Secret, TOTP } from 'otpauth';
import YAML from 'yaml';
import type { KeyEntry } from '../../src/cli/user/key-store';
import { MFA_CODE_MAX_LENGTH, MFA_CODE_PATTERN } from '../../src/cli/user/parse-user-task';
import { STACK, userCliFixture } from '../helpers/user-cli';

/**
 * `accounts user auth` for an account with two-factor sign-in (issue 19): the code from --otp, or
 * asked for on a terminal (inside `script`), never read from a pipe; wrong, used and throttled
 * codes; an admin who must enrol first. Against a real server (see userCliFixture) that requires
 * MFA of its admins, whose admin has none.
 */
const ADMIN = { email: 'root@example.test', password: 'root has a long password' };
const cli = userCliFixture('accounts-user-mfa-', { REQUIRE_MFA_FOR_ADMINS: '1', ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password });

interface MfaUser {
  name: string;
  email: string;
  password: string;
  totp: TOTP;
  recoveryCodes: string[];
  /** An API token of the user's, made at aal2 before the tests: it reads their sessions. */
  probe: string;
}

/** A verified account with an authenticator app (enrolled and confirmed through the API) and its recovery codes. */
async function mfaUser(name: string): Promise<MfaUser> {
  const email = `${name}@example.test`;
  const password = `${name} has a long password`;
  await cli.account(name, email, password);
  const token = await cli.login(email, password);
  const added = await cli.call('POST', '/user/me/factor', token, { type: 'totp', name: 'phone', current_password: password });
  expect(added.status).toBe(201);
  const { id, secret } = added.body as { id: string; secret: string };
  const totp = new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 });
  const verified = await cli.call('POST', `/user/me/factor/${id}/verify`, token, { code: totp.generate() });
  expect(verified.status).toBe(200);
  const recoveryCodes = (verified.body as { recovery_codes: string[] }).recovery_codes;
  expect(recoveryCodes).toHaveLength(10);
  const probe = await cli.call('POST', '/user/me/token', token, { name: 'probe', scopes: ['api:read'] });
  expect(probe.status).toBe(201);
  expect((await cli.call('POST', '/logout', token)).status).toBe(204);
  return { name, email, password, totp, recoveryCodes, probe: (probe.body as { token: string }).token };
}

/**
 * The app's code for the next 30 s step: the enrolment used this one (a code of a step already
 * accepted never is again), and the server takes the step after the current one too.
 */
function nextCode(u: MfaUser): string {
  return u.totp.generate({ timestamp: Date.now() + 30_000 });
}

/** A well-formed code that is none of those the server would take now. */
function wrongCode(u: MfaUser): string {
  const near = new Set([-60_000, -30_000, 0, 30_000, 60_000].map((d) => u.totp.generate({ timestamp: Date.now() + d })));
  for (let n = 0; ; n++) {
    const code = String(n).padStart(6, '0');
    if (!near.has(code)) return code;
  }
}

function storedEntry(config: string): KeyEntry | undefined {
  const file = cli.keyFile(config);
  if (!fs.existsSync(file)) return undefined;
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { keys: Record<string, KeyEntry> }).keys[cli.url];
}

/** The user's live login sessions, read with their API token. */
async function sessions(u: MfaUser): Promise<unknown[]> {
  const res = await cli.call('GET', '/user/me/session', u.probe);
  expect(res.status).toBe(200);
  return res.body as unknown[];
}

describe('the code the CLI checks is the one the API takes', () => {
  it('matches the spec\'s MfaCode schema', () => {
    const spec = YAML.parse(fs.readFileSync(path.join(__dirname, '../../openapi.yaml'), 'utf8'));
    const schema = spec.components.schemas.MfaCode.properties.code;
    expect(MFA_CODE_PATTERN.source).toBe(schema.pattern);
    expect(MFA_CODE_MAX_LENGTH).toBe(schema.maxLength);
  });
});

describe('the help', () => {
  it('tells of the two-factor code (auth) and of where keys of such an account come from (key generate)', async () => {
    const auth = await cli.run(['user', 'auth', '--help']);
    expect(auth).toMatchObject({ code: 0, err: '' });
    expect(auth.out).toContain('asks for a "Two-factor code:"');
    expect(auth.out).toContain('--otp CODE gives it instead');
    const generate = await cli.run(['user', 'key', 'generate', '--help']);
    expect(generate.out).toContain('An account with two-factor sign-in makes keys only from a sign-in with the code');
  }, 60_000);
});

describe('accounts user auth with two-factor sign-in, without a terminal', () => {
  let ada: MfaUser;
  beforeAll(async () => {
    ada = await mfaUser('ada');
  }, 60_000);

  it('takes the app\'s code from --otp, stores a working key and leaves no login session', async () => {
    const config = cli.configHome();
    const res = await cli.run(['user', 'auth', '--email', ada.email, '--key-name', 'laptop', '--otp', nextCode(ada)], { config, stdin: `${ada.password}\n\n` });
    expect(res.err).toBe(`accounts: warning: the key is stored unencrypted in ${cli.keyFile(config)}: whoever can read that file can use it\n`);
    expect(res).toMatchObject({ code: 0, out: `Authenticated as ada <ada@example.test>: key "laptop" (api) stored for ${cli.url} in ${cli.keyFile(config)}.\n` });
    const token = storedEntry(config)!.token!;
    expect(await cli.call('GET', '/user/me', token)).toMatchObject({ status: 200, body: { email: ada.email, mfa_enabled: true } });
    expect(((await cli.call('GET', '/user/me/token', token)).body as { name: string }[]).map((t) => t.name).sort()).toEqual(['laptop', 'probe']);
    // The pending (aal1) token was swapped for an aal2 one, which made the key and was logged out.
    expect(await sessions(ada)).toEqual([]);
  }, 60_000);

  it('takes a recovery code (case, spaces and hyphens as typed), once: the user is mailed, a second use is refused', async () => {
    const code = ada.recoveryCodes[0];
    const typed = ` ${code.toUpperCase().replace(/-/g, ' ')} `;
    const config = cli.configHome();
    const res = await cli.run(['user', 'auth', '--email', ada.email, '--key-name', 'recovered', `--otp=${typed}`], { config, stdin: `${ada.password}\nlocal\n` });
    expect(res).toMatchObject({ code: 0, err: '' });
    expect(storedEntry(config)).toMatchObject({ key_name: 'recovered', sealed: { cipher: 'aes-256-gcm' } });
    const [mailed] = await cli.mail.waitFor((m) => m.to.includes(ada.email) && /recovery code/i.test(m.subject), 1, 15_000);
    expect(mailed.text).toMatch(/\b9\b/); // how many are left
    expect(mailed.text).not.toContain(code);

    const again = cli.configHome();
    const reused = await cli.run(['user', 'auth', '--email', ada.email, '--otp', code], { config: again, stdin: `${ada.password}\nlocal\n` });
    expect(reused).toMatchObject({ code: 1, out: '', err: 'accounts: wrong two-factor code, or one already used: run auth again with a new code (mfa_failed)\n' });
    expect(storedEntry(again)).toBeUndefined();
    expect(await sessions(ada)).toEqual([]); // the pending login ended too
  }, 60_000);

  it('key generate with the stored key says that a new key needs a sign-in with the code (mfa_required)', async () => {
    const config = cli.configHome();
    const auth = await cli.run(['user', 'auth', '--email', ada.email, '--key-name', 'stored', '--otp', ada.recoveryCodes[1]], { config, stdin: `${ada.password}\n\n` });
    expect(auth.code).toBe(0);
    const res = await cli.run(['user', 'key', 'generate', '--key-name', 'another'], { config });
    expect(res).toMatchObject({
      code: 1,
      out: '',
      err: `accounts: ${ada.email} has two-factor sign-in: a new key needs a sign-in with the code, not a key; \`accounts user auth --key-name NAME\` makes one and stores it (mfa_required)\n`,
    });
    // The key itself still reads and deletes keys: API tokens are not affected by MFA.
    const list = await cli.run(['user', 'key', 'list', '--json'], { config });
    expect(list.code).toBe(0);
    expect((JSON.parse(list.out) as { name: string }[]).map((k) => k.name)).not.toContain('another');
  }, 60_000);

  it('refuses a wrong code in one line, exit 1, storing nothing', async () => {
    const config = cli.configHome();
    const res = await cli.run(['user', 'auth', '--email', ada.email, '--otp', wrongCode(ada)], { config, stdin: `${ada.password}\nlocal\n` });
    expect(res).toMatchObject({ code: 1, out: '', err: 'accounts: wrong two-factor code, or one already used: run auth again with a new code (mfa_failed)\n' });
    expect(res.err).not.toMatch(STACK);
    expect(storedEntry(config)).toBeUndefined();
    expect(await sessions(ada)).toEqual([]);
  }, 60_000);

  it('without --otp is bad usage (exit 2, one line): the code is never read from a pipe; the pending login is ended', async () => {
    const config = cli.configHome();
    const res = await cli.run(['user', 'auth', '--email', ada.email], { config, stdin: `${ada.password}\nlocal\n${nextCode(ada)}\n` });
    expect(res).toMatchObject({ code: 2, out: '', err: 'accounts: ada@example.test has two-factor sign-in: give the code with --otp CODE (it is asked for on a terminal only)\n' });
    expect(storedEntry(config)).toBeUndefined();
    expect(await sessions(ada)).toEqual([]);
  }, 60_000);

  it('refuses an --otp of neither shape before asking anything (exit 2)', async () => {
    for (const bad of ['12345', '1234567', 'abc', `${'1'.repeat(40)}`, '12345 6']) {
      const res = await cli.run(['user', 'auth', '--email', ada.email, '--otp', bad], { config: cli.configHome() });
      expect(res).toMatchObject({
        code: 2,
        out: '',
        err: 'accounts: user auth: --otp: a two-factor code is the 6 digits of your authenticator app or a recovery code (xxxx-xxxx-xxxx)\n',
      });
    }
  }, 60_000);

  it('says when wrong codes are throttled (rate_limited), with how long to wait', async () => {
    const bob = await mfaUser('bob');
    const pending = (await (await fetch(`${cli.url}/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email: bob.email, password: bob.password }) })).json()) as {
      jwt_token: string;
      mfa_required?: boolean;
    };
    expect(pending.mfa_required).toBe(true);
    // Wrong codes until the wait is long enough to outlast the CLI's start and login.
    for (let tries = 0; ; tries++) {
      expect(tries).toBeLessThan(20);
      const res = await fetch(`${cli.url}/login/mfa`, { method: 'POST', headers: { Authorization: `Bearer ${pending.jwt_token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ code: wrongCode(bob) }) });
      if (res.status === 401) continue;
      expect(res.status).toBe(429);
      const wait = Number(res.headers.get('retry-after'));
      if (wait >= 4) break;
      await new Promise((resolve) => setTimeout(resolve, wait * 1000 + 100));
    }
    const config = cli.configHome();
    const res = await cli.run(['user', 'auth', '--email', bob.email, '--otp', nextCode(bob)], { config, stdin: `${bob.password}\nlocal\n` });
    expect(res.code).toBe(1);
    expect(res.out).toBe('');
    expect(res.err).toMatch(/^accounts: too many wrong two-factor codes: try again in \d+ s \(rate_limited\)\n$/);
    expect(storedEntry(config)).toBeUndefined();
  }, 120_000);

  it('tells an admin who must set up two-factor sign-in (REQUIRE_MFA_FOR_ADMINS) to do it in the console first', async () => {
    const config = cli.configHome();
    const res = await cli.run(['user', 'auth', '--email', ADMIN.email], { config, stdin: `${ADMIN.password}\nlocal\n` });
    expect(res).toMatchObject({
      code: 1,
      out: '',
      err: `accounts: ${ADMIN.email} must set up two-factor sign-in first: sign in to the web console at ${cli.url}, add an authenticator app or a passkey under Account, Security, then run auth again\n`,
    });
    expect(storedEntry(config)).toBeUndefined();
  }, 60_000);
});

describe('accounts user auth with two-factor sign-in, on a terminal', () => {
  it('asks "Two-factor code:" once the password is right, asks again for a code of neither shape, and stores the key', async () => {
    const grace = await mfaUser('grace');
    const config = cli.configHome();
    const code = nextCode(grace);
    const res = await cli.runTty(
      ['user', 'auth', '--key-name', 'terminal'],
      [
        ['Email: ', `${grace.email}\r`],
        ['Password: ', `${grace.password}\r`],
        ['(empty: unencrypted): ', 'tty local\r'],
        ['(again): ', 'tty local\r'],
        ['Two-factor code: ', '12\r'],
        ['once more.', ''],
        ['Two-factor code: ', `${code}\r`],
      ],
      { config },
    );
    expect(res.unanswered).toBe(0);
    expect(res.code).toBe(0);
    expect(res.out).toContain('A two-factor code is the 6 digits of your authenticator app or a recovery code (xxxx-xxxx-xxxx); once more.');
    expect(res.out).toContain('Authenticated as grace <grace@example.test>: key "terminal" (api)');
    expect(res.out).not.toContain(grace.password);
    expect(res.out).not.toContain('tty local');
    expect(storedEntry(config)).toMatchObject({ key_name: 'terminal', sealed: { cipher: 'aes-256-gcm' } });
    expect(await sessions(grace)).toEqual([]);
  }, 120_000);

  it('a wrong code typed at the prompt: one line, exit 1, nothing stored; Ctrl-C there: exit 130', async () => {
    const hedy = await mfaUser('hedy');
    const config = cli.configHome();
    const res = await cli.runTty(
      ['user', 'auth', '--email', hedy.email],
      [
        ['Password: ', `${hedy.password}\r`],
        ['(empty: unencrypted): ', '\r'],
        ['(again): ', '\r'],
        ['Two-factor code: ', `${wrongCode(hedy)}\r`],
      ],
      { config },
    );
    expect(res.unanswered).toBe(0);
    expect(res.code).toBe(1);
    expect(res.out).toContain('accounts: wrong two-factor code, or one already used: run auth again with a new code (mfa_failed)');
    expect(res.out).not.toMatch(STACK);
    expect(storedEntry(config)).toBeUndefined();
    expect(await sessions(hedy)).toEqual([]);

    // Ctrl-C at the prompt: exit status 130, and the pending login is ended all the same.
    const interrupted = await cli.runTty(
      ['user', 'auth', '--email', hedy.email],
      [
        ['Password: ', `${hedy.password}\r`],
        ['(empty: unencrypted): ', '\r'],
        ['(again): ', '\r'],
        ['Two-factor code: ', '\u0003'],
      ],
      { config },
    );
    expect(interrupted.unanswered).toBe(0);
    expect(interrupted.code).toBe(130);
    expect(storedEntry(config)).toBeUndefined();
    expect(await sessions(hedy)).toEqual([]);
  }, 120_000);
});
