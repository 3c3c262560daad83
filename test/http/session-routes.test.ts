import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { bearer, captureQueries, createTestApp, JWT_SECRET, rawRequest, type TestApp } from '../helpers/test-app';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});


describe('POST /login', () => {
  it('accepts email (any case), user_id and the v2 user field, each making a new login token', async () => {
    const u = await t.factory.user();
    const forms = [
      { email: u.email.toUpperCase() },
      { user_id: u.user.id },
      { user: u.email },
      { user: u.user.id },
    ];
    const tokens: string[] = [];
    for (const form of forms) {
      const res = await t.http().post('/login').send({ ...form, password: u.password });
      expect(res.status).toBe(200);
      expect(Object.keys(res.body)).toEqual(['jwt_token']);
      expect(res.headers['cache-control']).toBe('no-store');
      const expires = Date.parse(res.headers.expires);
      expect(expires).toBeGreaterThan(Date.now() + 23 * 3600_000);
      expect(expires).toBeLessThan(Date.now() + 25 * 3600_000);
      tokens.push(res.body.jwt_token);
      expect((await t.http().get('/me').set(bearer(res.body.jwt_token))).status).toBe(204);
    }
    expect(new Set(tokens).size).toBe(4);
    const rows = await t.knex('user_tokens').where({ user_id: u.user.id, kind: 'login' });
    expect(rows).toHaveLength(4);
    expect(rows.every((r) => r.name.startsWith('login_jwt_'))).toBe(true);
  });

  it('sets last_login and last_seen', async () => {
    const u = await t.factory.user();
    const before = Date.now();
    await t.factory.login(u);
    const row = await t.knex('users').where({ id: u.user.id }).first();
    expect(row.last_login.getTime()).toBeGreaterThanOrEqual(before - 5);
    expect(row.last_seen.getTime()).toBe(row.last_login.getTime());
  });

  it('gives admins a 30-day token', async () => {
    const u = await t.factory.user({ admin: true });
    const res = await t.http().post('/login').send({ email: u.email, password: u.password });
    expect(res.status).toBe(200);
    expect(Date.parse(res.headers.expires)).toBeGreaterThan(Date.now() + 29 * 86_400_000);
  });

  it('answers unknown user, wrong password, unusable password and deactivated user with the same 401', async () => {
    const u = await t.factory.user();
    const noPassword = await t.factory.user({ password: null });
    const gone = await t.factory.user();
    await t.knex('users').where({ id: gone.user.id }).update({ deactivated: new Date() });
    const attempts = [
      { email: 'nobody@example.test', password: 'whatever-password' },
      { user_id: crypto.randomUUID(), password: 'whatever-password' },
      { user: crypto.randomUUID(), password: 'whatever-password' },
      { email: u.email, password: `${u.password}x` },
      { email: noPassword.email, password: 'whatever-password' },
      { email: gone.email, password: gone.password },
    ];
    const bodies = [];
    for (const body of attempts) {
      const res = await t.http().post('/login').send(body);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(res.body).toMatchObject({ error: 'Unauthorized', code: 'unauthenticated' });
      bodies.push({ ...res.body, request_id: undefined });
    }
    expect(new Set(bodies.map((b) => JSON.stringify(b))).size).toBe(1);
    expect(await t.knex('user_tokens').whereIn('user_id', [u.user.id, noPassword.user.id, gone.user.id])).toHaveLength(0);
  });

  it('spends a bcrypt comparison on unknown users too (same work as a wrong password)', async () => {
    const compare = jest.spyOn(require('bcrypt'), 'compare');
    await t.http().post('/login').send({ email: 'nobody-at-all@example.test', password: 'whatever-password' }).expect(401);
    expect(compare).toHaveBeenCalledTimes(1);
    compare.mockRestore();
  });

  it('answers an email that is not an email, and a v2 user that is neither a UUID nor an email, with 400 (as Conch validated them)', async () => {
    for (const body of [{ email: 'not-an-email' }, { email: 'a b@example.test' }, { user: 'not-an-identifier' }]) {
      const res = await t.http().post('/login').send({ ...body, password: 'whatever-password' });
      expect([res.status, res.body.code]).toEqual([400, 'validation_failed']);
    }
  });

  it('answers text that breaks the text rule with the ordinary 401, and a JSON body nested too deeply with 400', async () => {
    const u = await t.factory.user();
    const raw = async (body: string | Buffer) => rawRequest(t.app, { method: 'POST', path: '/login', headers: { 'Content-Type': 'application/json' }, body });
    for (const body of [
      JSON.stringify({ email: u.email, password: `${u.password}\u0000` }),
      JSON.stringify({ email: `${u.email}\u0000`, password: u.password }),
      `{"email": "${u.email}", "password": "${u.password}\\ud800"}`,
      Buffer.concat([Buffer.from(`{"email": "${u.email}", "password": "`), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
    ]) {
      const res = await raw(body);
      expect([res.status, res.body.code, res.headers['www-authenticate']]).toEqual([401, 'unauthenticated', 'Bearer']);
    }
    const deep = await raw(`{"email": "${u.email}", "password": "x", "set_session": ${'['.repeat(100)}${']'.repeat(100)}}`);
    expect([deep.status, deep.body.code]).toEqual([400, 'validation_failed']);
    expect(await t.knex('user_tokens').where({ user_id: u.user.id })).toHaveLength(0);
  });

  it('re-hashes a password made at another cost at the first successful login, and only then', async () => {
    const dearer = await createTestApp({ env: { BCRYPT_COST: '5' } });
    try {
      const u = await dearer.factory.user();
      const old = await require('bcrypt').hash(u.password, 4);
      await dearer.knex('users').where({ id: u.user.id }).update({ password_hash: old });
      await dearer.http().post('/login').send({ email: u.email, password: 'a wrong password' }).expect(401);
      expect((await dearer.knex('users').where({ id: u.user.id }).first()).password_hash).toBe(old);
      await dearer.http().post('/login').send({ email: u.email, password: u.password }).expect(200);
      const fresh = (await dearer.knex('users').where({ id: u.user.id }).first()).password_hash;
      expect(require('bcrypt').getRounds(fresh)).toBe(5);
      await dearer.http().post('/login').send({ email: u.email, password: u.password }).expect(200);
      expect((await dearer.knex('users').where({ id: u.user.id }).first()).password_hash).toBe(fresh);
    } finally {
      await dearer.close();
    }
  });

  it('rejects bodies that name no identifier or several', async () => {
    const u = await t.factory.user();
    for (const body of [{ password: u.password }, { email: u.email, user_id: u.user.id, password: u.password }, { email: u.email }]) {
      const res = await t.http().post('/login').send(body);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
  });

  it('sets an HttpOnly, SameSite=Strict session cookie with set_session, which then authenticates', async () => {
    const u = await t.factory.user();
    const agent = t.http();
    const res = await agent.post('/login').send({ email: u.email, password: u.password, set_session: true });
    expect(res.status).toBe(200);
    const cookie = String(res.headers['set-cookie']);
    expect(cookie).toMatch(/^account_session=/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Expires=/);
    expect(cookie).not.toMatch(/Secure/); // COOKIE_SECURE=0 in tests
    const me = await agent.get('/user/me');
    expect(me.status).toBe(200);
    expect(me.body.id).toBe(u.user.id);
    expect(me.headers['cache-control']).toBe('no-store');
  });

  it('marks the cookie Secure by default', async () => {
    const secure = await createTestApp({ env: { COOKIE_SECURE: '1' } });
    try {
      const u = await secure.factory.user();
      const res = await secure.http().post('/login').send({ email: u.email, password: u.password, set_session: true });
      expect(String(res.headers['set-cookie'])).toMatch(/; Secure/);
    } finally {
      await secure.close();
    }
  });
});

describe('token checks on every request', () => {
  it('refuses no token, garbage, alg none, a foreign key, and an expired JWT', async () => {
    const u = await t.factory.loggedIn();
    const claims = jwt.decode(u.jwt) as jwt.JwtPayload;
    const none = jwt.sign({ sub: claims.sub, jti: claims.jti }, '', { algorithm: 'none' });
    const foreign = jwt.sign({ sub: claims.sub, jti: claims.jti }, 'another-secret-another-secret-another-secret', { algorithm: 'HS256' });
    const hs512 = jwt.sign({ sub: claims.sub, jti: claims.jti }, JWT_SECRET, { algorithm: 'HS512' });
    const expired = jwt.sign({ sub: claims.sub, jti: claims.jti, exp: Math.floor(Date.now() / 1000) - 10 }, JWT_SECRET, { algorithm: 'HS256' });
    const otherUser = jwt.sign({ sub: crypto.randomUUID(), jti: claims.jti }, JWT_SECRET, { algorithm: 'HS256', expiresIn: 60 });
    const notUuid = jwt.sign({ sub: 'urn:uuid:x', jti: 'x' }, JWT_SECRET, { algorithm: 'HS256', expiresIn: 60 });
    for (const headers of [{}, bearer('garbage'), bearer(none), bearer(foreign), bearer(hs512), bearer(expired), bearer(otherUser), bearer(notUuid), { Authorization: `Basic ${u.jwt}` }]) {
      const res = await t.http().get('/user/me').set(headers);
      expect(res.status).toBe(401);
      expect(res.body.code).toBe('unauthenticated');
      expect(res.headers['www-authenticate']).toBe('Bearer');
    }
    expect((await t.http().get('/user/me').set(bearer(u.jwt))).status).toBe(200);
  });

  it('refuses a token whose row has expired even though the JWT has not', async () => {
    const u = await t.factory.loggedIn();
    const { jti } = jwt.decode(u.jwt) as jwt.JwtPayload;
    await t.knex('user_tokens').where({ id: jti }).update({ expires: new Date(Date.now() - 1000) });
    expect((await t.http().get('/me').set(bearer(u.jwt))).status).toBe(401);
  });

  it('verifies with every configured secret, signs with the first (rotation)', async () => {
    const rotated = await createTestApp({ env: { JWT_SECRET: `new-secret-new-secret-new-secret-new-secret,${JWT_SECRET}` } });
    try {
      const u = await rotated.factory.user();
      const old = jwt.sign({ sub: u.user.id }, JWT_SECRET, { algorithm: 'HS256', expiresIn: 3600 });
      expect((await rotated.http().get('/me').set(bearer(old))).status).toBe(401); // no jti: refused
      const row = await rotated.container.stores.tokens.insert({ userId: u.user.id, kind: 'login', name: 'login_jwt_old', scopes: ['api'], expires: new Date(Date.now() + 3600_000), userAgent: null });
      const signedWithOld = jwt.sign({ sub: u.user.id, jti: row.id }, JWT_SECRET, { algorithm: 'HS256', expiresIn: 3600 });
      expect((await rotated.http().get('/me').set(bearer(signedWithOld))).status).toBe(204);
      const fresh = await rotated.factory.login(u);
      expect(() => jwt.verify(fresh, 'new-secret-new-secret-new-secret-new-secret', { algorithms: ['HS256'] })).not.toThrow();
    } finally {
      await rotated.close();
    }
  });

  it('writes last_used, last_ipaddr and last_seen at most once a minute', async () => {
    const u = await t.factory.loggedIn();
    const { jti } = jwt.decode(u.jwt) as jwt.JwtPayload;
    const issued = await t.knex('user_tokens').where({ id: jti }).first();
    expect(issued.last_used).not.toBeNull(); // issuing a login token is its first use
    await t.http().get('/me').set(bearer(u.jwt)).expect(204);
    const first = await t.knex('user_tokens').where({ id: jti }).first();
    expect(first.last_used.getTime()).toBe(issued.last_used.getTime());
    expect(first.last_ipaddr).toMatch(/127\.0\.0\.1/);
    await t.http().get('/me').set(bearer(u.jwt)).expect(204);
    const second = await t.knex('user_tokens').where({ id: jti }).first();
    expect(second.last_used.getTime()).toBe(first.last_used.getTime());
    t.clock.advance(61_000);
    await t.http().get('/me').set(bearer(u.jwt)).expect(204);
    const third = await t.knex('user_tokens').where({ id: jti }).first();
    expect(third.last_used.getTime()).toBeGreaterThan(first.last_used.getTime() + 60_000);
    const user = await t.knex('users').where({ id: u.user.id }).first();
    expect(user.last_seen.getTime()).toBe(third.last_used.getTime());
  });

  it('writes last_used once, not once per request, when many requests present a token whose minute is up', async () => {
    const u = await t.factory.loggedIn();
    const { jti } = jwt.decode(u.jwt) as jwt.JwtPayload;
    t.clock.advance(61_000);
    const before = t.clock.now().getTime();
    let statuses: number[] = [];
    const statements = await captureQueries(t.knex, async () => {
      statuses = await Promise.all(Array.from({ length: 20 }, () => t.http().get('/me').set(bearer(u.jwt)).then((r) => r.status)));
    });
    expect(statuses).toEqual(Array(20).fill(204));
    // Not one write per request: while a token's write is under way the others leave it alone. A
    // request that read the row just before that write committed may still send one, which then
    // writes nothing (on PGlite, with its one connection, there is exactly one).
    const touches = statements.filter((sql) => /update user_tokens set last_used/.test(sql));
    expect(touches.length).toBeGreaterThanOrEqual(1);
    expect(touches.length).toBeLessThan(10);
    const row = await t.knex('user_tokens').where({ id: jti }).first();
    expect(row.last_used.getTime()).toBeGreaterThanOrEqual(before);
    expect(row.last_used.getTime()).toBeLessThanOrEqual(t.clock.now().getTime());
    const user = await t.knex('users').where({ id: u.user.id }).first();
    expect(user.last_seen.getTime()).toBe(row.last_used.getTime()); // token and user written together
  });

  it('trusts X-Forwarded-For only when TRUST_PROXY says so', async () => {
    const u = await t.factory.loggedIn();
    const { jti } = jwt.decode(u.jwt) as jwt.JwtPayload;
    t.clock.advance(61_000); // past the minute in which the login counts as the last use
    await t.http().get('/me').set(bearer(u.jwt)).set('X-Forwarded-For', '203.0.113.9').expect(204);
    const row = await t.knex('user_tokens').where({ id: jti }).first();
    expect(row.last_ipaddr).toMatch(/127\.0\.0\.1/);
    expect(row.last_used.getTime()).toBeGreaterThan(Date.now() + 30_000); // it did write
    const proxied = await createTestApp({ env: { TRUST_PROXY: '1' } });
    try {
      const p = await proxied.factory.loggedIn();
      const { jti: pj } = jwt.decode(p.jwt) as jwt.JwtPayload;
      proxied.clock.advance(61_000);
      await proxied.http().get('/me').set(bearer(p.jwt)).set('X-Forwarded-For', '203.0.113.9').expect(204);
      expect((await proxied.knex('user_tokens').where({ id: pj }).first()).last_ipaddr).toBe('203.0.113.9');
    } finally {
      await proxied.close();
    }
  });
});

describe('POST /logout', () => {
  it('ends the presented login token only; the next request with it is refused', async () => {
    const u = await t.factory.user();
    const a = await t.factory.login(u);
    const b = await t.factory.login(u);
    await t.http().post('/logout').set(bearer(a)).expect(204);
    expect((await t.http().get('/me').set(bearer(a))).status).toBe(401);
    expect((await t.http().get('/me').set(bearer(b))).status).toBe(204);
  });

  it('answers 204 without a token or with a bad one', async () => {
    expect((await t.http().post('/logout')).status).toBe(204);
    expect((await t.http().post('/logout').set(bearer('garbage'))).status).toBe(204);
  });

  it('ends the cookie session and clears the cookie', async () => {
    const u = await t.factory.user();
    const agent = t.http();
    await agent.post('/login').send({ email: u.email, password: u.password, set_session: true }).expect(200);
    // Without a sign that a script sent it (a cross-site form could have): refused, the session lives on.
    expect((await agent.post('/logout')).body).toMatchObject({ code: 'forbidden' });
    expect(await t.knex('user_tokens').where({ user_id: u.user.id })).toHaveLength(1);
    const res = await agent.post('/logout').set('X-Requested-With', 'fetch').expect(204);
    expect(String(res.headers['set-cookie'])).toMatch(/account_session=;.*Expires=Thu, 01 Jan 1970/);
    expect(await t.knex('user_tokens').where({ user_id: u.user.id })).toHaveLength(0);
  });

  it('leaves an API token alone', async () => {
    const u = await t.factory.user();
    const api = await t.factory.apiToken(u.user);
    await t.http().post('/logout').set(bearer(api)).expect(204);
    expect((await t.http().get('/me').set(bearer(api))).status).toBe(204);
  });
});

describe('POST /refresh_token', () => {
  it('expires the presented login token and returns a working new one', async () => {
    const u = await t.factory.loggedIn();
    const res = await t.http().post('/refresh_token').set(bearer(u.jwt));
    expect(res.status).toBe(200);
    expect(Object.keys(res.body)).toEqual(['jwt_token']);
    expect(res.headers.expires).toBeDefined();
    expect((await t.http().get('/me').set(bearer(u.jwt))).status).toBe(401);
    expect((await t.http().get('/me').set(bearer(res.body.jwt_token))).status).toBe(204);
    expect(await t.knex('user_tokens').where({ user_id: u.user.id })).toHaveLength(1);
  });

  it('swaps the token once when refreshed concurrently, in one statement', async () => {
    const u = await t.factory.loggedIn();
    const results = await Promise.all(Array.from({ length: 5 }, () => t.http().post('/refresh_token').set(bearer(u.jwt))));
    expect(results.map((r) => r.status).sort()).toEqual([200, 401, 401, 401, 401]);
    expect(await t.knex('user_tokens').where({ user_id: u.user.id })).toHaveLength(1);
    const next = results.find((r) => r.status === 200)!.body.jwt_token;
    const statements = await captureQueries(t.knex, () => t.http().post('/refresh_token').set(bearer(next)).expect(200));
    expect(statements).toHaveLength(2); // the token check, then the swap
  });

  it('renews the cookie when the cookie was used', async () => {
    const u = await t.factory.user();
    const agent = t.http();
    const login = await agent.post('/login').send({ email: u.email, password: u.password, set_session: true });
    expect((await agent.post('/refresh_token')).status).toBe(403); // the cookie alone, as a cross-site form would send it
    const res = await agent.post('/refresh_token').set('X-Requested-With', 'fetch').expect(200);
    const cookie = String(res.headers['set-cookie']);
    expect(cookie).toContain(`account_session=${res.body.jwt_token}`);
    expect((await t.http().get('/me').set(bearer(login.body.jwt_token))).status).toBe(401);
    expect((await agent.get('/me')).status).toBe(204);
  });

  it('refuses an API token with 403 and leaves it working', async () => {
    const u = await t.factory.user();
    const api = await t.factory.apiToken(u.user);
    const res = await t.http().post('/refresh_token').set(bearer(api));
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('forbidden');
    expect((await t.http().get('/me').set(bearer(api))).status).toBe(204);
  });

  it('needs a token', async () => {
    const res = await t.http().post('/refresh_token');
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('unauthenticated');
  });
});

describe('GET /me', () => {
  it('answers 204 when logged in and 401 otherwise', async () => {
    const u = await t.factory.loggedIn();
    const res = await t.http().get('/me').set(bearer(u.jwt));
    expect(res.status).toBe(204);
    expect(res.headers['cache-control']).toBe('no-store');
    expect((await t.http().get('/me')).status).toBe(401);
  });
});

describe('forced password change', () => {
  it('logs in with password_change_required and confines the login token', async () => {
    const u = await t.factory.user({ forcePasswordChange: true });
    const res = await t.http().post('/login').send({ email: u.email, password: u.password });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ jwt_token: expect.any(String), password_change_required: true });
    expect(res.headers.location).toBe('/user/me/password');
    const token = res.body.jwt_token;
    // Which operations such a token may call: test/http/policies.test.ts, from the policies.
    expect((await t.http().get('/user/me').set(bearer(token))).status).toBe(200);
    const name = await t.http().post('/user/me').set(bearer(token)).send({ first_name: 'X' });
    expect(name.status).toBe(401);
    expect((await t.knex('users').where({ id: u.user.id }).first()).first_name).toBeNull();
    await t.http().post('/logout').set(bearer(token)).expect(204);
    expect((await t.http().get('/user/me').set(bearer(token))).status).toBe(401);
  });

  it('exempts API tokens', async () => {
    const u = await t.factory.user({ forcePasswordChange: true });
    const api = await t.factory.apiToken(u.user);
    expect((await t.http().get('/me').set(bearer(api))).status).toBe(204);
  });
});

describe('authentication edge cases', () => {
  it('answers an anonymous request with a bad body 401, not 400', async () => {
    const res = await t.http().post('/user').send({ nonsense: true });
    expect([res.status, res.body.code]).toEqual([401, 'unauthenticated']);
  });

  it('answers unknown routes and unknown methods 404 before asking for a token', async () => {
    expect((await t.http().get('/no/such/route')).status).toBe(404);
    expect((await t.http().patch('/user/me')).status).toBe(404);
  });

  it('lets a present Authorization header decide over the cookie', async () => {
    const u = await t.factory.user();
    const agent = t.http();
    const login = await agent.post('/login').send({ email: u.email, password: u.password, set_session: true });
    expect((await agent.get('/me').set('Authorization', 'Bearer garbage')).status).toBe(401);
    expect((await agent.get('/me').set('Authorization', `Basic ${login.body.jwt_token}`)).status).toBe(401);
    expect((await agent.get('/me').set(bearer(login.body.jwt_token)).set('Cookie', 'account_session=garbage')).status).toBe(204);
    expect((await t.http().get('/me').set('Cookie', 'account_session=garbage')).status).toBe(401);
    expect((await t.http().get('/me').set('Cookie', 'account_session=')).status).toBe(401);
  });
});

describe('per-account login throttling', () => {
  let th: TestApp;
  beforeAll(async () => {
    th = await createTestApp({ env: { THROTTLE_ACCOUNT_FAILURES: '3' } });
  });
  afterAll(async () => {
    await th.close();
  });

  const attempt = (app: TestApp, email: string, password: string) => app.http().post('/login').send({ email, password });

  it('refuses an account with 429 and Retry-After after N failures in a row, for a doubling delay; others are unaffected', async () => {
    const u = await th.factory.user();
    const other = await th.factory.user();
    for (let i = 0; i < 3; i++) expect((await attempt(th, u.email, 'wrong-password')).status).toBe(401);
    // Blocked: even the right password, even by id, is refused without being checked.
    const blocked = await attempt(th, u.email.toUpperCase(), u.password);
    expect([blocked.status, blocked.body.code, blocked.headers['retry-after']]).toEqual([429, 'rate_limited', '1']);
    expect(blocked.headers['ratelimit-limit']).toBe('3');
    expect((await th.http().post('/login').send({ user_id: u.user.id, password: u.password })).status).toBe(429);
    expect((await attempt(th, other.email, other.password)).status).toBe(200);
    // Each failure after a delay doubles the next: 2 s, 4 s, ...
    th.clock.advance(1_000);
    expect((await attempt(th, u.email, 'wrong-password')).status).toBe(401);
    expect((await attempt(th, u.email, u.password)).headers['retry-after']).toBe('2');
    th.clock.advance(2_000);
    expect((await attempt(th, u.email, 'wrong-password')).status).toBe(401);
    expect((await attempt(th, u.email, u.password)).headers['retry-after']).toBe('4');
    // The right password after the delay works, and starts the count again.
    th.clock.advance(4_000);
    expect((await attempt(th, u.email, u.password)).status).toBe(200);
    expect(await th.knex('login_throttle').where({ key: `user:${u.user.id}` })).toHaveLength(0);
    for (let i = 0; i < 2; i++) expect((await attempt(th, u.email, 'wrong-password')).status).toBe(401);
    expect((await attempt(th, u.email, u.password)).status).toBe(200);
  });

  it('caps the delay at 15 minutes and forgets a run of failures a day after the last one', async () => {
    const u = await th.factory.user();
    await th.knex('login_throttle').insert({ key: `user:${u.user.id}`, failures: 40, last_failure: th.clock.now(), blocked_until: null });
    expect((await attempt(th, u.email, 'wrong-password')).status).toBe(401);
    expect((await attempt(th, u.email, u.password)).headers['retry-after']).toBe(String(15 * 60));
    th.clock.advance(25 * 3_600_000);
    expect((await attempt(th, u.email, 'wrong-password')).status).toBe(401);
    expect(await th.knex('login_throttle').where({ key: `user:${u.user.id}` }).first()).toMatchObject({ failures: 1, blocked_until: null });
    expect((await attempt(th, u.email, u.password)).status).toBe(200);
  });

  it('throttles an address without an account just the same (no enumeration)', async () => {
    const nobody = `nobody-${crypto.randomUUID()}@example.test`;
    for (let i = 0; i < 3; i++) expect((await attempt(th, nobody, 'wrong-password')).status).toBe(401);
    const res = await attempt(th, nobody, 'wrong-password');
    expect([res.status, res.headers['retry-after']]).toEqual([429, '1']);
  });

  it('does the same work for an unknown address as for a wrong password: the same statements', async () => {
    const u = await th.factory.user();
    const shape = async (email: string) =>
      (await captureQueries(th.knex, () => attempt(th, email, 'wrong-password').expect(401))).map((q) => q.replace(/\$\d+/g, '?'));
    expect(await shape(`nobody-${crypto.randomUUID()}@example.test`)).toEqual(await shape(u.email));
  });

  it('holds across instances: the count lives in the database', async () => {
    const one = await createTestApp({ env: { THROTTLE_ACCOUNT_FAILURES: '3' } });
    const two = await createTestApp({ env: { THROTTLE_ACCOUNT_FAILURES: '3' }, sameDatabaseAs: one });
    try {
      const u = await one.factory.user();
      expect((await attempt(one, u.email, 'wrong-password')).status).toBe(401);
      expect((await attempt(two, u.email, 'wrong-password')).status).toBe(401);
      expect((await attempt(one, u.email, 'wrong-password')).status).toBe(401);
      expect((await attempt(two, u.email, u.password)).status).toBe(429);
    } finally {
      await two.close();
      await one.close();
    }
  });

  it('is off with THROTTLE_ACCOUNT_FAILURES=0', async () => {
    const u = await t.factory.user();
    for (let i = 0; i < 12; i++) expect((await attempt(t, u.email, 'wrong-password')).status).toBe(401);
    expect((await attempt(t, u.email, u.password)).status).toBe(200);
  });
});

/**
 * Holds every password comparison of the given instances until `release()`, counting them: a
 * burst of logins then all meets the throttle before any is evaluated, as it does when bcrypt
 * takes 200 ms, and `evaluated` says how many got past it.
 */
function holdComparisons(...apps: TestApp[]) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const held = { evaluated: 0, release, restore: () => spies.forEach((spy) => spy.mockRestore()) };
  const spies = apps.map(({ container: { hasher } }) => {
    const verify = hasher.verify.bind(hasher);
    return jest.spyOn(hasher, 'verify').mockImplementation(async (password, hash) => {
      held.evaluated += 1;
      await released;
      return verify(password, hash);
    });
  });
  return held;
}

/** Polls `done` until it holds (a deadline, not a sleep). */
async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('per-account login throttling under concurrent attempts (two instances on one database)', () => {
  let one: TestApp;
  let two: TestApp;
  beforeAll(async () => {
    one = await createTestApp({ env: { THROTTLE_ACCOUNT_FAILURES: '10' } });
    two = await createTestApp({ env: { THROTTLE_ACCOUNT_FAILURES: '10' }, sameDatabaseAs: one });
  });
  afterAll(async () => {
    await two.close();
    await one.close();
  });
  // Each burst happens at one instant: on a slow machine the first delay (1 s) could otherwise
  // end while the burst is still arriving, and let one more attempt be evaluated, rightly.
  beforeEach(() => {
    const at = Date.now();
    for (const app of [one, two]) app.clock.stop(at);
  });
  afterEach(() => {
    for (const app of [one, two]) app.clock.resume();
  });

  const attempt = (app: TestApp, email: string, password: string) => app.http().post('/login').send({ email, password });
  const actions = async (userId: string) => (await one.knex('audit_log').where({ target_id: userId }).select('action')).map((r) => r.action).sort();

  /**
   * `n` wrong guesses at `email` sent at once, alternately to each instance, every one held at
   * bcrypt (or refused before it) until all have arrived: how many were evaluated, and the answers.
   */
  const burst = async (email: string, n: number) => {
    const held = holdComparisons(one, two);
    let refused = 0;
    const answers = Array.from({ length: n }, (_, i) =>
      attempt(i % 2 ? two : one, email, `wrong-password-${i}`).then((res) => {
        if (res.status === 429) refused += 1;
        return res;
      }),
    );
    await until(() => held.evaluated + refused === n, 'every guess to be refused or held at bcrypt');
    held.release();
    const statuses = (await Promise.all(answers)).map((res) => res.status);
    held.restore();
    return { evaluated: held.evaluated, statuses };
  };

  it('evaluates at most the limit of 48 wrong guesses sent at once: 10 get 401, 38 get 429 without a bcrypt comparison', async () => {
    const u = await one.factory.user();
    const { evaluated, statuses } = await burst(u.email, 48);
    expect(evaluated).toBe(10);
    expect([statuses.filter((s) => s === 401).length, statuses.filter((s) => s === 429).length]).toEqual([10, 38]);
    expect(await actions(u.user.id)).toEqual([...Array(10).fill('login.failed'), 'login.throttled']);
    const row = await one.knex('login_throttle').where({ key: `user:${u.user.id}` }).first();
    expect(row.failures).toBe(10);
    expect(row.blocked_until.getTime() - row.last_failure.getTime()).toBe(1_000);
  });

  it('evaluates at most the limit of 15 wrong guesses and the right password sent together: the right one is refused; after the delay it logs in and starts again', async () => {
    const u = await one.factory.user();
    const held = holdComparisons(one, two);
    let refused = 0;
    const tally = (req: ReturnType<typeof attempt>) =>
      req.then((res) => {
        if (res.status === 429) refused += 1;
        return res;
      });
    const wrong = Array.from({ length: 15 }, (_, i) => tally(attempt(i % 2 ? two : one, u.email, `wrong-password-${i}`)));
    await until(() => held.evaluated + refused === 15, 'the wrong guesses to be refused or held at bcrypt');
    // The right password arrives while the first ten guesses are still being evaluated.
    const right = tally(attempt(two, u.email, u.password));
    await until(() => held.evaluated + refused === 16, 'the right password to be refused or held at bcrypt');
    held.release();
    const statuses = (await Promise.all(wrong)).map((res) => res.status);
    const rightAnswer = await right;
    held.restore();
    expect(held.evaluated).toBe(10);
    expect([statuses.filter((s) => s === 401).length, statuses.filter((s) => s === 429).length]).toEqual([10, 5]);
    expect([rightAnswer.status, rightAnswer.body.code, rightAnswer.headers['retry-after']]).toEqual([429, 'rate_limited', '1']);
    expect(await one.knex('user_tokens').where({ user_id: u.user.id })).toHaveLength(0);
    expect(await actions(u.user.id)).toEqual([...Array(10).fill('login.failed'), 'login.throttled']);
    // After the delay (on both instances' clocks) the right password logs in and the count starts again.
    for (const app of [one, two]) app.clock.advance(1_000);
    expect((await attempt(one, u.email, u.password)).status).toBe(200);
    expect(await one.knex('login_throttle').where({ key: `user:${u.user.id}` })).toHaveLength(0);
    expect((await attempt(two, u.email, 'wrong-password')).status).toBe(401);
    expect(await one.knex('login_throttle').where({ key: `user:${u.user.id}` }).first()).toMatchObject({ failures: 1, blocked_until: null });
  });

  it('refuses a burst against an address nobody holds just the same (no enumeration)', async () => {
    const nobody = `nobody-${crypto.randomUUID()}@example.test`;
    const { evaluated, statuses } = await burst(nobody, 24);
    expect(evaluated).toBe(10);
    expect([statuses.filter((s) => s === 401).length, statuses.filter((s) => s === 429).length]).toEqual([10, 14]);
  });
});

describe('per-IP throttling shared by instances', () => {
  it('counts one limit across two instances on one database, on /login and /password/reset alike', async () => {
    const a = await createTestApp({ env: { THROTTLE_IP_PER_MINUTE: '4' } });
    const b = await createTestApp({ env: { THROTTLE_IP_PER_MINUTE: '4' }, sameDatabaseAs: a });
    try {
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await (i % 2 ? b : a).http().post('/login').send({ email: 'x@example.test', password: 'whatever-password' })).status);
      expect(statuses).toEqual([401, 401, 401, 401, 429]);
      const resets = [];
      for (let i = 0; i < 5; i++) resets.push((await (i % 2 ? a : b).http().post('/password/reset').send({ email: 'x@example.test' })).status);
      expect(resets).toEqual([202, 202, 202, 202, 429]);
    } finally {
      await b.close();
      await a.close();
    }
  });
});
