import crypto from 'node:crypto';
import { loadApiSpec } from '../../src/api-spec';
import { needsUserToken, parsePolicy } from '../../src/domain/policy';
import { dispatch } from '../../src/http/mount';
import { RouteTable, type Spec } from '../../src/http/route-table';
import { RpcApi } from '../../src/rpc/api';
import { bearer, captureQueries, testAppWithAdmin, type TestUser } from '../helpers/test-app';

// Generated from openapi.yaml: every operation's x-policy (and every JSON-RPC method's
// x-rpc-methods entry) is enforced before anything else, whoever wrote the handler.

type SpecOperation = Record<string, unknown>;
const spec = loadApiSpec() as unknown as Spec & { paths: Record<string, Record<string, SpecOperation>> };
const operations = Object.entries(spec.paths).flatMap(([path, item]) =>
  Object.entries(item)
    .filter(([method]) => ['get', 'post', 'put', 'delete'].includes(method))
    .map(([method, op]) => ({ path, method: method.toUpperCase(), id: (op as SpecOperation).operationId as string, policy: parsePolicy((op as SpecOperation)['x-policy'], `${method} ${path}`) })),
);
const rpcPolicies = spec.paths['/_admin/api'].post['x-rpc-methods'] as Record<string, unknown>;
const rpcMethods = Object.entries(rpcPolicies).map(([name, p]) => ({ name, policy: parsePolicy(p, name) }));

const { t, admin } = testAppWithAdmin();
let plain: TestUser & { jwt: string };
let target: TestUser;
beforeAll(async () => {
  plain = await t.factory.loggedIn();
  target = await t.factory.user();
});

/** A path of the operation with its parameters filled in; `{user}` names `who`. */
function pathOf(path: string, who: string): string {
  return path.replace(/\{(\w+)\}/g, (_m, name: string) => (name === 'user' ? encodeURIComponent(who) : name === 'id' ? crypto.randomUUID() : `p-${name}`));
}

function send(method: string, path: string, jwt: string) {
  const req = t.http()[method.toLowerCase() as 'get' | 'post' | 'put' | 'delete'](path).set(bearer(jwt));
  return ['POST', 'PUT'].includes(method) ? req.send({}) : req;
}

describe('the policies in openapi.yaml', () => {
  it('are declared by every operation and every JSON-RPC method, and take no user\'s token exactly where security is []', () => {
    expect(operations.length).toBeGreaterThan(40);
    expect(operations.filter((op) => op.policy.caller === 'metrics_token').map((op) => op.id)).toEqual(['getMetrics']);
    for (const op of operations) {
      const security = spec.paths[op.path][op.method.toLowerCase()].security as unknown[] | undefined;
      expect([op.id, !needsUserToken(op.policy.caller)]).toEqual([op.id, Array.isArray(security) && security.length === 0]);
      // Only reads are declared as not writing, and every read is.
      expect([op.id, op.policy.writes]).toEqual([op.id, op.method !== 'GET']);
    }
    expect(rpcMethods.map((m) => m.name).sort()).toHaveLength(16);
  });

  it('are required: building the route table, the handlers or the JSON-RPC API fails, naming what is missing', () => {
    const withoutPolicy = structuredClone(spec) as typeof spec;
    delete withoutPolicy.paths['/user/{user}'].get['x-policy'];
    expect(() => new RouteTable(withoutPolicy)).toThrow('GET /user/{user}: no x-policy (every operation declares who may call it)');
    const table = new RouteTable(spec);
    expect(() => dispatch(table, [{ getMe: () => undefined, nope: () => undefined }])).toThrow(/operations without a handler: .*login.*; handlers without an operation: nope/);
    const services = t.container.services;
    expect(() => new RpcApi(services, { ...rpcPolicies, get_users: undefined })).toThrow('JSON-RPC method get_users: no x-policy (every operation declares who may call it)');
    expect(() => new RpcApi(services, { ...rpcPolicies, drop_tables: { caller: 'admin', writes: true, tokens: 'api' } })).toThrow('x-rpc-methods: no method drop_tables');
    const { get_users: _dropped, ...fewer } = rpcPolicies;
    expect(() => new RpcApi(services, fewer)).toThrow('x-rpc-methods: no policy for get_users');
    expect(() => new RpcApi(services, { ...rpcPolicies, get_users: { caller: 'admin', writes: false } })).toThrow('x-rpc-methods: get_users must declare tokens: api (RhodeCode takes only API keys)');
    expect(() => parsePolicy({ caller: 'metrics_token', writes: false, tokens: 'login' }, 'GET /metrics')).toThrow("GET /metrics: x-policy mfa and tokens mean nothing without a user's token");
  });
});

describe.each(operations.filter((o) => o.policy.caller === 'admin'))('admin-only $method $path ($id)', ({ method, path }) => {
  it('refuses a non-admin with 403 before looking at the target: an existing and an unknown one alike, with no query but the token check', async () => {
    for (const who of [target.user.id, crypto.randomUUID(), target.email, 'not-an-identifier']) {
      let status = 0;
      const statements = await captureQueries(t.knex, async () => {
        const res = await send(method, pathOf(path, who), plain.jwt);
        status = res.status;
        expect(res.body.code).toBe('forbidden');
      });
      expect(status).toBe(403);
      expect(statements.filter((s) => !/"user_tokens"|user_tokens/.test(s))).toEqual([]);
    }
  });
});

describe('token kinds, scopes and the pending password change, from the policies', () => {
  const withUserToken = operations.filter((o) => needsUserToken(o.policy.caller));

  it('refuses an API token exactly where the policy says tokens: login (and /refresh_token is one)', async () => {
    const api = await t.factory.apiToken(admin.user);
    expect(withUserToken.filter((o) => o.policy.tokens === 'login').map((o) => o.id)).toContain('refreshToken');
    expect(withUserToken.filter((o) => o.policy.tokens === 'api')).toEqual([]);
    for (const op of withUserToken) {
      const res = await send(op.method, pathOf(op.path, target.user.id), api);
      const refused = res.status === 403 && res.body.error === 'this call needs a login session, not an API token';
      expect([op.id, refused]).toEqual([op.id, op.policy.tokens === 'login']);
    }
  });

  it('lets an api:read token call exactly the operations that write nothing (of those API tokens may call)', async () => {
    const reader = await t.factory.apiToken(admin.user, ['api:read']);
    for (const op of withUserToken.filter((o) => o.policy.tokens === 'any')) {
      const res = await send(op.method, pathOf(op.path, target.user.id), reader);
      const refused = res.status === 403 && res.body.error === "the token's scopes do not allow this call";
      expect([op.id, refused]).toEqual([op.id, op.policy.writes]);
    }
  });

  it('confines a login token of a user who must change their password to the operations that allow it', async () => {
    const forced = await t.factory.loggedIn({ forcePasswordChange: true });
    for (const op of withUserToken) {
      const res = await send(op.method, pathOf(op.path, target.user.id), forced.jwt);
      const confined = res.body.code === 'password_change_required';
      expect([op.id, confined]).toEqual([op.id, !op.policy.duringPasswordChange]);
      if (confined) expect([op.id, res.status, res.headers.location]).toEqual([op.id, 401, '/user/me/password']);
    }
  });
});

describe('JSON-RPC methods, from x-rpc-methods', () => {
  const call = async (token: string, method: string, args: Record<string, unknown>) =>
    (await t.http().post('/_admin/api').send({ id: 1, auth_token: token, method, args })).body as { result: unknown; error: string | null };

  it.each(rpcMethods.filter((m) => m.policy.caller === 'admin'))('$name refuses a non-admin before looking at anything', async ({ name }) => {
    const token = await t.factory.apiToken(plain.user);
    const args = { userid: target.user.id, usergroupid: 'g', username: 'x', email: 'x@example.test', group_name: 'g' };
    let body: { error: string | null } = { error: null };
    const statements = await captureQueries(t.knex, async () => {
      body = await call(token, name, args);
    });
    expect(body.error).toBe('Access was denied to this resource.');
    expect(statements.filter((s) => !/user_tokens/.test(s))).toEqual([]);
  });

  it('lets a non-admin name only themself where the policy is self_or_admin (get_user)', async () => {
    const token = await t.factory.apiToken(plain.user);
    const selfOnly = rpcMethods.filter((m) => m.policy.caller === 'self_or_admin').map((m) => m.name);
    expect(selfOnly).toEqual(['get_user']);
    for (const me of [plain.user.id, plain.email.toUpperCase(), plain.user.name]) expect((await call(token, 'get_user', { userid: me })).error).toBeNull();
    expect((await call(token, 'get_user', { userid: target.user.id })).error).toBe('userid is not the same as your user');
  });

  it('refuses a login token in every method with "Invalid API KEY", before reading its arguments', async () => {
    expect(rpcMethods.filter((m) => m.policy.tokens !== 'api')).toEqual([]);
    for (const { name } of rpcMethods) {
      expect([name, (await call(admin.jwt, name, { userid: 42 })).error]).toEqual([name, 'Invalid API KEY']);
    }
  });

  it('lets an api:read token call exactly the methods that write nothing', async () => {
    const reader = await t.factory.apiToken(admin.user, ['api:read']);
    // Every argument present and of its type: those are checked first, before the policy.
    const args = { userid: target.user.id, usergroupid: 'g', sourceusergroupid: 'g2', username: 'x', email: 'x@example.test', group_name: 'g', perm: 'usergroup.read' };
    for (const { name, policy } of rpcMethods) {
      const { error } = await call(reader, name, args);
      expect([name, error === 'API KEY has bad role for an API call']).toEqual([name, policy.writes]);
    }
  });
});
