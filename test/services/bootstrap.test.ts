import { createLogger } from '../../src/logger';
import { bootstrapAdmin } from '../../src/services/bootstrap';
import { createTestApp, type TestApp } from '../helpers/test-app';

let t: TestApp;
beforeEach(async () => {
  t = await createTestApp();
});
afterEach(async () => {
  await t.close();
});

const admin = { email: 'root@example.test', password: 'bootstrap password', name: 'root' };

describe('bootstrapAdmin', () => {
  it('creates the admin once and only once, however often and concurrently it runs', async () => {
    const log = createLogger('silent');
    const results = await Promise.all([1, 2, 3].map(() => bootstrapAdmin(t.container.transact, t.container.hasher, log, admin)));
    expect(results.filter((r) => r === 'created')).toHaveLength(1);
    expect(await bootstrapAdmin(t.container.transact, t.container.hasher, log, admin)).toBe('exists');
    const rows = await t.knex('users').where({ is_admin: true });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ email: admin.email, name: 'root', force_password_change: false });
    const entries = await t.knex('audit_log').where({ target_id: rows[0].id });
    expect(entries.map((e) => [e.action, e.actor_id, e.user_agent])).toEqual([['user.created', null, 'start-up (ADMIN_EMAIL)']]);
    expect(JSON.stringify(entries)).not.toContain(admin.password);
    const login = await t.http().post('/login').send({ email: admin.email, password: admin.password });
    expect(login.status).toBe(200);
    expect(login.body.password_change_required).toBeUndefined();
  });

  it('does nothing when an active admin exists', async () => {
    await t.factory.user({ admin: true });
    expect(await bootstrapAdmin(t.container.transact, t.container.hasher, createLogger('silent'), admin)).toBe('exists');
    expect(await t.knex('users').where({ email: admin.email })).toHaveLength(0);
  });

  it('creates one when the only admin was deactivated', async () => {
    const old = await t.factory.user({ admin: true });
    await t.knex('users').where({ id: old.user.id }).update({ deactivated: new Date() });
    expect(await bootstrapAdmin(t.container.transact, t.container.hasher, createLogger('silent'), admin)).toBe('created');
  });

  it('skips, with a warning, when the email belongs to a non-admin', async () => {
    await t.factory.user({ email: admin.email });
    expect(await bootstrapAdmin(t.container.transact, t.container.hasher, createLogger('silent'), admin)).toBe('skipped');
    expect(await t.knex('users').where({ is_admin: true })).toHaveLength(0);
  });
});
