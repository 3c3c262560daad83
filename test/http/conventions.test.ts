import crypto from 'node:crypto';
import { loadApiSpec } from '../../src/api-spec';
import { PASSWORD_CHANGE_EXTENSION } from '../../src/http/authenticate';
import { countRows, createTestApp, type TestApp } from '../helpers/test-app';

let t: TestApp;
let admin: { jwt: string };
beforeAll(async () => {
  t = await createTestApp();
  admin = await t.factory.loggedIn({ admin: true });
});
afterAll(async () => {
  await t.close();
});

const auth = () => ({ Authorization: `Bearer ${admin.jwt}` });

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
    expect(publicOps.sort()).toEqual(['get /healthz', 'get /readyz', 'post /login', 'post /logout', 'post /password/reset', 'post /password/reset/confirm', 'post /_admin/api'].sort());
    for (const { op } of operations) {
      if (op.security !== undefined && (op.security as unknown[]).length > 0) throw new Error('operations use the global security');
    }
  });

  it('lets a forced-change token reach only GET /user/me and POST /user/me/password (and the public routes)', () => {
    const allowed = operations.filter(({ op }) => op[PASSWORD_CHANGE_EXTENSION] === true).map(({ method, path }) => `${method} ${path}`);
    expect(allowed.sort()).toEqual(['get /user/me', 'post /user/me/password']);
  });
});

describe('errors and bad input', () => {
  it('answers an unknown route, or a known path with an unknown method, with 404 Route Not Found', async () => {
    for (const res of [await t.http().get('/nope'), await t.http().put('/user/me').set(auth()).send({})]) {
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: 'Route Not Found', code: 'not_found', request_id: expect.any(String) });
    }
  });

  it('answers a body that is not JSON with 415 and changes nothing', async () => {
    const before = await countRows(t.knex, 'users');
    const res = await t.http().post('/user').set(auth()).set('Content-Type', 'text/plain').send('name=x');
    expect(res.status).toBe(415);
    expect(res.body.code).toBe('unsupported_media_type');
    const form = await t.http().post('/user').set(auth()).type('form').send({ name: 'x', email: 'x@example.test' });
    expect(form.status).toBe(415);
    expect(await countRows(t.knex, 'users')).toBe(before);
  });

  it('answers malformed JSON with 400 validation_failed', async () => {
    const res = await t.http().post('/user').set(auth()).set('Content-Type', 'application/json').send('{"name": ');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'validation_failed', details: [{ path: '/body', message: expect.any(String) }] });
  });

  it('answers unknown query parameters with 400', async () => {
    const res = await t.http().get('/user?bogus=1').set(auth());
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'validation_failed', details: [{ path: '/query/bogus' }] });
    expect((await t.http().get('/user/me?x=1').set(auth())).status).toBe(400);
  });

  it('answers flags other than 0 and 1 with 400', async () => {
    const before = await countRows(t.knex, 'users');
    const res = await t.http().post('/user?send_mail=yes').set(auth()).send({ name: 'flaggy', email: 'flaggy@example.test' });
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
      const res = await t.http().post('/user').set(auth()).send(body as object);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.details.map((d: { path: string }) => d.path)).toContain(path);
    }
    const array = await t.http().post('/user').set(auth()).send([1, 2]);
    expect(array.status).toBe(400);
    expect(await countRows(t.knex, 'users')).toBe(before);
  });

  it('answers a body on a route that takes none with 400', async () => {
    const res = await t.http().post('/refresh_token').set(auth()).send({ anything: 1 });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    const tokens = await countRows(t.knex, 'user_tokens');
    expect((await t.http().delete('/user/someone@example.test').set(auth()).send({ x: 1 })).status).toBe(400);
    expect(await countRows(t.knex, 'user_tokens')).toBe(tokens);
  });

  it('answers an oversized body with 413', async () => {
    const small = await createTestApp({ env: { BODY_LIMIT: '1kb' } });
    try {
      const a = await small.factory.loggedIn({ admin: true });
      const res = await small.http().post('/user').set('Authorization', `Bearer ${a.jwt}`).send({ name: 'x'.repeat(2000), email: 'big@example.test' });
      expect(res.status).toBe(413);
      expect(res.body.code).toBe('payload_too_large');
      expect(await small.knex('users').where({ email: 'big@example.test' })).toHaveLength(0);
    } finally {
      await small.close();
    }
  });

  it('answers malformed and urn:uuid identifiers with 400 naming them, never 500', async () => {
    for (const raw of ['urn:uuid:6f1c2a1e-3b4d-4c5e-8f70-9a1b2c3d4e5f', 'not-a-user', '6f1c2a1e3b4d4c5e8f709a1b2c3d4e5f', 'email=nope']) {
      const res = await t.http().get(`/user/${encodeURIComponent(raw)}`).set(auth());
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: `invalid identifier format for ${raw}`, code: 'validation_failed' });
    }
  });

  it('answers a path segment that is not valid percent-encoding with 400, and matches path parameters by route', async () => {
    const bad = await t.http().get('/user/%E0%A4%A').set(auth());
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ code: 'validation_failed', request_id: expect.any(String) });
    // The same route table serves every request: a later lookup of another route still matches.
    const token = await t.http().get(`/user/me/token/${encodeURIComponent('a/b 🚀')}`).set(auth());
    expect(token.status).toBe(404);
    expect(token.body.code).toBe('not_found');
    expect(token.body.error).not.toBe('Route Not Found');
  });

  it('never answers 500 to a bad cursor or odd pagination', async () => {
    for (const q of ['cursor=xyz', `cursor=${Buffer.from('["a","b"]').toString('base64url')}`, 'limit=0', 'limit=1001', 'limit=abc', 'is_admin=2']) {
      const res = await t.http().get(`/user?${q}`).set(auth());
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
      const res = await broken.http().get(`/user/${crypto.randomUUID()}`).set('Authorization', `Bearer ${a.jwt}`);
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: 'Internal Server Error', code: 'internal_error', request_id: res.headers['x-request-id'] });
    } finally {
      await broken.close();
    }
  });
});
