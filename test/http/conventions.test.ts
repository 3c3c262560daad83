import crypto from 'node:crypto';
import { loadApiSpec } from '../../src/api-spec';
import { bearer, countRows, createTestApp, rawRequest, testAppWithAdmin } from '../helpers/test-app';

const { t, admin } = testAppWithAdmin();

describe('openapi.yaml', () => {
  type Operation = { security?: unknown[]; [key: string]: unknown };
  const spec = loadApiSpec() as { security: unknown[]; paths: Record<string, Record<string, Operation>> };
  const operations = Object.entries(spec.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => ['get', 'post', 'put', 'delete', 'patch'].includes(method))
      .map(([method, op]) => ({ path, method, op })),
  );

  it('authenticates every operation unless it opts out (fail closed)', () => {
    expect(spec.security).toEqual([{ bearerAuth: [] }, { cookieAuth: [] }]);
    const publicOps = operations.filter(({ op }) => Array.isArray(op.security) && op.security.length === 0).map(({ method, path }) => `${method} ${path}`);
    expect(publicOps.sort()).toEqual(['get /healthz', 'get /readyz', 'get /metrics', 'get /openapi.json', 'get /openapi.yaml', 'post /login', 'post /login/passkey', 'post /login/passkey/options', 'post /logout', 'post /password/reset', 'post /password/reset/confirm', 'post /register', 'post /register/verify', 'post /user/me/email/confirm', 'post /user/me/email/revert', 'post /_admin/api'].sort());
    for (const { op } of operations) {
      if (op.security !== undefined && (op.security as unknown[]).length > 0) throw new Error('operations use the global security');
    }
  });

  it('lets a forced-change token reach only GET /user/me and POST /user/me/password, and finish a two-factor login (and the public routes)', () => {
    const allowed = operations.filter(({ op }) => (op['x-policy'] as { during_password_change?: boolean }).during_password_change === true).map(({ method, path }) => `${method} ${path}`);
    expect(allowed.sort()).toEqual(['get /user/me', 'post /login/mfa', 'post /login/mfa/options', 'post /user/me/password']);
  });
});

describe('errors and bad input', () => {
  it('answers an unknown route, or a known path with an unknown method, with 404 Route Not Found', async () => {
    for (const res of [await t.http().get('/nope'), await t.http().put('/user/me').set(bearer(admin.jwt)).send({})]) {
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: 'Route Not Found', code: 'not_found', request_id: expect.any(String) });
    }
  });

  it('answers a body that is not JSON with 415 and changes nothing', async () => {
    const before = await countRows(t.knex, 'users');
    const res = await t.http().post('/user').set(bearer(admin.jwt)).set('Content-Type', 'text/plain').send('name=x');
    expect(res.status).toBe(415);
    expect(res.body.code).toBe('unsupported_media_type');
    const form = await t.http().post('/user').set(bearer(admin.jwt)).type('form').send({ name: 'x', email: 'x@example.test' });
    expect(form.status).toBe(415);
    expect(await countRows(t.knex, 'users')).toBe(before);
  });

  it('answers malformed JSON with 400 validation_failed', async () => {
    const res = await t.http().post('/user').set(bearer(admin.jwt)).set('Content-Type', 'application/json').send('{"name": ');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'validation_failed', details: [{ path: '/body', message: expect.any(String) }] });
  });

  it('answers unknown query parameters with 400', async () => {
    const res = await t.http().get('/user?bogus=1').set(bearer(admin.jwt));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'validation_failed', details: [{ path: '/query/bogus' }] });
    expect((await t.http().get('/user/me?x=1').set(bearer(admin.jwt))).status).toBe(400);
  });

  it('answers flags other than 0 and 1 with 400', async () => {
    const before = await countRows(t.knex, 'users');
    const res = await t.http().post('/user?send_mail=yes').set(bearer(admin.jwt)).send({ name: 'flaggy', email: 'flaggy@example.test' });
    expect(res.status).toBe(400);
    expect(await countRows(t.knex, 'users')).toBe(before);
  });

  it('answers missing, extra and mistyped body fields with 400 and the failing paths', async () => {
    const before = await countRows(t.knex, 'users');
    const cases: [unknown, string][] = [
      [{ email: 'a@example.test' }, '/body/name'],
      [{ name: 'a', email: 'a@example.test', admin: true }, '/body/admin'],
      [{ name: 'a', email: 'not-an-email' }, '/body/email'],
      [{ name: 5, email: 'a@example.test' }, '/body/name'],
      [{ name: ' padded ', email: 'a@example.test' }, '/body/name'],
      [{ name: 'a', email: 'a@example.test', is_admin: 'yes' }, '/body/is_admin'],
    ];
    for (const [body, path] of cases) {
      const res = await t.http().post('/user').set(bearer(admin.jwt)).send(body as object);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.details.map((d: { path: string }) => d.path)).toContain(path);
    }
    const array = await t.http().post('/user').set(bearer(admin.jwt)).send([1, 2]);
    expect(array.status).toBe(400);
    expect(await countRows(t.knex, 'users')).toBe(before);
  });

  it('answers a body on a route that takes none with 400', async () => {
    const res = await t.http().post('/refresh_token').set(bearer(admin.jwt)).send({ anything: 1 });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    const tokens = await countRows(t.knex, 'user_tokens');
    expect((await t.http().delete('/user/someone@example.test').set(bearer(admin.jwt)).send({ x: 1 })).status).toBe(400);
    expect(await countRows(t.knex, 'user_tokens')).toBe(tokens);
  });

  it('answers an oversized body with 413', async () => {
    const small = await createTestApp({ env: { BODY_LIMIT: '1kb' } });
    try {
      const a = await small.factory.loggedIn({ admin: true });
      const res = await small.http().post('/user').set(bearer(a.jwt)).send({ name: 'x'.repeat(2000), email: 'big@example.test' });
      expect(res.status).toBe(413);
      expect(res.body.code).toBe('payload_too_large');
      expect(await small.knex('users').where({ email: 'big@example.test' })).toHaveLength(0);
    } finally {
      await small.close();
    }
  });

  it('answers malformed and urn:uuid identifiers with 400 naming them, never 500', async () => {
    for (const raw of ['urn:uuid:6f1c2a1e-3b4d-4c5e-8f70-9a1b2c3d4e5f', 'not-a-user', '6f1c2a1e3b4d4c5e8f709a1b2c3d4e5f', 'email=nope']) {
      const res = await t.http().get(`/user/${encodeURIComponent(raw)}`).set(bearer(admin.jwt));
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: `invalid identifier format for ${raw}`, code: 'validation_failed' });
    }
  });

  it('answers a path segment that is not valid percent-encoding with 400, and matches path parameters by route', async () => {
    const bad = await t.http().get('/user/%E0%A4%A').set(bearer(admin.jwt));
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ code: 'validation_failed', request_id: expect.any(String) });
    // The same route table serves every request: a later lookup of another route still matches.
    const token = await t.http().get(`/user/me/token/${encodeURIComponent('a/b 🚀')}`).set(bearer(admin.jwt));
    expect(token.status).toBe(404);
    expect(token.body.code).toBe('not_found');
    expect(token.body.error).not.toBe('Route Not Found');
  });

  it('never answers 500 to a bad cursor or odd pagination', async () => {
    for (const q of ['cursor=xyz', `cursor=${Buffer.from('["a","b"]').toString('base64url')}`, 'limit=0', 'limit=1001', 'limit=abc', 'is_admin=2']) {
      const res = await t.http().get(`/user?${q}`).set(bearer(admin.jwt));
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
  });
});

describe('headers', () => {
  it('keeps a sane incoming X-Request-Id and replaces an insane one', async () => {
    const kept = await t.http().get('/healthz').set('X-Request-Id', 'abc-123.x:y_z');
    expect(kept.headers['x-request-id']).toBe('abc-123.x:y_z');
    const replaced = await t.http().get('/nope').set('X-Request-Id', 'bad id with spaces <script>');
    expect(replaced.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(replaced.body.request_id).toBe(replaced.headers['x-request-id']);
  });

  it('sends no Cache-Control: no-store on public routes, and no X-Powered-By', async () => {
    const res = await t.http().get('/healthz');
    expect(res.headers['cache-control']).toBeUndefined();
    expect(res.headers['x-powered-by']).toBeUndefined();
  });
});

describe('probes', () => {
  it('GET /healthz and GET /readyz answer ok', async () => {
    expect((await t.http().get('/healthz')).body).toEqual({ status: 'ok' });
    expect((await t.http().get('/readyz')).body).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers 503 when the database is gone', async () => {
    const doomed = await createTestApp();
    await doomed.container.stop();
    await doomed.knex.destroy();
    try {
      const res = await doomed.http().get('/readyz');
      expect(res.status).toBe(503);
      expect(res.body.code).toBe('unavailable');
    } finally {
      await doomed.close().catch(() => undefined);
    }
  });
});

describe('500s', () => {
  it('hide internals and carry the request id', async () => {
    const broken = await createTestApp();
    try {
      const a = await broken.factory.loggedIn({ admin: true });
      await broken.knex.raw('alter table users rename column first_name to given_name');
      const res = await broken.http().get(`/user/${crypto.randomUUID()}`).set(bearer(a.jwt));
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: 'Internal Server Error', code: 'internal_error', request_id: res.headers['x-request-id'] });
    } finally {
      await broken.close();
    }
  });
});

describe('the text rule (API.md §0)', () => {
  const json = (path: string, body: string | Buffer, method = 'POST') =>
    rawRequest(t.app, { method, path, headers: { 'Content-Type': 'application/json', ...bearer(admin.jwt) }, body });

  it('answers NUL, lone surrogates and bytes that are not UTF-8, anywhere, with 400 validation_failed and changes nothing', async () => {
    const tables = ['users', 'user_settings', 'user_groups', 'user_tokens'];
    const before = await Promise.all(tables.map((x) => countRows(t.knex, x)));
    const cases: [string, Promise<{ status: number; body: { code?: string; details?: { path: string }[] } }>][] = [
      ['NUL in a name', json('/user', JSON.stringify({ name: 'nul\u0000name', email: 'nul@example.test' }))],
      ['NUL in a group description', json('/user_group', JSON.stringify({ name: 'nul group', description: 'a\u0000b' }))],
      ['a lone surrogate in a settings value', json('/user/me/settings/theme', '{"theme": "dark\\ud800"}')],
      ['a lone surrogate in a settings key', json('/user/me/settings', '{"th\\udc00eme": "dark"}')],
      ['NUL in a token name', json('/user/me/token', JSON.stringify({ name: 'ci\u0000' }))],
      ['bytes that are not UTF-8', json('/user/me', Buffer.concat([Buffer.from('{"first_name": "'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]))],
      ['NUL in a path segment', rawRequest(t.app, { method: 'GET', path: '/user/me/settings/a%00b', headers: bearer(admin.jwt) })],
      ['NUL in a :user', rawRequest(t.app, { method: 'GET', path: '/user/a%00@example.test', headers: bearer(admin.jwt) })],
      ['NUL in a query value', rawRequest(t.app, { method: 'GET', path: '/user?q=a%00', headers: bearer(admin.jwt) })],
      ['a percent-encoding that is not UTF-8', rawRequest(t.app, { method: 'GET', path: '/user?q=a%c3%28', headers: bearer(admin.jwt) })],
    ];
    for (const [label, pending] of cases) {
      const res = await pending;
      expect([label, res.status, res.body.code]).toEqual([label, 400, 'validation_failed']);
      expect(res.body.details?.length).toBeGreaterThan(0);
    }
    expect(await Promise.all(tables.map((x) => countRows(t.knex, x)))).toEqual(before);
  });

  it('answers JSON nested deeper than 32 levels with 400, however deep, and takes 32', async () => {
    const nest = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);
    const deep = await json('/user/me/settings/nested', `{"nested": ${nest(10_000)}}`);
    expect([deep.status, deep.body.code]).toEqual([400, 'validation_failed']);
    const over = await json('/user/me/settings/nested', `{"nested": ${nest(32)}}`);
    expect(over.status).toBe(400);
    const limit = await json('/user/me/settings/nested', `{"nested": ${nest(31)}}`);
    expect(limit.status).toBe(204);
  });

  it('answers impossible dates with 400 (month 13, 30 February, hour 24, a leap second) and takes offsets', async () => {
    const year = new Date().getUTCFullYear() + 1;
    for (const expires of [`${year}-13-01T00:00:00Z`, `${year}-02-30T00:00:00Z`, `${year}-01-01T24:00:00Z`, `${year - 1}-12-31T23:59:60Z`, `${year}-01-01T00:00:00+24:00`]) {
      const res = await t.http().post('/user/me/token').set(bearer(admin.jwt)).send({ name: crypto.randomUUID(), expires });
      expect([expires, res.status, res.body.code]).toEqual([expires, 400, 'validation_failed']);
    }
    const soon = new Date(Date.now() + 10 * 86_400_000);
    soon.setUTCHours(0, 0, 0, 0);
    const local = `${soon.toISOString().slice(0, 10)}T02:00:00+02:00`;
    const res = await t.http().post('/user/me/token').set(bearer(admin.jwt)).send({ name: crypto.randomUUID(), expires: local });
    expect([res.status, res.body.expires]).toEqual([201, soon.toISOString()]);
  });
});

describe('HEAD', () => {
  it('is answered wherever GET is: the same status and headers, no body, a read for scopes', async () => {
    const owner = await t.factory.loggedIn();
    const reader = await t.factory.apiToken(owner.user, ['api:read']);
    for (const path of ['/user/me', '/user/me/settings', '/user/me/token', '/healthz']) {
      const get = await rawRequest(t.app, { method: 'GET', path, headers: bearer(reader) });
      const head = await rawRequest(t.app, { method: 'HEAD', path, headers: bearer(reader) });
      expect([path, head.status, head.body]).toEqual([path, get.status, undefined]);
      expect(head.headers['content-type']).toBe(get.headers['content-type']);
      expect(head.headers['content-length']).toBe(get.headers['content-length']);
    }
    expect((await rawRequest(t.app, { method: 'HEAD', path: '/user/me' })).status).toBe(401);
    expect((await rawRequest(t.app, { method: 'HEAD', path: '/login' })).status).toBe(404);
    expect((await rawRequest(t.app, { method: 'HEAD', path: '/user', headers: bearer(reader) })).status).toBe(403);
  });
});

describe('Cache-Control', () => {
  it('is no-store on every answer to an authenticated caller, a 400 and a 404 too', async () => {
    for (const res of [await t.http().get('/user?limit=0').set(bearer(admin.jwt)), await t.http().get('/user/me/settings/nothing-here').set(bearer(admin.jwt))]) {
      expect([res.status >= 400, res.headers['cache-control']]).toEqual([true, 'no-store']);
    }
  });
});
