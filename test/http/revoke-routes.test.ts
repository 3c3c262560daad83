import { bearer, captureQueries, queuedMail, testAppWithAdmin } from '../helpers/test-app';

const { t, admin } = testAppWithAdmin();

const works = async (token: string) => (await t.http().get('/me').set(bearer(token))).status === 204;

async function userWithTokens() {
  const u = await t.factory.loggedIn();
  const login2 = await t.factory.login(u);
  const created = await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name: 'deploy' });
  const created2 = await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name: 'backup/nightly' });
  return { ...u, login2, api: created.body.token as string, api2: created2.body.token as string };
}

const modes = [
  ['all', '', { login: false, api: false }],
  ['login_only', 'login_only=1', { login: false, api: true }],
  ['api_only', 'api_only=1', { login: true, api: false }],
] as const;

describe('POST /user/me/revoke', () => {
  it.each(modes)('%s expires exactly those of the caller\'s tokens, and mails nothing', async (_mode, query, expected) => {
    const u = await userWithTokens();
    const bystander = await t.factory.loggedIn();
    const res = await t.http().post(`/user/me/revoke?${query}`).set(bearer(expected.api ? u.api : u.login2));
    expect(res.status).toBe(204);
    expect({ login: await works(u.jwt), api: await works(u.api) }).toEqual(expected);
    expect([await works(u.login2), await works(u.api2)]).toEqual([expected.login, expected.api]);
    expect(await works(bystander.jwt)).toBe(true);
    expect(await queuedMail(t.knex, u.email)).toEqual([]);
  });

  it('refuses both flags with 400, revoking nothing', async () => {
    const u = await userWithTokens();
    const res = await t.http().post('/user/me/revoke?login_only=1&api_only=1').set(bearer(u.jwt));
    expect([res.status, res.body.code]).toEqual([400, 'validation_failed']);
    expect([await works(u.jwt), await works(u.api)]).toEqual([true, true]);
  });
});

describe('POST /user/:user/revoke', () => {
  it.each(modes)('%s expires exactly those of the target\'s tokens and mails the target', async (mode, query, expected) => {
    const u = await userWithTokens();
    const res = await t.http().post(`/user/${u.email}/revoke?${query}`).set(bearer(admin.jwt));
    expect(res.status).toBe(204);
    expect({ login: await works(u.jwt), api: await works(u.api) }).toEqual(expected);
    expect([await works(u.login2), await works(u.api2)]).toEqual([expected.login, expected.api]);
    expect(await works(admin.jwt)).toBe(true);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email));
    expect(mail.subject).toBe('Your Accounts tokens have been revoked');
    if (mode === 'login_only') expect(mail.text).not.toContain('deploy');
    else expect(mail.text).toMatch(/backup\/nightly[\s\S]*deploy/);
    if (mode === 'api_only') expect(mail.text).not.toContain('Login sessions');
    else expect(mail.text).toContain('Login sessions ended: 2');
    expect(mail.raw).not.toContain(u.api);
    expect(mail.raw).not.toContain(u.jwt);
  });

  it('sends no mail with send_mail=0, or when nothing was revoked', async () => {
    const u = await userWithTokens();
    await t.http().post(`/user/${u.user.id}/revoke?send_mail=0`).set(bearer(admin.jwt)).expect(204);
    expect([await works(u.jwt), await works(u.api)]).toEqual([false, false]);
    const idle = await t.factory.user();
    await t.http().post(`/user/${idle.user.id}/revoke`).set(bearer(admin.jwt)).expect(204);
    expect(await queuedMail(t.knex, u.email)).toEqual([]);
    expect(await queuedMail(t.knex, idle.email)).toEqual([]);
  });

  it('revokes any number of tokens in one statement', async () => {
    const u = await t.factory.user();
    for (let i = 0; i < 50; i++) await t.factory.apiToken(u.user);
    const statements = await captureQueries(t.knex, () => t.http().post(`/user/${u.user.id}/revoke?send_mail=0`).set(bearer(admin.jwt)).expect(204));
    expect(statements.filter((sql) => /^delete from "user_tokens"/.test(sql))).toHaveLength(1);
    expect(await t.knex('user_tokens').where({ user_id: u.user.id })).toHaveLength(0);
  });

  it('refuses non-admins with 403, both flags with 400, and deactivated targets with 410', async () => {
    const u = await userWithTokens();
    const other = await t.factory.loggedIn();
    expect((await t.http().post(`/user/${u.user.id}/revoke`).set(bearer(other.jwt))).status).toBe(403);
    expect((await t.http().post(`/user/${u.user.id}/revoke?login_only=1&api_only=1`).set(bearer(admin.jwt))).status).toBe(400);
    expect([await works(u.jwt), await works(u.api)]).toEqual([true, true]);
    await t.http().delete(`/user/${other.user.id}`).set(bearer(admin.jwt)).expect(204);
    expect((await t.http().post(`/user/${other.user.id}/revoke`).set(bearer(admin.jwt))).status).toBe(410);
  });

  it('mails nothing when an admin revokes their own tokens through the admin route', async () => {
    const a = await t.factory.loggedIn({ admin: true });
    const spare = await t.factory.login(a);
    await t.http().post(`/user/${a.user.id}/revoke?api_only=1`).set(bearer(spare)).expect(204);
    await t.http().post(`/user/${a.user.id}/revoke`).set(bearer(spare)).expect(204);
    expect(await works(a.jwt)).toBe(false);
    expect(await queuedMail(t.knex, a.email)).toEqual([]);
  });
});
