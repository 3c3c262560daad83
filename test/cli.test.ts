import path from 'node:path';
import { cliFixture } from './helpers/cli';

/** The operator CLI against a database of its own (see cliFixture). */
const fixture = cliFixture('accounts-cli-', (dir) => ({ MAIL_OUTBOX_DIR: path.join(dir, 'outbox') }));
const cli = fixture.run;
const withDb = fixture.withDb;

describe('cli', () => {
  it('migrates', async () => {
    const first = await cli(['migrate']);
    expect(first.code).toBe(0);
    expect((await cli(['migrate'])).out).toBe('already up to date\n');
  }, 60_000);

  it('creates an admin with a password from stdin, who must change it', async () => {
    const res = await cli(['create-user', '--email', 'ops@example.test', '--name', 'ops', '--admin', '--password-stdin'], 'operator password\n');
    expect(res.code).toBe(0);
    expect(JSON.parse(res.out)).toMatchObject({ email: 'ops@example.test', name: 'ops', is_admin: true });
    const row = await withDb((k) => k('users').where({ email: 'ops@example.test' }).first());
    expect(row).toMatchObject({ is_admin: true, force_password_change: true });
    expect(row.password_hash).toMatch(/^\$2b\$04\$/);
  }, 60_000);

  it('refuses a duplicate and a weak password with a message', async () => {
    const dup = await cli(['create-user', '--email', 'OPS@example.test', '--name', 'other']);
    expect(dup.code).not.toBe(0);
    const weak = await cli(['passwd', '--user', 'ops@example.test'], 'short\n');
    expect(weak.code).not.toBe(0);
  }, 60_000);

  it('sets a password (clearing the forced change) and forces a change again', async () => {
    expect((await cli(['passwd', '--user', 'email=ops@example.test'], 'a new operator password\n')).code).toBe(0);
    expect((await withDb((k) => k('users').where({ email: 'ops@example.test' }).first())).force_password_change).toBe(false);
    expect((await cli(['force-password-change', '--user', 'ops@example.test'])).code).toBe(0);
    expect((await withDb((k) => k('users').where({ email: 'ops@example.test' }).first())).force_password_change).toBe(true);
    expect((await cli(['force-password-change', '--user', 'nobody@example.test'])).code).not.toBe(0);
  }, 60_000);

  it('mints an API token, printed once and stored without its secret', async () => {
    const res = await cli(['create-token', '--email', 'ops@example.test', '--name', 'deploy bot', '--scopes', 'api:read']);
    expect(res.code).toBe(0);
    const out = JSON.parse(res.out);
    expect(out).toMatchObject({ name: 'deploy bot', scopes: ['api:read'], token: expect.stringMatching(/^ey/) });
    const row = await withDb((k) => k('user_tokens').where({ name: 'deploy bot' }).first());
    expect(row).toMatchObject({ kind: 'api', scopes: ['api:read'] });
    expect(JSON.stringify(row)).not.toContain(out.token);
    const again = await cli(['create-token', '--email', 'ops@example.test', '--name', 'deploy bot']);
    expect(again.code).toBe(1);
    expect((await cli(['create-token', '--email', 'ops@example.test', '--name', 'x', '--scopes', 'root'])).code).toBe(2); // bad usage
  }, 60_000);

  it('leaves its changes in the audit log with no actor and its own client name, and never a secret', async () => {
    const rows = await withDb((k) => k('audit_log').join('users', 'users.id', 'audit_log.target_id').where('users.email', 'ops@example.test').orderBy('seq').select('audit_log.*'));
    expect(rows.map((r) => r.action)).toEqual(['user.created', 'password.changed', 'user.updated', 'token.created']);
    for (const r of rows) expect(r).toMatchObject({ actor_id: null, user_agent: 'accounts CLI', ip: null });
    expect(rows[1].summary).toEqual({ by: 'operator', tokens_ended: 'login_only' });
    const text = JSON.stringify(rows);
    for (const secret of ['operator password', 'a new operator password']) expect(text).not.toContain(secret);
  }, 60_000);

  it('prints usage for no command and an unknown one', async () => {
    expect((await cli([])).code).toBe(2);
    const unknown = await cli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('unknown command frobnicate');
  }, 60_000);
});
