import fs from 'node:fs';
import type { KeyEntry } from '../../src/cli/user/key-store';
import { userCliFixture } from '../helpers/user-cli';

/** `accounts user register` and `reset_password account|local` without a terminal (see userCliFixture). */
const cli = userCliFixture('accounts-user-register-');

function storedEntry(config: string): KeyEntry | undefined {
  return (JSON.parse(fs.readFileSync(cli.keyFile(config), 'utf8')) as { keys: Record<string, KeyEntry> }).keys[cli.url];
}

describe('accounts user register', () => {
  it('registers from flags and a password line, then the mailed link verifies the address and auth works', async () => {
    const config = cli.configHome();
    const res = await cli.run(['user', 'register', '--name', 'linus', '--email', 'linus@example.test'], { config, stdin: 'linus has a long password\n' });
    expect(res).toMatchObject({ code: 0, err: '' });
    expect(res.out).toBe(`Registered linus <linus@example.test> at ${cli.url}. Check the mailbox of linus@example.test for a link to verify the address, then run \`accounts user auth\`.\n`);

    // Before the link: the right password is refused as unverified.
    const early = await cli.run(['user', 'auth', '--email', 'linus@example.test'], { config, stdin: 'linus has a long password\n\n' });
    expect(early).toMatchObject({ code: 1, out: '' });
    expect(early.err).toMatch(/^accounts: [^\n]+ \(email_unverified\)\n$/);

    await cli.verify('linus@example.test');
    const auth = await cli.run(['user', 'auth', '--email', 'linus@example.test'], { config, stdin: 'linus has a long password\nlocal\n' });
    expect(auth.code).toBe(0);
    expect(await cli.run(['user', 'whoami'], { config, stdin: 'local\n' })).toMatchObject({ code: 0, out: 'linus <linus@example.test>\n' });
  }, 120_000);

  it('reads every answer from standard input, one line each', async () => {
    const res = await cli.run(['user', 'register'], { config: cli.configHome(), stdin: 'margaret\nmargaret@example.test\nmargaret has a long password\n' });
    expect(res.code).toBe(0);
    await cli.verify('margaret@example.test');
  }, 60_000);

  it('refuses a weak password with the API error and code; a missing answer or a bad address is bad usage', async () => {
    const weak = await cli.run(['user', 'register', '--name', 'weak', '--email', 'weak@example.test'], { config: cli.configHome(), stdin: 'short\n' });
    expect(weak).toMatchObject({ code: 1, out: '' });
    expect(weak.err).toMatch(/^accounts: [^\n]+ \((weak_password|validation_failed)\)\n$/);
    const missing = await cli.run(['user', 'register', '--name', 'x'], { config: cli.configHome(), stdin: 'x@example.test\n' });
    expect(missing).toMatchObject({ code: 2, out: '', err: 'accounts: no password on standard input (one line per answer)\n' });
    const bad = await cli.run(['user', 'register'], { config: cli.configHome(), stdin: 'x\nnot-an-email\npassword 123\n' });
    expect(bad).toMatchObject({ code: 2, out: '', err: 'accounts: "not-an-email" is not an email address\n' });
  }, 60_000);
});

describe('accounts user reset_password', () => {
  beforeAll(async () => {
    await cli.account('edsger', 'edsger@example.test', 'edsger has a long password');
  }, 60_000);

  it('account: mails a reset link to the address', async () => {
    const before = cli.mail.to('edsger@example.test').length;
    const res = await cli.run(['user', 'reset_password', 'account'], { config: cli.configHome(), stdin: 'edsger@example.test\n' });
    expect(res).toMatchObject({ code: 0, err: '' });
    expect(res.out).toBe(`If edsger@example.test has an account at ${cli.url}, a link to set a new password is on its way: check its mailbox.\n`);
    const [mail] = await cli.mail.waitFor((m) => m.to.includes('edsger@example.test') && /Reset/.test(m.subject), 1, 15_000);
    expect(mail.text).toMatch(/reset-password\?token=[\w-]+/);
    expect(cli.mail.to('edsger@example.test').length).toBe(before + 1);
  }, 60_000);

  it('local: changes the local password that encrypts the stored key; the old one is refused after', async () => {
    const config = cli.configHome();
    expect((await cli.run(['user', 'auth', '--email', 'edsger@example.test'], { config, stdin: 'edsger has a long password\nold local\n' })).code).toBe(0);
    const sealedBefore = storedEntry(config)!.sealed!;
    const wrong = await cli.run(['user', 'reset_password', 'local'], { config, stdin: 'not it\nnew local\n' });
    expect(wrong).toMatchObject({ code: 1, err: `accounts: wrong local password for the key stored for ${cli.url}\n` });

    const res = await cli.run(['user', 'reset_password', 'local'], { config, stdin: 'old local\nnew local\n' });
    expect(res).toMatchObject({ code: 0, err: '', out: `Local password changed for the key stored for ${cli.url}.\n` });
    const sealedAfter = storedEntry(config)!.sealed!;
    expect(sealedAfter.salt).not.toBe(sealedBefore.salt);
    expect(fs.statSync(cli.keyFile(config)).mode & 0o777).toBe(0o600);
    expect((await cli.run(['user', 'whoami'], { config, stdin: 'old local\n' })).code).toBe(1);
    expect(await cli.run(['user', 'whoami'], { config, stdin: 'new local\n' })).toMatchObject({ code: 0, out: 'edsger <edsger@example.test>\n' });

    // An empty new one stores it in clear, with the warning.
    const clear = await cli.run(['user', 'reset_password', 'local'], { config, stdin: 'new local\n\n' });
    expect(clear.code).toBe(0);
    expect(clear.err).toMatch(/^accounts: warning: the key is stored unencrypted in /);
    expect(storedEntry(config)!.token).toMatch(/^eyJ/);
  }, 120_000);
});
