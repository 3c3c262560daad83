import http from 'node:http';
import zlib from 'node:zlib';
import { loadApiSpec } from '../../src/api-spec';
import { RouteTable, type Spec } from '../../src/http/route-table';
import { countRows, createTestApp, type TestApp, type TestUser } from '../helpers/test-app';
import { partialRequest } from '../helpers/partial-request';

// No work for strangers (issue 18 item 2): a body is read only once the caller is accepted, up to
// the operation's limit, never inflated; what is refused is refused before the body is sent.

let t: TestApp;
let user: TestUser & { jwt: string };
beforeAll(async () => {
  t = await createTestApp();
  user = await t.factory.loggedIn();
});
afterAll(async () => {
  await t.close();
});

const FIVE_MB = 5_000_000;
/** The first kilobyte of a 5 MB JSON body; the rest is never sent. */
const START = `{"k": "${'a'.repeat(1000)}`;
/** A small gzip that inflates to 5 MB of JSON (a string of spaces: valid JSON once inflated). */
const BOMB = zlib.gzipSync(Buffer.concat([Buffer.from('{"k": "'), Buffer.alloc(FIVE_MB, 0x20), Buffer.from('"}')]), { level: 9 });
/** A POST whose body is sent in chunks, with no Content-Length: only reading it tells its size. */
function chunked(path: string, body: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${t.baseUrl}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    for (let i = 0; i < body.length; i += 4096) req.write(body.slice(i, i + 4096));
    req.end();
  });
}
const settingsOf = (u: TestUser) => t.knex('user_settings').where({ user_id: u.user.id });

const spec = loadApiSpec() as unknown as Spec;
const withBodyAndToken = new RouteTable(spec).operations.filter((o) => o.body !== 'none' && o.accepts !== undefined);
const pathOf = (path: string) => path.replace(/\{(\w+)\}/g, (_m, name: string) => (name === 'user' ? user.user.id : `p-${name}`));

describe('a caller without a valid token', () => {
  it('covers every operation that takes a body and needs a token', () => {
    expect(withBodyAndToken.length).toBeGreaterThan(10);
  });

  it.each(withBodyAndToken.map((o) => [`${o.method} ${o.path}`, o] as const))(
    'gets 401 from %s before the 5 MB body it announces is sent, and the connection closes',
    async (_name, operation) => {
      for (const credential of [{}, { Authorization: 'Bearer not.a.token' }] as Record<string, string>[]) {
        const res = await partialRequest(t.baseUrl, {
          method: operation.method,
          path: pathOf(operation.path),
          headers: { 'Content-Type': 'application/json', 'Content-Length': String(FIVE_MB), ...credential },
          send: START,
        });
        expect(res.status).toBe(401);
        expect(res.body).toMatchObject({ code: 'unauthenticated' });
        expect(res.headers.connection).toBe('close');
        await res.closed;
      }
    },
  );

  it('is never asked for its body when it expects 100-continue; a caller with a token is, and is served', async () => {
    const body = JSON.stringify({ theme: 'dark' });
    const stranger = await partialRequest(t.baseUrl, {
      method: 'POST',
      path: '/user/me/settings',
      headers: { 'Content-Type': 'application/json', 'Content-Length': String(FIVE_MB), Expect: '100-continue' },
    });
    expect([stranger.status, stranger.continued]).toEqual([401, false]);
    await stranger.closed;

    const owner = await partialRequest(t.baseUrl, {
      method: 'POST',
      path: '/user/me/settings',
      headers: { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), Expect: '100-continue', Authorization: `Bearer ${user.jwt}` },
      onContinue: body,
    });
    expect([owner.status, owner.continued]).toEqual([204, true]);
    expect(await settingsOf(user).select('key')).toEqual([{ key: 'theme' }]);

    // A body over the limit is refused before it is asked for, from a caller with a token too.
    const tooBig = await partialRequest(t.baseUrl, {
      method: 'POST',
      path: '/user/me/settings/theme',
      headers: { 'Content-Type': 'application/json', 'Content-Length': String(FIVE_MB), Expect: '100-continue', Authorization: `Bearer ${user.jwt}` },
    });
    expect([tooBig.status, tooBig.body.code, tooBig.continued]).toEqual([413, 'payload_too_large', false]);
    await tooBig.closed;
  });

  it('gets 401 for a gzip bomb before it is sent whole (so before anything could inflate it)', async () => {
    const res = await partialRequest(t.baseUrl, {
      method: 'POST',
      path: '/user/me/settings',
      headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', 'Content-Length': String(BOMB.length) },
      send: BOMB.subarray(0, BOMB.length >> 1),
    });
    expect(res.status).toBe(401);
    await res.closed;
  });
});

describe('Content-Encoding', () => {
  it('is refused with 415 on a public operation before the body is sent whole (nothing inflated), and nothing is done', async () => {
    const jobs = await countRows(t.knex, 'background_jobs');
    for (const path of ['/login', '/password/reset', '/_admin/api']) {
      const res = await partialRequest(t.baseUrl, {
        method: 'POST',
        path,
        headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', 'Content-Length': String(BOMB.length) },
        send: BOMB.subarray(0, BOMB.length >> 1),
      });
      expect([path, res.status, res.body.code]).toEqual([path, 415, 'unsupported_media_type']);
      expect(res.headers.connection).toBe('close');
      await res.closed;
    }
    expect(await countRows(t.knex, 'background_jobs')).toBe(jobs);
  });

  it('is refused with 415 whole too: a gzip of a valid password reset request queues nothing', async () => {
    const u = await t.factory.user();
    const jobs = await countRows(t.knex, 'background_jobs');
    const res = await t.http().post('/password/reset').set('Content-Type', 'application/json').set('Content-Encoding', 'gzip').send(zlib.gzipSync(JSON.stringify({ email: u.email })));
    expect([res.status, res.body.code]).toEqual([415, 'unsupported_media_type']);
    expect(await countRows(t.knex, 'background_jobs')).toBe(jobs);
  });

  it('is refused with 415 from a caller with a token too, and nothing changes; identity is accepted', async () => {
    const body = zlib.gzipSync(JSON.stringify({ zipped: true }));
    const res = await t.http().post('/user/me/settings').set('Authorization', `Bearer ${user.jwt}`).set('Content-Type', 'application/json').set('Content-Encoding', 'gzip').send(body);
    expect(res.status).toBe(415);
    expect(res.body).toMatchObject({ code: 'unsupported_media_type', error: expect.stringContaining('Content-Encoding') });
    expect(await settingsOf(user).where({ key: 'zipped' })).toHaveLength(0);

    const plain = await t.http().post('/user/me/settings/identity').set('Authorization', `Bearer ${user.jwt}`).set('Content-Encoding', 'identity').send({ identity: 1 });
    expect(plain.status).toBe(204);
    expect(await settingsOf(user).where({ key: 'identity' })).toHaveLength(1);
  });
});

describe('body limits', () => {
  it('answers a public operation announcing more than its 16 kB with 413 before the body is sent', async () => {
    for (const path of ['/login', '/password/reset', '/password/reset/confirm', '/user/me/email/confirm']) {
      const res = await partialRequest(t.baseUrl, { method: 'POST', path, headers: { 'Content-Type': 'application/json', 'Content-Length': String(FIVE_MB) }, send: START });
      expect([path, res.status, res.body.code]).toEqual([path, 413, 'payload_too_large']);
      expect(res.headers.connection).toBe('close');
      await res.closed;
    }
  });

  it('cuts a chunked body at a public operation\'s limit: a login padded past 16 kB is 413 and logs nobody in', async () => {
    const u = await t.factory.user();
    const padded = `{"email": ${JSON.stringify(u.email)},${' '.repeat(20_000)}"password": ${JSON.stringify(u.password)}}`;
    const tokens = await countRows(t.knex, 'user_tokens');
    const res = await chunked('/login', padded);
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ code: 'payload_too_large', error: 'request body too large: at most 16384 bytes here' });
    expect(await countRows(t.knex, 'user_tokens')).toBe(tokens);
    // The same login, unpadded, works.
    expect((await t.http().post('/login').send({ email: u.email, password: u.password })).status).toBe(200);
  });

  it('answers a chunked body that keeps coming with 413 as soon as it passes the limit, without waiting for its end', async () => {
    for (const [path, auth] of [['/login', {}], ['/user/me', { Authorization: `Bearer ${user.jwt}` }]] as [string, Record<string, string>][]) {
      // No Content-Length: the body goes in chunks, and this one never ends.
      const res = await partialRequest(t.baseUrl, { method: 'POST', path, headers: { 'Content-Type': 'application/json', ...auth }, send: `{"email": "${'a'.repeat(70_000)}` });
      expect([path, res.status, res.body.code]).toEqual([path, 413, 'payload_too_large']);
      expect(res.headers.connection).toBe('close');
      await res.closed;
    }
  });

  it('answers JSON-RPC past its 64 kB with 413, and serves it below', async () => {
    const big = await t.http().post('/_admin/api').set('Content-Type', 'text/plain').send(JSON.stringify({ id: 1, auth_token: 'x', method: 'get_users', args: { pad: 'x'.repeat(70_000) } }));
    expect(big.status).toBe(413);
    expect(big.body.code).toBe('payload_too_large');
    const ok = await t.http().post('/_admin/api').set('Content-Type', 'text/plain').send(JSON.stringify({ id: 2, auth_token: 'not a token', method: 'get_users', args: {} }));
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ id: 2, result: null, error: 'Invalid API KEY' });
  });

  it('answers a caller with a token announcing more than BODY_LIMIT (64 kB) with 413 before the body is sent, and changes nothing', async () => {
    const res = await partialRequest(t.baseUrl, {
      method: 'POST',
      path: '/user/me',
      headers: { 'Content-Type': 'application/json', 'Content-Length': String(100_000), Authorization: `Bearer ${user.jwt}` },
      send: '{"first_name": "',
    });
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('request body too large: at most 65536 bytes here');
    await res.closed;
    expect((await t.knex('users').where({ id: user.user.id }).first()).first_name).toBeNull();
  });

  it('takes the largest legitimate body: 256 settings of 16 KiB under keys of 128 characters, replaced at once', async () => {
    const owner = await t.factory.loggedIn();
    const value = 'é'.repeat((16 * 1024 - 2) / 2); // 16 KiB of JSON with its quotes
    const settings = Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`${String(i).padStart(3, '0')}${'🔑'.repeat(125)}`, value]));
    const body = JSON.stringify(settings);
    expect(Buffer.byteLength(body)).toBeGreaterThan(4_300_000);
    const res = await t.http().post('/user/me/settings').set('Authorization', `Bearer ${owner.jwt}`).set('Content-Type', 'application/json').send(body);
    expect(res.status).toBe(204);
    expect(Number((await settingsOf(owner).count({ n: '*' }))[0].n)).toBe(256);
  });
});

describe('the route table', () => {
  it('fails closed on x-body-limit: a public operation with a body must declare one, and it must be a size', () => {
    const without = structuredClone(spec) as Spec & { paths: Record<string, Record<string, Record<string, unknown>>> };
    delete without.paths['/login'].post['x-body-limit'];
    expect(() => new RouteTable(without)).toThrow('POST /login: a public operation that takes a body declares its x-body-limit');
    const malformed = structuredClone(spec) as typeof without;
    malformed.paths['/login'].post['x-body-limit'] = 'lots';
    expect(() => new RouteTable(malformed)).toThrow('POST /login: x-body-limit must be a size such as 16kb or 5mb');
    const bodiless = structuredClone(spec) as typeof without;
    bodiless.paths['/logout'].post['x-body-limit'] = '1kb';
    expect(() => new RouteTable(bodiless)).toThrow('POST /logout: x-body-limit on an operation without a request body');
  });
});
