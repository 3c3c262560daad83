import jwt from 'jsonwebtoken';
import { bearer, testAppWithAdmin, unique } from '../helpers/test-app';

const { t, admin } = testAppWithAdmin({ env: { API_TOKEN_MAX_TTL: '400d' } });

const path = (name: string) => `/user/me/token/${encodeURIComponent(name)}`;

describe('API tokens', () => {
  it('live a whole life: create, use, listed with last_used, deleted, refused at once, name reusable', async () => {
    const u = await t.factory.loggedIn();
    const name = `laptop \u{1F4BB} / home ${unique()}`;
    const created = await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name });
    expect(created.status).toBe(201);
    expect(created.headers.location).toBe(path(name));
    expect(created.headers['cache-control']).toBe('no-store');
    expect(created.body).toEqual({ name, scopes: ['api'], created: expect.any(String), last_used: null, expires: expect.any(String), token: expect.any(String) });
    const expires = Date.parse(created.body.expires);
    expect(expires).toBeGreaterThan(Date.now() + 364 * 86_400_000);
    expect(expires).toBeLessThan(Date.now() + 366 * 86_400_000);
    const secret = created.body.token as string;

    expect((await t.http().get('/user/me').set(bearer(secret))).status).toBe(200);
    const one = await t.http().get(created.headers.location).set(bearer(u.jwt));
    expect(one.status).toBe(200);
    expect(one.body).toEqual({ name, scopes: ['api'], created: created.body.created, last_used: expect.any(String), expires: created.body.expires, last_ipaddr: expect.stringMatching(/127\.0\.0\.1/) });
    expect(JSON.stringify(one.body)).not.toContain(secret);

    const list = await t.http().get('/user/me/token').set(bearer(u.jwt));
    expect(list.body.map((x: { name: string }) => x.name)).toEqual([name]);
    expect(JSON.stringify(list.body)).not.toContain(secret);
    expect(JSON.stringify(await t.knex('user_tokens').where({ name }))).not.toContain(secret);

    expect((await t.http().delete(path(name)).set(bearer(u.jwt))).status).toBe(204);
    expect((await t.http().get('/user/me').set(bearer(secret))).status).toBe(401);
    expect((await t.http().delete(path(name)).set(bearer(u.jwt))).status).toBe(404);
    expect((await t.http().get(path(name)).set(bearer(u.jwt))).status).toBe(404);
    expect((await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name })).status).toBe(201);
  });

  it('never lists login tokens', async () => {
    const u = await t.factory.loggedIn();
    await t.factory.login(u);
    const list = await t.http().get('/user/me/token').set(bearer(u.jwt));
    expect(list.status).toBe(200);
    expect(list.body).toEqual([]);
    const login = await t.knex('user_tokens').where({ user_id: u.user.id }).first();
    expect((await t.http().get(path(login.name)).set(bearer(u.jwt))).status).toBe(404);
    expect((await t.http().delete(path(login.name)).set(bearer(u.jwt))).status).toBe(404);
  });

  it('round-trips names with /, spaces, percent signs and emoji through the path', async () => {
    const u = await t.factory.loggedIn();
    for (const name of ['a/b/c', '50% off', '\u{1F680}', 'x'.repeat(100), 'tab\u00a0nbsp', '../../etc/passwd']) {
      const created = await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name });
      expect(created.status).toBe(201);
      const got = await t.http().get(created.headers.location).set(bearer(u.jwt));
      expect(got.status).toBe(200);
      expect(got.body.name).toBe(name);
    }
  });

  it('refuses bad names, reserved names, bad scopes and bad expiry with 400, creating nothing', async () => {
    const u = await t.factory.loggedIn();
    const cases: [unknown, string][] = [
      [{ name: '' }, 'validation_failed'],
      [{ name: 'x'.repeat(101) }, 'validation_failed'],
      [{ name: 'line\nbreak' }, 'validation_failed'],
      [{ name: 'login_jwt_sneaky' }, 'validation_failed'],
      [{ name: 'ok', scopes: [] }, 'validation_failed'],
      [{ name: 'ok', scopes: ['root'] }, 'validation_failed'],
      [{ name: 'ok', expires: 'tomorrow' }, 'validation_failed'],
      [{ name: 'ok', expires: new Date(Date.now() - 1000).toISOString() }, 'validation_failed'],
      [{ name: 'ok', expires: new Date(Date.now() + 401 * 86_400_000).toISOString() }, 'validation_failed'],
      [{ name: 'ok', token: 'mine' }, 'validation_failed'],
      [{ name: 7 }, 'validation_failed'],
    ];
    for (const [body, code] of cases) {
      const res = await t.http().post('/user/me/token').set(bearer(u.jwt)).send(body as object);
      expect([res.status, res.body.code]).toEqual([400, code]);
    }
    expect(await t.knex('user_tokens').where({ user_id: u.user.id, kind: 'api' })).toHaveLength(0);
  });

  it('takes a chosen expiry within the maximum', async () => {
    const u = await t.factory.loggedIn();
    const expires = new Date(Date.now() + 3 * 86_400_000);
    expires.setMilliseconds(0);
    const res = await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name: 'short lived', expires: expires.toISOString() });
    expect(res.status).toBe(201);
    expect(res.body.expires).toBe(expires.toISOString());
    expect((jwt.decode(res.body.token) as jwt.JwtPayload).exp).toBe(expires.getTime() / 1000);
  });

  it('refuses an expired token', async () => {
    const u = await t.factory.loggedIn();
    const res = await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name: 'soon gone', expires: new Date(Date.now() + 60_000).toISOString() });
    t.clock.advance(61_000);
    try {
      expect((await t.http().get('/user/me').set(bearer(res.body.token))).status).toBe(401);
      expect((await t.http().get('/user/me/token').set(bearer(u.jwt))).body).toEqual([]);
      // An expired token's name can be used again.
      expect((await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name: 'soon gone' })).status).toBe(201);
    } finally {
      t.clock.advance(-61_000);
    }
  });

  it('answers a name in use with 409, and 20 concurrent creations of one name with one 201', async () => {
    const u = await t.factory.loggedIn();
    await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name: 'taken' }).expect(201);
    const dup = await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name: 'taken' });
    expect([dup.status, dup.body.code]).toEqual([409, 'conflict']);
    const results = await Promise.all(Array.from({ length: 20 }, () => t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name: 'race' })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(19);
    expect(await t.knex('user_tokens').where({ user_id: u.user.id, name: 'race' })).toHaveLength(1);
  });

  it('lets other users hold the same name', async () => {
    const a = await t.factory.loggedIn();
    const b = await t.factory.loggedIn();
    await t.http().post('/user/me/token').set(bearer(a.jwt)).send({ name: 'shared' }).expect(201);
    await t.http().post('/user/me/token').set(bearer(b.jwt)).send({ name: 'shared' }).expect(201);
  });
});

describe('scopes', () => {
  it('lets api:read read and nothing else; api and api:write do everything', async () => {
    const u = await t.factory.loggedIn();
    const mint = async (scopes: string[]) => (await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name: unique('s'), scopes })).body.token as string;
    const read = await mint(['api:read']);
    expect((await t.http().get('/user/me').set(bearer(read))).status).toBe(200);
    expect((await t.http().get('/user/me/token').set(bearer(read))).status).toBe(200);
    for (const call of [
      () => t.http().post('/user/me').set(bearer(read)).send({ first_name: 'Nope' }),
      () => t.http().post('/user/me/token').set(bearer(read)).send({ name: 'escalate' }),
      () => t.http().post('/user/me/revoke').set(bearer(read)),
      () => t.http().post('/user/me/settings/x').set(bearer(read)).send({ x: 1 }),
    ]) {
      const res = await call();
      expect([res.status, res.body.code]).toEqual([403, 'forbidden']);
    }
    expect((await t.knex('users').where({ id: u.user.id }).first()).first_name).toBeNull();
    for (const scopes of [['api'], ['api:write'], ['api:read', 'api:write']]) {
      const token = await mint(scopes);
      expect((await t.http().post('/user/me').set(bearer(token)).send({ last_name: scopes.join() })).status).toBe(200);
    }
  });
});

describe('admin forms', () => {
  it('let an admin list, read and expire anyone\'s tokens, but not mint them', async () => {
    const u = await t.factory.loggedIn();
    const created = await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name: 'ci/cd' });
    const list = await t.http().get(`/user/${u.email}/token`).set(bearer(admin.jwt));
    expect(list.status).toBe(200);
    expect(list.body.map((x: { name: string }) => x.name)).toEqual(['ci/cd']);
    const one = await t.http().get(`/user/${u.user.id}/token/${encodeURIComponent('ci/cd')}`).set(bearer(admin.jwt));
    expect([one.status, one.body.name]).toEqual([200, 'ci/cd']);
    expect((await t.http().delete(`/user/${u.user.id}/token/${encodeURIComponent('ci/cd')}`).set(bearer(admin.jwt))).status).toBe(204);
    expect((await t.http().get('/me').set(bearer(created.body.token))).status).toBe(401);
    expect((await t.http().post(`/user/${u.user.id}/token`).set(bearer(admin.jwt)).send({ name: 'x' })).status).toBe(404);
  });

  it('refuse non-admins with 403 and answer deactivated targets with 410', async () => {
    const u = await t.factory.loggedIn();
    const other = await t.factory.user();
    expect((await t.http().get(`/user/${other.user.id}/token`).set(bearer(u.jwt))).status).toBe(403);
    expect((await t.http().delete(`/user/${other.user.id}/token/x`).set(bearer(u.jwt))).status).toBe(403);
    await t.http().delete(`/user/${other.user.id}`).set(bearer(admin.jwt)).expect(204);
    expect((await t.http().get(`/user/${other.user.id}/token`).set(bearer(admin.jwt))).status).toBe(410);
  });
});

describe('sessions', () => {
  it('list the caller\'s live login sessions, marking the current one, and end one', async () => {
    const u = await t.factory.user();
    const first = await t.http().post('/login').set('User-Agent', 'first-agent/1.0').send({ email: u.email, password: u.password });
    const second = await t.http().post('/login').set('User-Agent', 'second-agent/2.0').send({ email: u.email, password: u.password });
    await t.factory.apiToken(u.user);
    const res = await t.http().get('/user/me/session').set(bearer(second.body.jwt_token));
    expect(res.status).toBe(200);
    expect(res.body).toHaveLength(2);
    expect(res.body.map((s: { user_agent: string }) => s.user_agent)).toEqual(['first-agent/1.0', 'second-agent/2.0']);
    expect(res.body.map((s: { current: boolean }) => s.current)).toEqual([false, true]);
    expect(Object.keys(res.body[0]).sort()).toEqual(['aal', 'created', 'current', 'expires', 'id', 'last_ipaddr', 'last_used', 'user_agent']);
    const firstId = res.body[0].id;
    expect((await t.http().delete(`/user/me/session/${firstId.toUpperCase()}`).set(bearer(second.body.jwt_token))).status).toBe(204);
    expect((await t.http().get('/me').set(bearer(first.body.jwt_token))).status).toBe(401);
    expect((await t.http().get('/me').set(bearer(second.body.jwt_token))).status).toBe(204);
    expect((await t.http().delete(`/user/me/session/${firstId}`).set(bearer(second.body.jwt_token))).status).toBe(404);
  });

  it('cannot end someone else\'s session or an API token', async () => {
    const a = await t.factory.loggedIn();
    const b = await t.factory.loggedIn();
    const bSession = (await t.http().get('/user/me/session').set(bearer(b.jwt))).body[0].id;
    expect((await t.http().delete(`/user/me/session/${bSession}`).set(bearer(a.jwt))).status).toBe(404);
    expect((await t.http().get('/me').set(bearer(b.jwt))).status).toBe(204);
    const api = await t.factory.apiToken(a.user);
    const apiId = (jwt.decode(api) as jwt.JwtPayload).jti;
    expect((await t.http().delete(`/user/me/session/${apiId}`).set(bearer(a.jwt))).status).toBe(404);
    expect((await t.http().delete('/user/me/session/not-a-uuid').set(bearer(a.jwt))).status).toBe(400);
  });
});
