import { loadConfig } from '../../src/config';
import { bearer, createTestApp, testAppWithAdmin, type TestApp } from '../helpers/test-app';

const ALLOWED = 'https://app.example.test';

describe('security headers', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it.each([
    ['an authenticated answer', 200, async () => t.http().get('/user/me').set(bearer((await t.factory.loggedIn()).jwt))],
    ['an error', 404, async () => t.http().get('/no/such/route')],
    ['a public answer', 200, async () => t.http().get('/healthz')],
  ])('are on %s: a strict CSP (no inline script or style, no frames) and helmet’s others', async (_what, status, send) => {
    const res = await send();
    expect(res.status).toBe(status);
    const csp = String(res.headers['content-security-policy']);
    expect(csp.split(';').map((d) => d.trim())).toEqual(
      expect.arrayContaining(["default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"]),
    );
    expect(csp).not.toContain('unsafe');
    expect(res.headers).toMatchObject({
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'SAMEORIGIN',
      'referrer-policy': 'no-referrer',
      'cross-origin-opener-policy': 'same-origin',
    });
    expect(res.headers['strict-transport-security']).toMatch(/^max-age=\d+/);
    expect(res.headers['cross-origin-resource-policy']).toBe('same-origin');
    // helmet's headers for browsers and plug-ins long gone are left out (each costs every answer).
    for (const gone of ['x-download-options', 'x-permitted-cross-domain-policies', 'x-xss-protection', 'x-dns-prefetch-control', 'origin-agent-cluster']) {
      expect(res.headers[gone]).toBeUndefined();
    }
    expect(res.headers['access-control-allow-origin']).toBeUndefined(); // no CORS unless CORS_ORIGINS says so
  });

  it('without CORS_ORIGINS a preflight is an unknown route, with no CORS header', async () => {
    const res = await t.http().options('/user/me').set('Origin', ALLOWED).set('Access-Control-Request-Method', 'POST');
    expect(res.status).toBe(404);
    expect(Object.keys(res.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
  });
});

describe('CORS with CORS_ORIGINS', () => {
  const { t, admin } = testAppWithAdmin({ env: { CORS_ORIGINS: `${ALLOWED}, http://localhost:5173` } });

  it('answers a preflight from an allowed origin with its origin, credentials, methods and headers', async () => {
    const res = await t.http().options('/user/me').set('Origin', ALLOWED).set('Access-Control-Request-Method', 'POST').set('Access-Control-Request-Headers', 'content-type, authorization');
    expect(res.status).toBe(204);
    expect(res.headers).toMatchObject({
      'access-control-allow-origin': ALLOWED,
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'GET,HEAD,POST,PUT,DELETE',
      'access-control-allow-headers': 'Authorization,Content-Type,X-Requested-With,X-Request-Id',
      'access-control-max-age': '600',
    });
    expect(String(res.headers.vary)).toContain('Origin');
  });

  it('gives a preflight from another origin no CORS header, nor a look-alike of an allowed one', async () => {
    for (const origin of ['https://evil.example.test', `${ALLOWED}.evil.test`, 'http://app.example.test', `${ALLOWED}/`]) {
      const res = await t.http().options('/user/me').set('Origin', origin).set('Access-Control-Request-Method', 'POST');
      expect([origin, res.headers['access-control-allow-origin'], res.headers['access-control-allow-credentials']]).toEqual([origin, undefined, undefined]);
    }
  });

  it('lets an allowed origin read an answer and its Link and X-Request-Id headers; another origin gets no CORS header', async () => {
    await t.factory.user();
    await t.factory.user();
    const res = await t.http().get('/user?limit=1').set('Origin', ALLOWED).set(bearer(admin.jwt)).expect(200);
    expect(res.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(String(res.headers['access-control-expose-headers']).split(',')).toEqual(expect.arrayContaining(['Link', 'X-Request-Id']));
    expect(res.headers.link).toBeDefined();
    const other = await t.http().get('/user?limit=1').set('Origin', 'https://evil.example.test').set(bearer(admin.jwt)).expect(200);
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('takes exact origins only: a bad CORS_ORIGINS stops start-up, naming it', () => {
    expect(loadConfig({ CORS_ORIGINS: ` ${ALLOWED} ,http://localhost:5173` }).corsOrigins).toEqual([ALLOWED, 'http://localhost:5173']);
    for (const bad of [`${ALLOWED}/`, `${ALLOWED}/path`, 'app.example.test', 'ftp://app.example.test', '*']) {
      expect(() => loadConfig({ CORS_ORIGINS: bad })).toThrow(`CORS_ORIGINS: "${bad}" is not an origin`);
    }
  });
});

describe('the session cookie and cross-site forms', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('is SameSite=Strict and HttpOnly', async () => {
    const u = await t.factory.user();
    const res = await t.http().post('/login').send({ email: u.email, password: u.password, set_session: true }).expect(200);
    expect(String(res.headers['set-cookie'])).toMatch(/^account_session=[^;]+;.*HttpOnly.*SameSite=Strict/);
  });

  it('refuses, changing nothing, a change signed in by the cookie alone as a form would send it; JSON or X-Requested-With pass; reads need neither', async () => {
    const u = await t.factory.user();
    const agent = t.http();
    await agent.post('/login').send({ email: u.email, password: u.password, set_session: true }).expect(200);
    const form = await agent.post('/user/me').type('form').send('first_name=Mallory');
    expect([form.status, form.body.code]).toEqual([403, 'forbidden']);
    const plain = await agent.post('/user/me').set('Content-Type', 'text/plain').send('{"first_name":"Mallory"}');
    expect([plain.status, plain.body.code]).toEqual([403, 'forbidden']);
    const bare = await agent.post('/user/me/token').set('Content-Length', '0');
    expect([bare.status, bare.body.code]).toEqual([403, 'forbidden']);
    expect((await t.knex('users').where({ id: u.user.id }).first()).first_name).toBeNull();

    await agent.post('/user/me?send_mail=0').send({ first_name: 'Ada' }).expect(200);
    expect((await t.knex('users').where({ id: u.user.id }).first()).first_name).toBe('Ada');
    await agent.get('/user/me').expect(200);
    await agent.delete('/user/me/token/nonexistent').set('X-Requested-With', 'fetch').expect(404);
  });

  it('leaves bearer tokens alone: no browser sends one by itself', async () => {
    const u = await t.factory.loggedIn();
    await t.http().post('/logout').set(bearer(u.jwt)).expect(204);
  });
});
