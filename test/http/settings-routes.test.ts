import { bearer, testAppWithAdmin } from '../helpers/test-app';

const { t, admin } = testAppWithAdmin();

const rows = async (userId: string) => t.knex('user_settings').where({ user_id: userId }).orderBy('key');

describe('/user/me/settings', () => {
  it('starts empty, replaces the whole set, and reads one key', async () => {
    const u = await t.factory.loggedIn();
    expect((await t.http().get('/user/me/settings').set(bearer(u.jwt))).body).toEqual({});
    const first = { theme: 'dark', columns: ['name', 'email'], nested: { a: [1, { b: true }] }, zero: 0, no: false, '\u{1F600} key': 'emoji' };
    expect((await t.http().post('/user/me/settings').set(bearer(u.jwt)).send(first)).status).toBe(204);
    expect((await t.http().get('/user/me/settings').set(bearer(u.jwt))).body).toEqual(first);
    const emoji = await t.http().get(`/user/me/settings/${encodeURIComponent('\u{1F600} key')}`).set(bearer(u.jwt));
    expect([emoji.status, emoji.body]).toEqual([200, { '\u{1F600} key': 'emoji' }]);
    await t.http().post('/user/me/settings').set(bearer(u.jwt)).send({ only: 'this' }).expect(204);
    expect((await t.http().get('/user/me/settings').set(bearer(u.jwt))).body).toEqual({ only: 'this' });
    expect((await rows(u.user.id)).map((r) => r.key)).toEqual(['only']);
    const one = await t.http().get('/user/me/settings/only').set(bearer(u.jwt));
    expect([one.status, one.body]).toEqual([200, { only: 'this' }]);
    expect((await t.http().get(`/user/me/settings/${encodeURIComponent('\u{1F600} key')}`).set(bearer(u.jwt))).status).toBe(404);
    expect((await t.http().get('/user/me/settings/missing').set(bearer(u.jwt))).status).toBe(404);
  });

  it('sets and deletes single keys', async () => {
    const u = await t.factory.loggedIn();
    await t.http().post('/user/me/settings/theme').set(bearer(u.jwt)).send({ theme: 'light' }).expect(204);
    await t.http().post('/user/me/settings/theme').set(bearer(u.jwt)).send({ theme: { mode: 'dark' } }).expect(204);
    await t.http().post('/user/me/settings/lang').set(bearer(u.jwt)).send({ lang: 'fr' }).expect(204);
    expect((await t.http().get('/user/me/settings').set(bearer(u.jwt))).body).toEqual({ theme: { mode: 'dark' }, lang: 'fr' });
    expect((await t.http().delete('/user/me/settings/theme').set(bearer(u.jwt))).status).toBe(204);
    expect((await t.http().delete('/user/me/settings/theme').set(bearer(u.jwt))).status).toBe(404);
    expect((await t.http().get('/user/me/settings').set(bearer(u.jwt))).body).toEqual({ lang: 'fr' });
  });

  it('refuses bad bodies with 400 and changes nothing', async () => {
    const u = await t.factory.loggedIn();
    await t.http().post('/user/me/settings').set(bearer(u.jwt)).send({ keep: 1 }).expect(204);
    const big = 'x'.repeat(16 * 1024);
    const cases: [string, unknown][] = [
      ['/user/me/settings', {}],
      ['/user/me/settings', { a: null }],
      ['/user/me/settings', { 'a/b': 1 }],
      ['/user/me/settings', { ['k'.repeat(129)]: 1 }],
      ['/user/me/settings', { a: big }],
      ['/user/me/settings', Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`k${i}`, i]))],
      ['/user/me/settings', [1, 2]],
      ['/user/me/settings/a', { b: 1 }],
      ['/user/me/settings/a', { a: 1, b: 2 }],
      ['/user/me/settings/a', {}],
      ['/user/me/settings/a', { a: null }],
      ['/user/me/settings/a', { a: big }],
      [`/user/me/settings/${'k'.repeat(129)}`, { ['k'.repeat(129)]: 1 }],
      ['/user/me/settings/a%2Fb', { 'a/b': 1 }],
    ];
    for (const [url, body] of cases) {
      const res = await t.http().post(url).set(bearer(u.jwt)).send(body as object);
      expect([url, res.status, res.body.code]).toEqual([url, 400, 'validation_failed']);
    }
    expect((await t.http().get('/user/me/settings').set(bearer(u.jwt))).body).toEqual({ keep: 1 });
  });

  it('accepts a value of exactly 16 KiB and 256 keys, not the 257th', async () => {
    const u = await t.factory.loggedIn();
    const fits = 'x'.repeat(16 * 1024 - 2); // JSON adds the quotes
    await t.http().post('/user/me/settings/big').set(bearer(u.jwt)).send({ big: fits }).expect(204);
    const full = Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`k${i}`, i]));
    await t.http().post('/user/me/settings').set(bearer(u.jwt)).send(full).expect(204);
    const more = await t.http().post('/user/me/settings/k256').set(bearer(u.jwt)).send({ k256: 1 });
    expect([more.status, more.body.code]).toEqual([400, 'validation_failed']);
    await t.http().post('/user/me/settings/k0').set(bearer(u.jwt)).send({ k0: 'replaced' }).expect(204);
    expect(await rows(u.user.id)).toHaveLength(256);
  });

  it('keeps the 256-key limit under concurrent writes', async () => {
    const u = await t.factory.loggedIn();
    await t.http().post('/user/me/settings').set(bearer(u.jwt)).send(Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`k${i}`, i]))).expect(204);
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => t.http().post(`/user/me/settings/n${i}`).set(bearer(u.jwt)).send({ [`n${i}`]: i })));
    expect(results.filter((r) => r.status === 204)).toHaveLength(6);
    expect(results.filter((r) => r.status === 400)).toHaveLength(6);
    expect(await rows(u.user.id)).toHaveLength(256);
  });
});

describe('/user/:user/settings', () => {
  it('lets an admin read and write anyone\'s settings', async () => {
    const u = await t.factory.loggedIn();
    await t.http().post(`/user/${u.email}/settings`).set(bearer(admin.jwt)).send({ quota: 10 }).expect(204);
    await t.http().post(`/user/${u.user.id}/settings/plan`).set(bearer(admin.jwt)).send({ plan: 'pro' }).expect(204);
    expect((await t.http().get('/user/me/settings').set(bearer(u.jwt))).body).toEqual({ quota: 10, plan: 'pro' });
    expect((await t.http().get(`/user/${u.user.id}/settings/plan`).set(bearer(admin.jwt))).body).toEqual({ plan: 'pro' });
    expect((await t.http().get(`/user/${u.user.id}/settings`).set(bearer(admin.jwt))).body).toEqual({ quota: 10, plan: 'pro' });
    await t.http().delete(`/user/${u.user.id}/settings/quota`).set(bearer(admin.jwt)).expect(204);
    expect((await t.http().get(`/user/${u.user.id}/settings/quota`).set(bearer(admin.jwt))).status).toBe(404);
  });

  it('refuses non-admins with 403, answers 404 and 410 for missing and deactivated users', async () => {
    const u = await t.factory.loggedIn();
    const other = await t.factory.user();
    expect((await t.http().get(`/user/${other.user.id}/settings`).set(bearer(u.jwt))).status).toBe(403);
    expect((await t.http().post(`/user/${other.user.id}/settings/x`).set(bearer(u.jwt)).send({ x: 1 })).status).toBe(403);
    expect(await rows(other.user.id)).toHaveLength(0);
    expect((await t.http().get('/user/nobody@example.test/settings').set(bearer(admin.jwt))).status).toBe(404);
    await t.http().delete(`/user/${other.user.id}`).set(bearer(admin.jwt)).expect(204);
    expect((await t.http().get(`/user/${other.user.id}/settings`).set(bearer(admin.jwt))).status).toBe(410);
  });
});
