import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KeyEntry } from '../../src/cli/user/key-store';
import { STACK, userCliFixture } from '../helpers/user-cli';

/**
 * The tasks on a terminal: run in a pseudo-terminal (`script`), they ask what they need, hide
 * passwords, ask for a new password twice, and turn a spinner while the server takes its time.
 */
const cli = userCliFixture('accounts-user-tty-');

function storedEntry(config: string): KeyEntry | undefined {
  return (JSON.parse(fs.readFileSync(cli.keyFile(config), 'utf8')) as { keys: Record<string, KeyEntry> }).keys[cli.url];
}

describe('on a terminal', () => {
  it('register asks for the name, the email and the password (hidden, twice); the mailed link verifies it', async () => {
    const res = await cli.runTty(
      ['user', 'register'],
      [
        ['Name: ', 'alan\r'],
        ['Email: ', 'alan@example.test\r'],
        ['Password: ', 'alan has a long password\r'],
        ['Password (again): ', 'alan has a long password\r'],
      ],
      { config: cli.configHome() },
    );
    expect(res.unanswered).toBe(0);
    expect(res.code).toBe(0);
    expect(res.out).toContain('Name: alan'); // what is typed is shown...
    expect(res.out).toContain('Email: alan@example.test');
    expect(res.out).not.toContain('alan has a long password'); // ...but never a password
    expect(res.out).toContain('Check the mailbox of alan@example.test');
    await cli.verify('alan@example.test');
  }, 120_000);

  it('asks again when the two passwords differ', async () => {
    const res = await cli.runTty(
      ['user', 'register', '--name', 'barbara', '--email', 'barbara@example.test'],
      [
        ['Password: ', 'barbara has a long password\r'],
        ['Password (again): ', 'barbara has a typo\r'],
        ['The two passwords differ; once more.', ''],
        ['Password: ', 'barbara has a long password\r'],
        ['Password (again): ', 'barbara has a long password\r'],
      ],
      { config: cli.configHome() },
    );
    expect(res.unanswered).toBe(0);
    expect(res.code).toBe(0);
    expect(res.out).not.toContain('barbara has');
  }, 120_000);

  it('auth asks for the email, the password and a local password (twice); whoami then asks for the local password', async () => {
    await cli.account('grace', 'grace@example.test', 'grace has a long password');
    const config = cli.configHome();
    const auth = await cli.runTty(
      ['user', 'auth', '--key-name', 'terminal'],
      [
        ['Email: ', 'grace@example.test\r'],
        ['Password: ', 'grace has a long password\r'],
        ['(empty: unencrypted): ', 'tty local\r'],
        ['(again): ', 'tty local\r'],
      ],
      { config },
    );
    expect(auth.unanswered).toBe(0);
    expect(auth.code).toBe(0);
    expect(auth.out).toContain('Authenticated as grace <grace@example.test>: key "terminal" (api)');
    expect(auth.out).not.toContain('tty local');
    expect(auth.out).not.toContain('grace has a long password');
    expect(storedEntry(config)).toMatchObject({ key_name: 'terminal', sealed: { cipher: 'aes-256-gcm' } });

    const who = await cli.runTty(['user', 'whoami'], [['Local password: ', 'tty local\r']], { config });
    expect(who.code).toBe(0);
    expect(who.out).toMatch(/Local password: \r?\ngrace <grace@example\.test>/);

    // A wrong one: one line, exit 1, no stack.
    const wrong = await cli.runTty(['user', 'whoami'], [['Local password: ', 'not it\r']], { config });
    expect(wrong.code).toBe(1);
    expect(wrong.out).toContain(`accounts: wrong local password for the key stored for ${cli.url}`);
    expect(wrong.out).not.toMatch(STACK);
  }, 120_000);

  it('Ctrl-C at a prompt stops the task with exit status 130, storing nothing', async () => {
    const config = cli.configHome();
    const res = await cli.runTty(['user', 'auth'], [['Email: ', '\u0003']], { config });
    expect(res.code).toBe(130);
    expect(fs.existsSync(cli.keyFile(config))).toBe(false);
  }, 60_000);
});

describe('the spinner', () => {
  /** A server that answers GET /user/me after `delayMs`. */
  async function slowServer(delayMs: number): Promise<{ url: string; close: () => Promise<void> }> {
    const server = http.createServer((_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ id: '00000000-0000-4000-8000-000000000000', name: 'slow', email: 'slow@example.test', is_admin: false }));
      }, delayMs);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  it('turns on stderr when a request takes over half a second and stderr is a terminal, and never otherwise', async () => {
    const slow = await slowServer(1500);
    try {
      const env = { ACCOUNTS_KEY: 'any' };
      const tty = await cli.runTty(['user', 'whoami', '--url', slow.url], [], { config: cli.configHome(), env });
      expect(tty.code).toBe(0);
      expect(tty.out).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] Asking the server/);
      expect(tty.out).toContain('\u001b[2K'); // its line is cleared when done
      expect(tty.out).toContain('slow <slow@example.test>');

      const piped = await cli.run(['user', 'whoami', '--url', slow.url], { config: cli.configHome(), env });
      expect(piped).toMatchObject({ code: 0, out: 'slow <slow@example.test>\n', err: '' });
    } finally {
      await slow.close();
    }
  }, 60_000);
});
