import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase } from '../../src/db/database';
import { cliFixture } from '../helpers/cli';

/**
 * `accounts admin backup FILE` and `restore FILE` (issue 21: a way back): the embedded database
 * dumped and restored while the service is stopped. Always on the embedded database (the
 * fixture's DATABASE_URL, when this run has one, is taken away); with DATABASE_URL they point to
 * pg_dump and pg_restore.
 */
const fixture = cliFixture('accounts-backup-');
const EMBEDDED = { DATABASE_URL: undefined };
const cli = (args: string[]) => fixture.run(args, '', EMBEDDED);
/** Where the backups go: outside DATA_DIR, as an operator's would. */
let out: string;
beforeAll(() => {
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-backups-'));
});
afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

async function emails(): Promise<string[]> {
  const db = await openDatabase({ dataDir: path.join(fixture.dataDir, 'pgdata') });
  try {
    return (await db.knex('users').select('email').orderBy('email')).map((r: { email: string }) => r.email);
  } finally {
    await db.close();
  }
}

describe('accounts admin backup and restore (embedded database)', () => {
  it('backs up, and restores what was backed up: later changes gone, the replaced database kept aside', async () => {
    expect((await cli(['admin', 'create-user', '--email', 'ada@example.test', '--name', 'ada'])).code).toBe(0);
    const file = path.join(out, 'backup.tar.gz');
    const backup = await cli(['admin', 'backup', file]);
    expect(backup).toMatchObject({ code: 0, err: '' });
    expect(backup.out).toMatch(new RegExp(`^backed up the embedded database of .* to .*backup\\.tar\\.gz \\(\\d+ bytes\\); the keys in .* are not in it\\n$`));
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);

    expect((await cli(['admin', 'create-user', '--email', 'bob@example.test', '--name', 'bob'])).code).toBe(0);
    expect(await emails()).toEqual(['ada@example.test', 'bob@example.test']);

    const restore = await cli(['admin', 'restore', file]);
    expect(restore).toMatchObject({ code: 0, err: '' });
    const kept = /kept in (.*)\n$/.exec(restore.out)?.[1];
    expect(kept).toMatch(/pgdata\.before-restore-\d{4}-/);
    expect(fs.existsSync(kept!)).toBe(true);
    expect(await emails()).toEqual(['ada@example.test']);
    // The restored database serves the CLI (and the service) as before.
    expect((await cli(['admin', 'create-user', '--email', 'cy@example.test', '--name', 'cy'])).code).toBe(0);

    // Never over an existing file; never from something that is not a backup (nothing changed).
    expect(await cli(['admin', 'backup', file])).toMatchObject({ code: 1, out: '', err: `accounts: ${file} exists already: choose another name\n` });
    const junk = path.join(out, 'junk');
    fs.writeFileSync(junk, 'not a backup');
    const bad = await cli(['admin', 'restore', junk]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/is not a backup of the embedded database .*; nothing changed\n$/);
    expect(await emails()).toEqual(['ada@example.test', 'cy@example.test']);
  }, 120_000);

  it('refuses while the service holds the data directory', async () => {
    // Another live process holds the lock, as a running service would.
    const service = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const lock = path.join(fixture.dataDir, 'accounts.lock');
    fs.writeFileSync(lock, JSON.stringify({ pid: service.pid, host: os.hostname(), procStart: null, started: new Date().toISOString(), command: 'node server.js' }));
    try {
      const res = await cli(['admin', 'backup', path.join(out, 'never-written.tar.gz')]);
      expect(res.code).toBe(1);
      expect(res.err).toMatch(/^accounts: the data directory .* is in use by process \d+/);
      expect((await cli(['admin', 'restore', path.join(out, 'never-written.tar.gz')])).err).toMatch(/is in use by process/);
    } finally {
      service.kill();
      fs.rmSync(lock, { force: true });
    }
    expect(fs.existsSync(path.join(out, 'never-written.tar.gz'))).toBe(false);
  }, 60_000);

  it('with DATABASE_URL points to pg_dump and pg_restore', async () => {
    const env = { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none', JWT_SECRET: 'x'.repeat(32), MFA_KEY: 'y'.repeat(32), AUDIT_KEY: 'z'.repeat(32) };
    expect(await fixture.run(['admin', 'backup', 'f'], '', env)).toEqual({
      code: 1,
      out: '',
      err: 'accounts: backup is for the embedded database; with DATABASE_URL use pg_dump (docs/operations.md, "Upgrades, rollbacks, backups")\n',
    });
    expect((await fixture.run(['admin', 'restore', 'f'], '', env)).err).toContain('use pg_restore');
  }, 60_000);

  it('needs its FILE (exit 2)', async () => {
    expect((await cli(['admin', 'backup'])).err.split('\n')[0]).toBe('accounts: backup needs the FILE to write');
    expect((await cli(['admin', 'restore', 'a', 'b'])).err.split('\n')[0]).toBe('accounts: restore: unexpected argument "b"');
  }, 60_000);
});
