import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as fc from 'fast-check';
import { ACCESS_DENIED } from '../../src/rpc/errors';
import { RPC_METHODS } from '../../src/rpc/methods';
import { bearer, countRows, rawRequest, testAppWithAdmin, unique, type TestUser } from '../helpers/test-app';

// RhodeCode's JSON-RPC at POST /_admin/api, checked against the REST view of the same data.

const logLines: string[] = [];
const { t, admin } = testAppWithAdmin({ env: { LOG_LEVEL: 'error' }, logDestination: { write: (line) => logLines.push(line) } });
let adminToken: string;
beforeAll(async () => {
  // An API token as a RhodeCode client would hold one: minted by POST /user/me/token.
  const minted = await t.http().post('/user/me/token').set(bearer(admin.jwt)).send({ name: 'rhodecode-client' });
  expect(minted.status).toBe(201);
  adminToken = minted.body.token;
});

interface Envelope {
  id: unknown;
  result: unknown;
  error: string | null;
}

/** One JSON-RPC call; every answer is HTTP 200 with the envelope's three members. */
async function rpc(token: string | undefined, method: string, args?: Record<string, unknown>, id: unknown = 7): Promise<Envelope> {
  const res = await t.http().post('/_admin/api').send({ id, auth_token: token, method, args });
  expect(res.status).toBe(200);
  expect(Object.keys(res.body).sort()).toEqual(['error', 'id', 'result']);
  return res.body as Envelope;
}

/** The result of a call that must succeed. */
async function ok<T = Record<string, unknown>>(token: string, method: string, args?: Record<string, unknown>): Promise<T> {
  const body = await rpc(token, method, args);
  if (body.error !== null) throw new Error(`${method}: ${body.error}`);
  return body.result as T;
}

/** The error of a call that must fail: result null, error a string. */
async function fails(token: string | undefined, method: string, args?: Record<string, unknown>): Promise<string> {
  const body = await rpc(token, method, args);
  expect(body.result).toBeNull();
  expect(typeof body.error).toBe('string');
  return body.error as string;
}

async function userWithToken(options: { admin?: boolean } = {}): Promise<TestUser & { token: string }> {
  const u = await t.factory.user(options);
  return { ...u, token: await t.factory.apiToken(u.user) };
}

async function createGroup(args: Record<string, unknown> = {}): Promise<{ users_group_id: string; group_name: string }> {
  const result = await ok<{ user_group: { users_group_id: string; group_name: string } }>(adminToken, 'create_user_group', {
    group_name: unique('grp'),
    ...args,
  });
  return result.user_group;
}

const restUser = (id: string) => t.http().get(`/user/${id}`).set(bearer(admin.jwt));
const restGroup = (id: string) => t.http().get(`/user_group/${id}`).set(bearer(admin.jwt));
const restMembers = async (id: string) => (await t.http().get(`/user_group/${id}/member`).set(bearer(admin.jwt)).expect(200)).body as { id: string }[];
const mailsTo = async (email: string) => Number((await t.knex('mail_outbox').whereRaw('? = any(recipients)', [email]).count<{ count: string }[]>('* as count'))[0].count);

describe('the envelope', () => {
  it('echoes the id with result and a null error, and takes RhodeCode clients’ text/plain bodies and api_key', async () => {
    for (const id of [1, 'abc', { n: 1 }, null]) {
      const body = await rpc(adminToken, 'get_user', {}, id);
      expect(body).toEqual({ id, result: expect.objectContaining({ user_id: admin.user.id }), error: null });
    }
    const plain = await t.http().post('/_admin/api').set('Content-Type', 'text/plain').send(JSON.stringify({ id: 2, api_key: adminToken, method: 'get_user', args: {} }));
    expect(plain.status).toBe(200);
    expect(plain.body).toMatchObject({ id: 2, result: { username: admin.user.name }, error: null });
    expect(plain.headers['cache-control']).toBe('no-store');
  });

  it.each([
    ['an array', '[1, 2]', 'application/json', null, 'Incorrect JSON data. The request must be a JSON object'],
    ['not JSON', '{"id": 1, "method": ', 'application/json', null, 'JSON parse error'],
    ['not JSON (text/plain)', '{"id": 1', 'text/plain', null, 'JSON parse error'],
    ['a JSON string (text/plain)', '"get_user"', 'text/plain', null, 'Incorrect JSON data. The request must be a JSON object'],
    ['no method', '{"id": 3, "auth_token": "x", "args": {}}', 'application/json', 3, "Incorrect JSON data. Missing 'method'"],
    ['a numeric method', '{"id": 3, "auth_token": "x", "method": 5}', 'application/json', 3, 'Incorrect JSON data. `method` must be a string'],
    ['args an array', '{"id": 3, "auth_token": "x", "method": "get_user", "args": []}', 'application/json', 3, 'Incorrect JSON data. `args` must be an object'],
    ['args a string', '{"id": 3, "auth_token": "x", "method": "get_user", "args": "u"}', 'application/json', 3, 'Incorrect JSON data. `args` must be an object'],
    ['a numeric token', '{"id": 3, "auth_token": 12, "method": "get_user"}', 'application/json', 3, 'Incorrect JSON data. `auth_token` must be a string'],
    ['an empty body', '', 'application/json', null, "Incorrect JSON data. Missing 'method'"],
  ])('answers %s with an error envelope and HTTP 200', async (_label, raw, type, id, error) => {
    const res = await t.http().post('/_admin/api').set('Content-Type', type).send(raw);
    expect([res.status, res.body]).toEqual([200, { id, result: null, error }]);
  });

  it('reads the body as JSON whatever its Content-Type: none (Python requests’ data=), a form type (curl --data-binary), anything', async () => {
    const server = http.createServer(t.app).listen(0);
    try {
      const { port } = server.address() as AddressInfo;
      const body = JSON.stringify({ id: 'py', auth_token: adminToken, method: 'get_user' });
      const answer = await new Promise<{ status?: number; body: string }>((resolve, reject) => {
        const req = http.request({ port, method: 'POST', path: '/_admin/api', headers: { 'Content-Length': Buffer.byteLength(body) } }, (res) => {
          let data = '';
          res.on('data', (chunk) => (data += chunk));
          res.on('end', () => resolve({ status: res.statusCode, body: data }));
        });
        req.on('error', reject);
        req.end(body);
      });
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toMatchObject({ id: 'py', result: { user_id: admin.user.id }, error: null });
    } finally {
      server.close();
    }
    for (const type of ['application/x-www-form-urlencoded', 'application/xml', 'application/json; charset=utf-8', 'image/png']) {
      const res = await t.http().post('/_admin/api').set('Content-Type', type).send(JSON.stringify({ id: type, auth_token: adminToken, method: 'get_user' }));
      expect([res.status, res.body]).toEqual([200, { id: type, result: expect.objectContaining({ user_id: admin.user.id }), error: null }]);
    }
  });

  it('answers text that breaks the text rule, bytes that are not UTF-8 and deep nesting with an error envelope, changing nothing', async () => {
    const before = await countRows(t.knex, 'users');
    const nul = await rpc(adminToken, 'create_user', { username: 'nul\u0000name', email: `${unique('nul')}@example.test` }, 7);
    expect(nul).toEqual({ id: 7, result: null, error: expect.stringMatching(/^Incorrect JSON data\. args\/username must be UTF-8 text/) });
    const lone = await t.http().post('/_admin/api').set('Content-Type', 'text/plain')
      .send(`{"id": 8, "auth_token": "${adminToken}", "method": "create_user", "args": {"username": "x\\ud800", "email": "lone@example.test"}}`);
    expect(lone.body).toEqual({ id: 8, result: null, error: expect.stringContaining('args/username must be UTF-8 text') });
    const bytes = await rawRequest(t.app, {
      method: 'POST',
      path: '/_admin/api',
      headers: { 'Content-Type': 'application/json' },
      body: Buffer.concat([Buffer.from(`{"id": 9, "auth_token": "${adminToken}", "method": "get_user", "args": {"userid": "`), Buffer.from([0xc3, 0x28]), Buffer.from('"}}')]),
    });
    expect([bytes.status, bytes.body]).toEqual([200, { id: null, result: null, error: 'Incorrect JSON data. the body is not valid UTF-8' }]);
    // 10 000 levels deep: as the id (not echoed) and as an argument (the id is echoed).
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    const deepId = await t.http().post('/_admin/api').set('Content-Type', 'application/json').send(`{"id": ${deep}, "auth_token": "${adminToken}", "method": "get_user"}`);
    expect([deepId.status, deepId.body]).toEqual([200, { id: null, result: null, error: expect.stringMatching(/^Incorrect JSON data\. id(\/0)+ is nested deeper than 32 levels$/) }]);
    const deepArg = await t.http().post('/_admin/api').set('Content-Type', 'application/json')
      .send(`{"id": 10, "auth_token": "${adminToken}", "method": "get_user", "args": {"userid": ${deep}}, "extra": ${deep}}`);
    expect([deepArg.status, deepArg.body]).toEqual([200, { id: 10, result: null, error: expect.stringMatching(/^Incorrect JSON data\. args\/userid(\/0)+ is nested deeper than 32 levels$/) }]);
    expect(await countRows(t.knex, 'users')).toBe(before);
  });

  it('answers unknown methods, get_user_locks included, before looking at the token', async () => {
    expect(await fails(adminToken, 'get_user_locks', { userid: admin.user.id })).toBe('method `get_user_locks` does not exist');
    expect(await fails(undefined, 'drop_everything')).toBe('method `drop_everything` does not exist');
  });

  it('answers a missing, malformed, unknown, revoked or expired token, and a deactivated user’s, with "Invalid API KEY"', async () => {
    const u = await userWithToken();
    const expiring = await t.factory.apiToken(u.user, ['api'], new Date(Date.now() + 60_000));
    expect(await ok(u.token, 'get_user')).toMatchObject({ user_id: u.user.id });
    const bad = [undefined, '', 'not-a-jwt', `${u.token}x`];
    for (const token of bad) expect(await fails(token, 'get_user')).toBe('Invalid API KEY');
    t.clock.advance(120_000);
    try {
      expect(await fails(expiring, 'get_user')).toBe('Invalid API KEY');
    } finally {
      t.clock.advance(-120_000);
    }
    await t.container.stores.tokens.deleteForUser(u.user.id);
    expect(await fails(u.token, 'get_user')).toBe('Invalid API KEY');
    const v = await userWithToken();
    await ok(adminToken, 'delete_user', { userid: v.user.id });
    expect(await fails(v.token, 'get_user')).toBe('Invalid API KEY');
  });

  it('applies the token’s scopes: api:read calls get_* only', async () => {
    const reader = await t.factory.user({ admin: true });
    const readOnly = await t.factory.apiToken(reader.user, ['api:read']);
    expect(await ok(readOnly, 'get_users')).toEqual(expect.any(Array));
    const before = await countRows(t.knex, 'users');
    expect(await fails(readOnly, 'create_user', { username: unique('ro'), email: `${unique('ro')}@example.test` })).toBe('API KEY has bad role for an API call');
    expect(await countRows(t.knex, 'users')).toBe(before);
    const writer = await t.factory.apiToken(reader.user, ['api:write']);
    await ok(writer, 'create_user', { username: unique('rw'), email: `${unique('rw')}@example.test` });
  });

  it('takes only API tokens, as RhodeCode takes only API keys: a login token is "Invalid API KEY"', async () => {
    expect(await fails(admin.jwt, 'get_user')).toBe('Invalid API KEY');
    const forced = await t.factory.loggedIn({ forcePasswordChange: true });
    expect(await fails(forced.jwt, 'get_user')).toBe('Invalid API KEY');
    expect(await ok(adminToken, 'get_user')).toMatchObject({ user_id: admin.user.id });
  });

  it('checks argument presence and types, and ignores unknown arguments', async () => {
    expect(await fails(adminToken, 'get_user_group', {})).toBe('Missing non optional `usergroupid` arg in JSON DATA');
    expect(await fails(adminToken, 'create_user', { username: unique('x') })).toBe('Missing non optional `email` arg in JSON DATA');
    expect(await fails(adminToken, 'get_user', { userid: true })).toBe('invalid value for `userid`: must be an id or a name');
    expect(await fails(adminToken, 'update_user', { userid: admin.user.id, active: 'yes' })).toBe('invalid value for `active`: must be true or false');
    expect(await fails(adminToken, 'create_user', { username: ' padded', email: 'p@example.test' })).toBe(
      'invalid value for `username`: must be 1 to 255 visible characters: no control, format or invisible characters, no white space but single inner spaces',
    );
    expect(await fails(adminToken, 'create_user', { username: unique('x'), email: 'not-an-email' })).toBe('invalid value for `email`: must be an email address');
    expect(await fails(adminToken, 'create_user_group', { group_name: ['a'] })).toBe('invalid value for `group_name`: must be a string');
    const g = await createGroup();
    expect(await ok(adminToken, 'get_user_group', { usergroupid: g.users_group_id, extern_type: 'ldap', whatever: [1] })).toMatchObject({ group_name: g.group_name });
  });

  it('answers an unexpected failure with "Internal server error" and logs it', async () => {
    const spy = jest.spyOn(t.container.services.groups, 'all').mockRejectedValueOnce(new Error('database on fire'));
    try {
      expect(await fails(adminToken, 'get_user_groups')).toBe('Internal server error');
    } finally {
      spy.mockRestore();
    }
    const logged = logLines.map((l) => JSON.parse(l) as { level: number; msg: string; err?: { message: string }; rpc_method?: string });
    expect(logged).toContainEqual(expect.objectContaining({ level: 50, msg: 'unexpected error', rpc_method: 'get_user_groups', err: expect.objectContaining({ message: 'database on fire' }) }));
  });
});

describe('user methods', () => {
  it('create_user makes the user REST shows: RhodeCode’s fields, force_password_change false, no mail', async () => {
    const username = unique('rc');
    const email = `${username}@example.test`;
    const result = await ok<{ msg: string; user: Record<string, unknown> }>(adminToken, 'create_user', {
      username,
      email,
      firstname: 'Ada',
      lastname: 'Lovelace',
      admin: true,
      extern_name: 'rhodecode',
    });
    expect(result.msg).toBe(`created new user \`${username}\``);
    expect(result.user).toEqual({
      user_id: expect.any(String),
      username,
      firstname: 'Ada',
      lastname: 'Lovelace',
      email,
      emails: [email],
      active: true,
      admin: true,
      force_password_change: false,
      last_login: null,
      last_activity: null,
      extern_type: 'rhodecode',
      extern_name: 'rhodecode',
      ip_addresses: [],
      language: null,
    });
    const rest = await restUser(result.user.user_id as string);
    expect(rest.status).toBe(200);
    expect(rest.body).toMatchObject({ name: username, email, first_name: 'Ada', last_name: 'Lovelace', is_admin: true, force_password_change: false, groups: [] });
    expect(await mailsTo(email)).toBe(0);
    // No password: no login until a reset link is used.
    expect((await t.http().post('/login').send({ email, password: 'anything-at-all' })).status).toBe(401);
  });

  it('create_user with a password, force_password_change and active false', async () => {
    const username = unique('rc');
    const email = `${username}@example.test`;
    const password = 'correct horse battery';
    const { user } = await ok<{ user: { user_id: string } }>(adminToken, 'create_user', { username, email, password, force_password_change: true });
    const login = await t.http().post('/login').send({ email, password });
    expect([login.status, login.body.password_change_required]).toEqual([200, true]);
    expect((await restUser(user.user_id)).body.force_password_change).toBe(true);

    const weak = await fails(adminToken, 'create_user', { username: unique('weak'), email: `${unique('weak')}@example.test`, password: 'short' });
    expect(weak).toMatch(/at least 8 characters/);

    const inactive = await ok<{ user: { user_id: string; active: boolean } }>(adminToken, 'create_user', {
      username: unique('off'),
      email: `${unique('off')}@example.test`,
      active: false,
    });
    expect(inactive.user.active).toBe(false);
    expect((await restUser(inactive.user.user_id)).status).toBe(410);
  });

  it('create_user refuses duplicates with RhodeCode’s messages, and non-admins', async () => {
    const existing = await t.factory.user();
    expect(await fails(adminToken, 'create_user', { username: existing.user.name, email: `${unique('n')}@example.test` })).toBe(`user \`${existing.user.name}\` already exist`);
    expect(await fails(adminToken, 'create_user', { username: unique('n'), email: existing.email.toUpperCase() })).toBe(`email \`${existing.email.toUpperCase()}\` already exist`);
    const plain = await userWithToken();
    const before = await countRows(t.knex, 'users');
    expect(await fails(plain.token, 'create_user', { username: unique('n'), email: `${unique('n')}@example.test` })).toBe(ACCESS_DENIED);
    expect(await countRows(t.knex, 'users')).toBe(before);
  });

  it('get_user by id, email or name matches GET /user/{user}; without userid it is the caller', async () => {
    const u = await t.factory.user();
    const g = await createGroup();
    await ok(adminToken, 'add_user_to_user_group', { usergroupid: g.group_name, userid: u.user.name });
    const rest = (await restUser(u.user.id)).body;
    for (const userid of [u.user.id, u.user.id.toUpperCase(), u.email, u.user.name]) {
      const got = await ok<Record<string, unknown>>(adminToken, 'get_user', { userid });
      expect(got).toMatchObject({ user_id: rest.id, username: rest.name, email: rest.email, admin: rest.is_admin, active: true, groups: rest.groups });
    }
    expect(rest.groups).toEqual([{ id: g.users_group_id, name: g.group_name, permission: 'usergroup.read' }]);
    const self = await userWithToken();
    expect(await ok(self.token, 'get_user')).toMatchObject({ user_id: self.user.id, username: self.user.name });
    expect(await ok(self.token, 'get_user', { userid: self.user.name })).toMatchObject({ user_id: self.user.id });
    expect(await fails(self.token, 'get_user', { userid: u.user.id })).toBe('userid is not the same as your user');
    expect(await fails(adminToken, 'get_user', { userid: 'nobody-by-that-name' })).toBe('user `nobody-by-that-name` does not exist');
    expect(await fails(adminToken, 'get_user', { userid: 'ghost@example.test' })).toBe('user `ghost@example.test` does not exist');
  });

  it('get_users returns every user, deactivated ones with active false, and only to admins', async () => {
    const u = await t.factory.user();
    const gone = await t.factory.user();
    await ok(adminToken, 'delete_user', { userid: gone.user.id });
    const all = await ok<{ user_id: string; username: string; active: boolean }[]>(adminToken, 'get_users');
    expect(all.length).toBe(await countRows(t.knex, 'users'));
    expect(all).toContainEqual(expect.objectContaining({ user_id: u.user.id, active: true }));
    expect(all).toContainEqual(expect.objectContaining({ user_id: gone.user.id, active: false }));
    const names = all.map((x) => x.username);
    expect(names).toEqual([...names].sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : Buffer.from(a) > Buffer.from(b) ? 1 : 0)));
    expect(await fails((await userWithToken()).token, 'get_users')).toBe(ACCESS_DENIED);
  });

  it('update_user changes what REST shows; active false deactivates and active true reactivates', async () => {
    const u = await t.factory.user();
    const newName = unique('renamed');
    const result = await ok<{ msg: string; user: Record<string, unknown> }>(adminToken, 'update_user', {
      userid: u.user.name,
      username: newName,
      email: `${newName}@example.test`,
      firstname: 'Grace',
      lastname: null,
      admin: true,
    });
    expect(result.msg).toBe(`updated user ID:${u.user.id} ${newName}`);
    expect(result.user).toMatchObject({ user_id: u.user.id, username: newName, firstname: 'Grace', lastname: null, admin: true });
    expect((await restUser(u.user.id)).body).toMatchObject({ name: newName, email: `${newName}@example.test`, first_name: 'Grace', last_name: null, is_admin: true });
    expect(await mailsTo(`${newName}@example.test`)).toBe(0);

    const off = await ok<{ user: { active: boolean } }>(adminToken, 'update_user', { userid: u.user.id, active: false });
    expect(off.user.active).toBe(false);
    expect((await restUser(u.user.id)).status).toBe(410);
    expect(await fails(adminToken, 'update_user', { userid: u.user.id, firstname: 'x' })).toBe(`user \`${u.user.id}\` is deactivated`);
    const on = await ok<{ user: { active: boolean; firstname: string } }>(adminToken, 'update_user', { userid: u.user.id, active: true, firstname: 'Back' });
    expect(on.user).toMatchObject({ active: true, firstname: 'Back' });
    expect((await restUser(u.user.id)).body).toMatchObject({ first_name: 'Back' });
  });

  it('update_user sets a password (system admins; the policy applies; login tokens end; a notice, no secret)', async () => {
    const u = await t.factory.user({ forcePasswordChange: false });
    const session = await t.factory.login(u);
    const api = await t.factory.apiToken(u.user);
    const weak = await fails(adminToken, 'update_user', { userid: u.user.id, firstname: 'Weak', password: 'short' });
    expect(weak).toMatch(/at least 8 characters/);
    expect((await restUser(u.user.id)).body.first_name).toBeNull(); // nothing changed
    expect(await fails(adminToken, 'update_user', { userid: u.user.id, password: 12345678 })).toBe('invalid value for `password`: must be a string');
    const done = await ok<{ msg: string }>(adminToken, 'update_user', { userid: u.user.id, firstname: 'Set', password: 'set by an admin 1' });
    expect(done.msg).toBe(`updated user ID:${u.user.id} ${u.user.name}`);
    expect((await t.http().get('/user/me').set(bearer(session))).status).toBe(401); // login tokens end
    expect((await t.http().get('/user/me').set(bearer(api))).status).toBe(200); // API tokens stay
    expect((await t.http().post('/login').send({ email: u.email, password: u.password })).status).toBe(401);
    const login = await t.http().post('/login').send({ email: u.email, password: 'set by an admin 1' });
    expect([login.status, login.body.password_change_required]).toEqual([200, undefined]);
    const [notice] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Your Accounts password has been changed');
    expect(notice.raw).not.toContain('set by an admin 1');
    const plain = await userWithToken();
    expect(await fails(plain.token, 'update_user', { userid: plain.user.id, password: 'my own new password' })).toBe(ACCESS_DENIED);
  });

  it('update_user refuses taken names, unknown users and non-admins', async () => {
    const u = await t.factory.user();
    const other = await t.factory.user();
    expect(await fails(adminToken, 'update_user', { userid: u.user.id, username: other.user.name })).toBe(`user \`${other.user.name}\` already exist`);
    expect(await fails(adminToken, 'update_user', { userid: 'no-such-user', firstname: 'x' })).toBe('user `no-such-user` does not exist');
    const plain = await userWithToken();
    expect(await fails(plain.token, 'update_user', { userid: u.user.name, firstname: 'x' })).toBe(ACCESS_DENIED);
    expect(await fails(plain.token, 'update_user', { userid: 'no-such-user', firstname: 'x' })).toBe(ACCESS_DENIED);
    expect((await restUser(u.user.id)).body.first_name).toBeNull();
  });

  it('delete_user deactivates, as DELETE /user/{user}', async () => {
    const u = await t.factory.user();
    const result = await ok(adminToken, 'delete_user', { userid: u.email });
    expect(result).toEqual({ msg: `deleted user ID:${u.user.id} ${u.user.name}`, user: null });
    expect((await restUser(u.user.id)).status).toBe(410);
    expect(await ok(adminToken, 'get_user', { userid: u.user.id })).toMatchObject({ user_id: u.user.id, active: false });
    expect(await fails(adminToken, 'delete_user', { userid: u.user.id })).toBe(`user \`${u.user.id}\` is deactivated`);
    expect(await fails((await userWithToken()).token, 'delete_user', { userid: admin.user.id })).toBe(ACCESS_DENIED);
  });
});

describe('user group methods', () => {
  it('create_user_group makes the group REST shows; duplicates and non-admins are refused', async () => {
    const owner = await t.factory.user();
    const name = unique('ops');
    const result = await ok<{ msg: string; user_group: Record<string, unknown> }>(adminToken, 'create_user_group', {
      group_name: name,
      description: 'On call',
      owner: owner.user.name,
    });
    expect(result).toEqual({
      msg: `created new user group \`${name}\``,
      user_group: { users_group_id: expect.any(String), group_name: name, group_description: 'On call', active: true, owner: owner.user.name, users: [] },
    });
    const rest = await restGroup(name);
    expect(rest.body).toMatchObject({ id: result.user_group.users_group_id, name, description: 'On call', active: true, owner: { id: owner.user.id, name: owner.user.name } });

    expect(await fails(adminToken, 'create_user_group', { group_name: name })).toBe(`user group \`${name}\` already exist`);
    expect(await fails(adminToken, 'create_user_group', { group_name: unique('g'), owner: 'nobody-here' })).toBe('user `nobody-here` does not exist');
    const plain = await userWithToken();
    expect(await fails(plain.token, 'create_user_group', { group_name: unique('g') })).toBe(ACCESS_DENIED);
  });

  it('get_user_group shows members and permissions as REST does, and hides groups from strangers', async () => {
    const owner = await t.factory.user();
    const g = await createGroup({ owner: owner.email });
    const m = await t.factory.user();
    const grantee = await t.factory.user();
    const source = await createGroup();
    await ok(adminToken, 'add_user_to_user_group', { usergroupid: g.users_group_id, userid: m.user.id });
    await ok(adminToken, 'grant_user_permission_to_user_group', { usergroupid: g.group_name, userid: grantee.email, perm: 'usergroup.write' });
    await ok(adminToken, 'grant_user_group_permission_to_user_group', { usergroupid: g.group_name, sourceusergroupid: source.group_name, perm: 'usergroup.read' });

    const got = await ok<Record<string, unknown> & { users: { user_id: string }[]; permissions: unknown[] }>(adminToken, 'get_user_group', { usergroupid: g.group_name });
    const rest = (await restGroup(g.users_group_id)).body;
    expect(got).toMatchObject({ users_group_id: rest.id, group_name: rest.name, group_description: rest.description, active: rest.active, owner: rest.owner.name });
    expect(got.users.map((u) => u.user_id)).toEqual(rest.members.map((u: { id: string }) => u.id));
    expect(got.permissions).toEqual(
      rest.grants.map((gr: { type: string; name: string; permission: string; origin: string }) => ({
        name: gr.name,
        permission: gr.permission,
        origin: gr.origin === 'owner' ? 'owner' : 'permission',
        type: gr.type,
      })),
    );
    expect(got.permissions).toEqual(
      expect.arrayContaining([
        { name: owner.user.name, permission: 'usergroup.admin', origin: 'owner', type: 'user' },
        { name: grantee.user.name, permission: 'usergroup.write', origin: 'permission', type: 'user' },
        { name: source.group_name, permission: 'usergroup.read', origin: 'permission', type: 'user_group' },
      ]),
    );
    const stranger = await userWithToken();
    expect(await fails(stranger.token, 'get_user_group', { usergroupid: g.group_name })).toBe(`user group \`${g.group_name}\` does not exist`);
    expect(await fails(adminToken, 'get_user_group', { usergroupid: 'no-such-group' })).toBe('user group `no-such-group` does not exist');
    // A member reads it.
    expect(await ok(await t.factory.apiToken(m.user), 'get_user_group', { usergroupid: g.users_group_id })).toMatchObject({ group_name: g.group_name });
  });

  it('shows members to callers who are not system admins as {user_id, username} only, in every method that lists them (§2.5)', async () => {
    const g = await createGroup();
    const sysadmin = await t.factory.user({ admin: true });
    const forced = await t.factory.user({ forcePasswordChange: true });
    const m = await userWithToken();
    for (const u of [sysadmin, forced, m]) await ok(adminToken, 'add_user_to_user_group', { usergroupid: g.group_name, userid: u.user.id });
    const groupAdmin = await userWithToken();
    await ok(adminToken, 'grant_user_permission_to_user_group', { usergroupid: g.group_name, userid: groupAdmin.user.id, perm: 'usergroup.admin' });
    const refs = [sysadmin, forced, m].map((u) => ({ user_id: u.user.id, username: u.user.name })).sort((a, b) => (a.username < b.username ? -1 : 1));
    type Group = { users_group_id: string; users: unknown[] };
    for (const caller of [m, groupAdmin]) {
      expect((await ok<Group>(caller.token, 'get_user_group', { usergroupid: g.group_name })).users).toEqual(refs);
      expect((await ok<Group[]>(caller.token, 'get_user_groups')).find((x) => x.users_group_id === g.users_group_id)?.users).toEqual(refs);
    }
    const updated = await ok<{ user_group: Group }>(groupAdmin.token, 'update_user_group', { usergroupid: g.group_name, description: 'changed' });
    expect(updated.user_group.users).toEqual(refs);
    // System admins see RhodeCode's user objects.
    const full = await ok<{ users: { user_id: string; email: string; admin: boolean }[] }>(adminToken, 'get_user_group', { usergroupid: g.group_name });
    expect(full.users.map((u) => [u.user_id, u.email])).toEqual(
      [sysadmin, forced, m].sort((a, b) => (a.user.name < b.user.name ? -1 : 1)).map((u) => [u.user.id, u.email]),
    );
    expect(full.users).toContainEqual(expect.objectContaining({ user_id: sysadmin.user.id, admin: true }));
  });

  it('get_user_group lists every member, past the 100 of the REST detail', async () => {
    const g = await createGroup();
    const ids = await Promise.all(Array.from({ length: 105 }, async () => (await t.factory.user()).user.id));
    await t.knex('user_group_members').insert(ids.map((user_id) => ({ group_id: g.users_group_id, user_id })));
    const got = await ok<{ users: unknown[] }>(adminToken, 'get_user_group', { usergroupid: g.users_group_id });
    expect(got.users).toHaveLength(105);
  });

  it('get_user_groups returns every group the caller can read, with members', async () => {
    const reader = await userWithToken();
    const readable = await createGroup();
    const hidden = await createGroup();
    await ok(adminToken, 'add_user_to_user_group', { usergroupid: readable.users_group_id, userid: reader.user.id });
    const mine = await ok<{ users_group_id: string; users: { user_id: string }[] }[]>(reader.token, 'get_user_groups');
    expect(mine.map((g) => g.users_group_id)).toEqual([readable.users_group_id]);
    expect(mine[0].users.map((u) => u.user_id)).toEqual([reader.user.id]);
    const everything = await ok<{ users_group_id: string }[]>(adminToken, 'get_user_groups');
    expect(everything.map((g) => g.users_group_id)).toEqual(expect.arrayContaining([readable.users_group_id, hidden.users_group_id]));
    expect(everything).toHaveLength(await countRows(t.knex, 'user_groups'));
  });

  it('update_user_group changes what REST shows; needs admin on the group', async () => {
    const g = await createGroup();
    const newOwner = await t.factory.user();
    const newName = unique('renamed');
    const result = await ok<{ msg: string; user_group: Record<string, unknown> }>(adminToken, 'update_user_group', {
      usergroupid: g.group_name,
      group_name: newName,
      description: 'new words',
      owner: newOwner.user.name,
      active: false,
    });
    expect(result.msg).toBe(`updated user group ID:${g.users_group_id} ${newName}`);
    expect(result.user_group).toMatchObject({ group_name: newName, group_description: 'new words', owner: newOwner.user.name, active: false });
    expect((await restGroup(g.users_group_id)).body).toMatchObject({ name: newName, description: 'new words', active: false, owner: { id: newOwner.user.id } });

    // The owner hands the group on: the update succeeds although they can no longer read it. Not
    // a system admin, they name someone outside the group by id (an address would be "not found").
    const heir = await t.factory.user();
    const ownerToken = await t.factory.apiToken(newOwner.user);
    expect(await fails(ownerToken, 'update_user_group', { usergroupid: newName, owner: heir.email })).toBe(`user \`${heir.email}\` does not exist`);
    expect(await ok(ownerToken, 'update_user_group', { usergroupid: newName, owner: heir.user.id })).toMatchObject({ user_group: { owner: heir.user.name } });
    expect(await fails(ownerToken, 'get_user_group', { usergroupid: newName })).toBe(`user group \`${newName}\` does not exist`);

    const taken = await createGroup();
    expect(await fails(adminToken, 'update_user_group', { usergroupid: newName, group_name: taken.group_name })).toBe(`user group \`${taken.group_name}\` already exist`);
    const writer = await userWithToken();
    await ok(adminToken, 'grant_user_permission_to_user_group', { usergroupid: newName, userid: writer.user.id, perm: 'usergroup.write' });
    expect(await fails(writer.token, 'update_user_group', { usergroupid: newName, description: 'x' })).toBe(`user group \`${newName}\` does not exist`);
    expect((await restGroup(g.users_group_id)).body.description).toBe('new words');
  });

  it('delete_user_group deletes what REST shows; strangers are told it does not exist', async () => {
    const g = await createGroup();
    const stranger = await userWithToken();
    expect(await fails(stranger.token, 'delete_user_group', { usergroupid: g.users_group_id })).toBe(`user group \`${g.users_group_id}\` does not exist`);
    expect((await restGroup(g.users_group_id)).status).toBe(200);
    expect(await ok(adminToken, 'delete_user_group', { usergroupid: g.users_group_id })).toEqual({
      msg: `deleted user group ID:${g.users_group_id} ${g.group_name}`,
      user_group: null,
    });
    expect((await restGroup(g.users_group_id)).status).toBe(404);
  });

  it('add_user_to_user_group and remove_user_from_user_group, as REST’s member list shows', async () => {
    const g = await createGroup();
    const u = await t.factory.user();
    expect(await ok(adminToken, 'add_user_to_user_group', { usergroupid: g.group_name, userid: u.user.name })).toEqual({
      success: true,
      msg: `added member \`${u.user.name}\` to user group \`${g.group_name}\``,
    });
    expect((await restMembers(g.users_group_id)).map((m) => m.id)).toEqual([u.user.id]);
    expect(await ok(adminToken, 'add_user_to_user_group', { usergroupid: g.users_group_id, userid: u.email })).toEqual({
      success: false,
      msg: 'User is already in that group',
    });
    expect(await ok(adminToken, 'remove_user_from_user_group', { usergroupid: g.group_name, userid: u.user.id })).toEqual({
      success: true,
      msg: `removed member \`${u.user.name}\` from user group \`${g.group_name}\``,
    });
    expect(await restMembers(g.users_group_id)).toEqual([]);
    expect(await ok(adminToken, 'remove_user_from_user_group', { usergroupid: g.group_name, userid: u.user.id })).toEqual({
      success: false,
      msg: "User wasn't in group",
    });
    expect(await fails(adminToken, 'add_user_to_user_group', { usergroupid: g.group_name, userid: 'ghost-user' })).toBe('user `ghost-user` does not exist');
    expect(await fails(adminToken, 'add_user_to_user_group', { usergroupid: 'ghost-group', userid: u.user.id })).toBe('user group `ghost-group` does not exist');
  });

  it('membership needs write: a writer adds, a reader and a stranger are told the group does not exist', async () => {
    const g = await createGroup();
    const writer = await userWithToken();
    const reader = await userWithToken();
    const stranger = await userWithToken();
    await ok(adminToken, 'grant_user_permission_to_user_group', { usergroupid: g.group_name, userid: writer.user.name, perm: 'usergroup.write' });
    await ok(adminToken, 'grant_user_permission_to_user_group', { usergroupid: g.group_name, userid: reader.user.name, perm: 'usergroup.read' });
    const newcomer = await t.factory.user();
    for (const caller of [reader, stranger]) {
      expect(await fails(caller.token, 'add_user_to_user_group', { usergroupid: g.group_name, userid: newcomer.user.id })).toBe(`user group \`${g.group_name}\` does not exist`);
    }
    expect(await restMembers(g.users_group_id)).toEqual([]);
    expect(await ok(writer.token, 'add_user_to_user_group', { usergroupid: g.group_name, userid: newcomer.user.id })).toMatchObject({ success: true });
    expect((await restMembers(g.users_group_id)).map((m) => m.id)).toEqual([newcomer.user.id]);
    // A non-admin cannot learn whether a user exists through a group they cannot write.
    expect(await fails(stranger.token, 'add_user_to_user_group', { usergroupid: g.group_name, userid: 'ghost-user' })).toBe(`user group \`${g.group_name}\` does not exist`);
  });

  it('grant_ and revoke_user_permission_to/from_user_group, as REST’s grants show', async () => {
    const g = await createGroup();
    const u = await t.factory.user();
    expect(await ok(adminToken, 'grant_user_permission_to_user_group', { usergroupid: g.group_name, userid: u.user.name, perm: 'usergroup.write' })).toEqual({
      msg: `Granted perm: \`usergroup.write\` for user: \`${u.user.name}\` in user group: \`${g.group_name}\``,
      success: true,
    });
    const grants = (await restGroup(g.users_group_id)).body.grants;
    expect(grants).toContainEqual({ type: 'user', id: u.user.id, name: u.user.name, permission: 'usergroup.write', origin: 'grant' });
    const eff = await t.http().get(`/user_group/${g.users_group_id}/effective/${u.user.id}`).set(bearer(admin.jwt));
    expect(eff.body).toEqual({ permission: 'usergroup.write', via: { type: 'user_grant' } });
    expect(await ok(adminToken, 'revoke_user_permission_from_user_group', { usergroupid: g.users_group_id, userid: u.email })).toEqual({
      msg: `Revoked perm for user: \`${u.user.name}\` in user group: \`${g.group_name}\``,
      success: true,
    });
    expect((await restGroup(g.users_group_id)).body.grants).not.toContainEqual(expect.objectContaining({ id: u.user.id }));
    expect(await fails(adminToken, 'grant_user_permission_to_user_group', { usergroupid: g.group_name, userid: u.user.id, perm: 'repository.admin' })).toBe(
      'permission `repository.admin` does not exist',
    );
    expect(await fails(adminToken, 'grant_user_permission_to_user_group', { usergroupid: g.group_name, userid: u.user.id })).toBe('Missing non optional `perm` arg in JSON DATA');
    // Granting needs admin on the group: a writer is told it does not exist.
    const writer = await userWithToken();
    await ok(adminToken, 'grant_user_permission_to_user_group', { usergroupid: g.group_name, userid: writer.user.id, perm: 'usergroup.write' });
    expect(await fails(writer.token, 'grant_user_permission_to_user_group', { usergroupid: g.group_name, userid: u.user.id, perm: 'usergroup.admin' })).toBe(
      `user group \`${g.group_name}\` does not exist`,
    );
  });

  it('grant_ and revoke_user_group_permission_to/from_user_group, as REST’s grants show', async () => {
    const g = await createGroup();
    const source = await createGroup();
    expect(await ok(adminToken, 'grant_user_group_permission_to_user_group', { usergroupid: g.group_name, sourceusergroupid: source.users_group_id, perm: 'usergroup.admin' })).toEqual({
      msg: `Granted perm: \`usergroup.admin\` for user group: \`${source.group_name}\` in user group: \`${g.group_name}\``,
      success: true,
    });
    expect((await restGroup(g.users_group_id)).body.grants).toContainEqual({
      type: 'user_group',
      id: source.users_group_id,
      name: source.group_name,
      permission: 'usergroup.admin',
      origin: 'grant',
    });
    // Members of the source now administer the group.
    const m = await userWithToken();
    await ok(adminToken, 'add_user_to_user_group', { usergroupid: source.group_name, userid: m.user.id });
    expect(await ok(m.token, 'update_user_group', { usergroupid: g.group_name, description: 'by inheritance' })).toMatchObject({ user_group: { group_description: 'by inheritance' } });

    expect(await ok(adminToken, 'revoke_user_group_permission_from_user_group', { usergroupid: g.users_group_id, sourceusergroupid: source.group_name })).toEqual({
      msg: `Revoked perm for user group: \`${source.group_name}\` in user group: \`${g.group_name}\``,
      success: true,
    });
    expect((await restGroup(g.users_group_id)).body.grants).not.toContainEqual(expect.objectContaining({ type: 'user_group' }));
    expect(await fails(m.token, 'update_user_group', { usergroupid: g.group_name, description: 'no more' })).toBe(`user group \`${g.group_name}\` does not exist`);

    expect(await fails(adminToken, 'grant_user_group_permission_to_user_group', { usergroupid: g.group_name, sourceusergroupid: 'ghost-group', perm: 'usergroup.read' })).toBe(
      'user group `ghost-group` does not exist',
    );
    expect(await fails(adminToken, 'grant_user_group_permission_to_user_group', { usergroupid: 'ghost-group', sourceusergroupid: source.group_name, perm: 'usergroup.read' })).toBe(
      'user group `ghost-group` does not exist',
    );
    expect(await fails(adminToken, 'grant_user_group_permission_to_user_group', { usergroupid: g.group_name, sourceusergroupid: g.group_name, perm: 'usergroup.read' })).toBe(
      'a user group cannot be granted a permission on itself',
    );
    // An admin of the group who cannot read the source is told the source does not exist.
    const groupAdmin = await userWithToken();
    await ok(adminToken, 'grant_user_permission_to_user_group', { usergroupid: g.group_name, userid: groupAdmin.user.id, perm: 'usergroup.admin' });
    expect(await fails(groupAdmin.token, 'grant_user_group_permission_to_user_group', { usergroupid: g.group_name, sourceusergroupid: source.group_name, perm: 'usergroup.read' })).toBe(
      `user group \`${source.group_name}\` does not exist`,
    );
  });

  it('add_user_to_user_group needs what membership confers: a writer of G, where G holds admin on H, may not add himself (§2.5)', async () => {
    const g = await createGroup();
    const h = await createGroup();
    await ok(adminToken, 'grant_user_group_permission_to_user_group', { usergroupid: h.group_name, sourceusergroupid: g.group_name, perm: 'usergroup.admin' });
    const writer = await userWithToken();
    await ok(adminToken, 'grant_user_permission_to_user_group', { usergroupid: g.group_name, userid: writer.user.id, perm: 'usergroup.write' });
    expect(await fails(writer.token, 'add_user_to_user_group', { usergroupid: g.group_name, userid: writer.user.id })).toBe(ACCESS_DENIED);
    expect(await restMembers(g.users_group_id)).toEqual([]);
    expect(await fails(writer.token, 'update_user_group', { usergroupid: h.group_name, description: 'mine now' })).toBe(`user group \`${h.group_name}\` does not exist`);
    // Once he holds admin on H himself, membership of G gives him nothing new.
    await ok(adminToken, 'grant_user_permission_to_user_group', { usergroupid: h.group_name, userid: writer.user.id, perm: 'usergroup.admin' });
    expect(await ok(writer.token, 'add_user_to_user_group', { usergroupid: g.group_name, userid: writer.user.id })).toEqual({
      success: true,
      msg: `added member \`${writer.user.name}\` to user group \`${g.group_name}\``,
    });
    expect((await restMembers(g.users_group_id)).map((m) => m.id)).toEqual([writer.user.id]);
  });

  it('gives exactly one "added" among concurrent add_user_to_user_group calls of one member', async () => {
    const g = await createGroup();
    const u = await t.factory.user();
    const results = await Promise.all(
      Array.from({ length: 10 }, () => ok<{ success: boolean; msg: string }>(adminToken, 'add_user_to_user_group', { usergroupid: g.group_name, userid: u.user.id })),
    );
    expect(results.filter((r) => r.success)).toEqual([{ success: true, msg: `added member \`${u.user.name}\` to user group \`${g.group_name}\`` }]);
    expect(results.filter((r) => !r.success)).toHaveLength(9);
    expect(results.filter((r) => !r.success).every((r) => r.msg === 'User is already in that group')).toBe(true);
    expect((await restMembers(g.users_group_id)).map((m) => m.id)).toEqual([u.user.id]);
  });
});

describe('argument types', () => {
  // Every argument of every method, read from the methods' own schemas (a method without
  // arguments gets an unknown one, which it must ignore).
  const slots = Object.entries(RPC_METHODS).flatMap(([method, m]) => {
    const names = Object.keys(m.args.shape);
    return (names.length ? names : ['userid']).map((arg) => ({ method, arg }));
  });
  // Values that break code which takes an argument for a string without looking (String(x) throws
  // on the first; the others are objects with the names of Object.prototype's members).
  const HOSTILE = ['{"toString": 1}', '{"valueOf": {}, "toString": {}}', '{"__proto__": {"toString": 1}}', '[{"toString": 1}]', '{"constructor": {"prototype": null}}', '1e400'];
  /** A JSON text: the values above, or any JSON value (strings with NUL and lone surrogates too). */
  const anyJson = fc.oneof(fc.constantFrom(...HOSTILE), fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }).map((v) => JSON.stringify(v)));

  it('answers any JSON value in any argument of any method with an error envelope or a result, never an internal error or an error log line', async () => {
    const target = await t.factory.user();
    const plain = await userWithToken();
    const group = await createGroup();
    const source = await createGroup();
    // The plain caller may do everything on the group, so that calls get past the permission checks.
    await ok(adminToken, 'grant_user_permission_to_user_group', { usergroupid: group.users_group_id, userid: plain.user.id, perm: 'usergroup.admin' });
    const plausible: Record<string, () => string> = {
      userid: () => target.user.id,
      owner: () => target.user.id,
      usergroupid: () => group.users_group_id,
      sourceusergroupid: () => source.users_group_id,
      perm: () => 'usergroup.read',
      username: () => unique('argtype'),
      group_name: () => unique('argtype'),
      email: () => `${unique('argtype')}@example.test`,
    };
    const required = (method: string, arg: string) => !RPC_METHODS[method].args.shape[arg]?.safeParse(undefined).success;
    const callers = { admin: adminToken, plain: plain.token };

    for (const { method, arg } of slots) {
      // The method's other required arguments, plausible; the one under test, the value.
      const others = Object.keys(RPC_METHODS[method].args.shape).filter((a) => a !== arg && required(method, a));
      await fc.assert(
        fc.asyncProperty(anyJson, fc.constantFrom<keyof typeof callers>('admin', 'plain'), async (value, who) => {
          const args = [...others.map((a) => `${JSON.stringify(a)}: ${JSON.stringify(plausible[a]?.() ?? 'x')}`), `${JSON.stringify(arg)}: ${value}`];
          const body = `{"id": 1, "auth_token": ${JSON.stringify(callers[who])}, "method": ${JSON.stringify(method)}, "args": {${args.join(', ')}}}`;
          const logged = logLines.length;
          const res = await t.http().post('/_admin/api').set('Content-Type', 'application/json').send(body);
          const what = `${method} ${arg} = ${value} (${who})`;
          expect([what, res.status]).toEqual([what, 200]);
          expect([what, Object.keys(res.body).sort()]).toEqual([what, ['error', 'id', 'result']]);
          expect([what, res.body.error]).not.toEqual([what, 'Internal server error']);
          expect([what, logLines.slice(logged)]).toEqual([what, []]);
        }),
        { numRuns: 8, seed: 20261122, examples: HOSTILE.flatMap((v) => [[v, 'admin'] as [string, 'admin'], [v, 'plain'] as [string, 'plain']]) },
      );
    }
  });

  it('answers an object where a string is expected with a clear message before anything else, and changes nothing', async () => {
    const plain = await userWithToken();
    const before = await countRows(t.knex, 'audit_log');
    const send = (token: string, method: string, args: string) =>
      t.http().post('/_admin/api').set('Content-Type', 'application/json').send(`{"id": 5, "auth_token": "${token}", "method": "${method}", "args": ${args}}`);
    // The call: get_user names its user in `userid`, read before the policy is checked.
    for (const token of [adminToken, plain.token]) {
      const res = await send(token, 'get_user', '{"userid": {"toString": 1}}');
      expect([res.status, res.body]).toEqual([200, { id: 5, result: null, error: 'invalid value for `userid`: must be an id or a name' }]);
    }
    // An admin-only method called by a non-admin with a wrong type: the type first, as for anyone.
    const refused = await send(plain.token, 'delete_user', '{"userid": {"toString": 1}}');
    expect(refused.body).toEqual({ id: 5, result: null, error: 'invalid value for `userid`: must be an id or a name' });
    expect(await countRows(t.knex, 'audit_log')).toBe(before);
  });
});
