import { loadApiSpec } from '../../src/api-spec';
import { RouteTable, type Spec } from '../../src/http/route-table';

/** The route table alone: no app, no database, no HTTP. */

const USER = { caller: 'user', writes: false };
const PUBLIC = { caller: 'public', writes: false };
const BEARER = [{ bearerAuth: [] }];

/** One operation of a hand-written spec: authenticated by the document's bearer scheme unless it says otherwise. */
function op(operationId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { operationId, 'x-policy': USER, ...extra };
}

/** A hand-written spec: the document requires a bearer token, as openapi.yaml does. */
function spec(paths: Spec['paths']): Spec {
  return { security: BEARER, paths };
}

const jsonBody = { content: { 'application/json': { schema: { type: 'object' } } } };

/** The operation id and parameters a request is matched to, or undefined. */
function route(table: RouteTable, method: string, path: string): [string, Record<string, string>] | undefined {
  const m = table.match(method, path);
  return m && [m.operation.id, m.params];
}

describe('RouteTable.match on a hand-written spec', () => {
  // The template is listed first: the literal must still win.
  const table = new RouteTable(
    spec({
      '/user/{user}': { get: op('getUser'), delete: op('deleteUser') },
      '/user/me': { get: op('getMe') },
      '/user/{user}/settings/{key}': { get: op('getUserSetting') },
      '/user/me/settings/{key}': { get: op('getMySetting') },
      '/user/{user}/token': { get: op('listUserTokens') },
      '/healthz': { get: op('healthz', { security: [], 'x-policy': PUBLIC }) },
      '/': { get: op('root', { security: [], 'x-policy': PUBLIC }) },
    }),
  );

  it('finds a literal path by its method and path, with no parameters', () => {
    expect(route(table, 'GET', '/healthz')).toEqual(['healthz', {}]);
    expect(route(table, 'GET', '/')).toEqual(['root', {}]);
  });

  it('prefers a literal segment to a parameter whatever the order in the file (/user/me beats /user/{user})', () => {
    expect(route(table, 'GET', '/user/me')).toEqual(['getMe', {}]);
    expect(route(table, 'GET', '/user/me/settings/theme')).toEqual(['getMySetting', { key: 'theme' }]);
    expect(route(table, 'GET', '/user/ada/settings/theme')).toEqual(['getUserSetting', { user: 'ada', key: 'theme' }]);
  });

  it('prefers the literal template in the other order too', () => {
    const reversed = new RouteTable(
      spec({
        '/user/me/settings/{key}': { get: op('getMySetting') },
        '/user/{user}/settings/{key}': { get: op('getUserSetting') },
      }),
    );
    const forward = new RouteTable(
      spec({
        '/user/{user}/settings/{key}': { get: op('getUserSetting') },
        '/user/me/settings/{key}': { get: op('getMySetting') },
      }),
    );
    for (const t of [reversed, forward]) expect(route(t, 'GET', '/user/me/settings/k')).toEqual(['getMySetting', { key: 'k' }]);
  });

  it('binds template parameters by name', () => {
    expect(route(table, 'GET', '/user/ada')).toEqual(['getUser', { user: 'ada' }]);
    expect(route(table, 'DELETE', '/user/ada')).toEqual(['deleteUser', { user: 'ada' }]);
    expect(route(table, 'GET', '/user/ada/token')).toEqual(['listUserTokens', { user: 'ada' }]);
  });

  it('percent-decodes path parameters, %2F included (it becomes a slash inside the one parameter)', () => {
    expect(route(table, 'GET', '/user/ada%20lovelace')).toEqual(['getUser', { user: 'ada lovelace' }]);
    expect(route(table, 'GET', '/user/%C3%A9mile')).toEqual(['getUser', { user: 'émile' }]);
    expect(route(table, 'GET', '/user/a%2Fb')).toEqual(['getUser', { user: 'a/b' }]);
    expect(route(table, 'GET', '/user/a%2Fb/settings/c%2Fd')).toEqual(['getUserSetting', { user: 'a/b', key: 'c/d' }]);
  });

  it('throws URIError on a malformed percent-encoding in a parameter', () => {
    expect(() => table.match('GET', '/user/%')).toThrow(URIError);
    expect(() => table.match('GET', '/user/%zz')).toThrow(URIError);
    expect(() => table.match('GET', '/user/%C3')).toThrow(URIError); // half a UTF-8 sequence
  });

  it('does not decode literal segments: /user/%6De is the template with user "me", not /user/me', () => {
    expect(route(table, 'GET', '/user/%6De')).toEqual(['getUser', { user: 'me' }]);
    expect(route(table, 'GET', '/heal%74hz')).toBeUndefined();
  });

  it('refuses an empty parameter segment', () => {
    expect(route(table, 'GET', '/user//token')).toBeUndefined();
    expect(route(table, 'GET', '/user//settings/k')).toBeUndefined();
  });

  it('answers undefined for a known path with a method it does not have, literal or templated', () => {
    expect(table.match('POST', '/healthz')).toBeUndefined();
    expect(table.match('POST', '/user/ada')).toBeUndefined();
    expect(table.match('PUT', '/user/me')).toBeUndefined();
  });

  it('answers undefined for an unknown path, or a known one with more or fewer segments', () => {
    expect(table.match('GET', '/nothing')).toBeUndefined();
    expect(table.match('GET', '/user/ada/settings')).toBeUndefined();
    expect(table.match('GET', '/user/ada/settings/k/more')).toBeUndefined();
  });

  it('ignores one trailing slash, literal or templated, but not two', () => {
    expect(route(table, 'GET', '/healthz/')).toEqual(['healthz', {}]);
    expect(route(table, 'GET', '/user/me/')).toEqual(['getMe', {}]);
    expect(route(table, 'GET', '/user/ada/')).toEqual(['getUser', { user: 'ada' }]);
    expect(route(table, 'GET', '/healthz//')).toBeUndefined();
  });

  it('does not fall HEAD back to GET (the app routes HEAD as GET before it asks)', () => {
    expect(table.match('HEAD', '/healthz')).toBeUndefined();
    expect(table.match('HEAD', '/user/ada')).toBeUndefined();
  });

  it('takes the path without its query string: a query left on is part of the last segment', () => {
    // The app passes req.path, which has none; match itself does not strip it.
    expect(route(table, 'GET', '/healthz?verbose=1')).toBeUndefined();
    expect(route(table, 'GET', '/user/me?x=1')).toEqual(['getUser', { user: 'me?x=1' }]);
  });

  it('matches methods and paths case-sensitively (methods in upper case, as Node gives them)', () => {
    expect(table.match('get', '/healthz')).toBeUndefined();
    expect(table.match('GET', '/HEALTHZ')).toBeUndefined();
    expect(route(table, 'GET', '/User/me')).toBeUndefined();
    expect(route(table, 'GET', '/user/ME')).toEqual(['getUser', { user: 'ME' }]);
  });

  it('leaves out the operations it is told not to serve, as unknown routes', () => {
    const without = new RouteTable(spec({ '/user/me': { get: op('getMe') }, '/user/{user}': { get: op('getUser') } }), new Set(['getMe']));
    expect(without.operations.map((o) => o.id)).toEqual(['getUser']);
    expect(route(without, 'GET', '/user/me')).toEqual(['getUser', { user: 'me' }]);
  });
});

describe('RouteTable: what it works out of each operation', () => {
  it('reads accepts from the document or the operation, and public from security: []', () => {
    const table = new RouteTable(
      spec({
        '/a': {
          get: op('a'),
          post: op('b', { security: [{ bearerAuth: [] }, { cookieAuth: [] }] }),
          put: op('c', { security: [], 'x-policy': PUBLIC }),
        },
      }),
    );
    expect(table.operations.map((o) => [o.id, o.accepts])).toEqual([
      ['a', { bearer: true, cookie: false }],
      ['c', undefined],
      ['b', { bearer: true, cookie: true }],
    ]);
  });

  it('reads the body kind, the body limit in bytes and whether there is input', () => {
    const table = new RouteTable(
      spec({
        '/a': {
          post: op('json', { requestBody: jsonBody, 'x-body-limit': '16kb' }),
          put: op('any', { requestBody: { content: { '*/*': {} } }, 'x-body-limit': '5MB' }),
          patch: op('default', { requestBody: jsonBody }),
          get: op('none'),
        },
        '/b': { get: op('query', { parameters: [{ in: 'query', name: 'q' }] }) },
      }),
    );
    expect(table.operations.map((o) => [o.id, o.body, o.bodyLimit, o.hasInput])).toEqual([
      ['none', 'none', undefined, false],
      ['any', 'any', 5 * 1024 * 1024, true],
      ['json', 'json', 16 * 1024, true],
      ['default', 'json', undefined, true],
      ['query', 'none', undefined, true],
    ]);
  });

  it("collects the query parameters' names, from the path item and the operation, $refs followed", () => {
    const table = new RouteTable({
      ...spec({
        '/a': { parameters: [{ in: 'query', name: 'limit' }], get: op('a', { parameters: [{ $ref: '#/components/parameters/Q' }, { in: 'path', name: 'p' }] }) },
      }),
      components: { parameters: { Q: { in: 'query', name: 'q' } } },
    } as Spec);
    expect([...table.queryNames].sort()).toEqual(['limit', 'q']);
  });
});

describe('RouteTable: start-up refusals, each naming the operation', () => {
  const build = (paths: Spec['paths'], document: Partial<Spec> = {}) => () => new RouteTable({ ...spec(paths), ...document });

  it('an operation without x-policy', () => {
    expect(build({ '/x': { get: { operationId: 'x' } } })).toThrow(new Error('GET /x: no x-policy (every operation declares who may call it)'));
  });

  it('an operationId used twice', () => {
    expect(build({ '/a': { get: op('same') }, '/b': { post: op('same') } })).toThrow(new Error('POST /b: operationId same is used twice'));
  });

  it('an operation without operationId', () => {
    expect(build({ '/a': { delete: { 'x-policy': USER } } })).toThrow(new Error('DELETE /a: no operationId'));
  });

  it('a policy that needs a user token on a public operation, and a public policy on an authenticated one', () => {
    expect(build({ '/a': { get: op('a', { security: [] }) } })).toThrow(new Error('GET /a: x-policy caller user but security is public'));
    expect(build({ '/a': { get: op('a', { 'x-policy': PUBLIC }) } })).toThrow(new Error('GET /a: x-policy caller public but security requires a credential'));
    expect(build({ '/a': { get: op('a', { 'x-policy': { caller: 'metrics_token', writes: false } }) } })).toThrow(
      new Error('GET /a: x-policy caller metrics_token but security requires a credential'),
    );
    // Public everywhere when the document asks for nothing.
    expect(build({ '/a': { get: op('a') } }, { security: undefined })).toThrow(new Error('GET /a: x-policy caller user but security is public'));
  });

  it('a public operation with a body and no x-body-limit (an authenticated one takes the default)', () => {
    expect(build({ '/a': { post: op('a', { security: [], 'x-policy': PUBLIC, requestBody: jsonBody }) } })).toThrow(
      new Error('POST /a: a public operation that takes a body declares its x-body-limit'),
    );
    expect(build({ '/a': { post: op('a', { requestBody: jsonBody }) } })).not.toThrow();
  });

  it('an x-body-limit that is not a size, or on an operation without a body', () => {
    for (const bad of ['16 kb', '1gb', 16384, '0kb']) {
      expect(build({ '/a': { post: op('a', { requestBody: jsonBody, 'x-body-limit': bad }) } })).toThrow(new Error('POST /a: x-body-limit must be a size such as 16kb or 5mb'));
    }
    expect(build({ '/a': { post: op('a', { 'x-body-limit': '1kb' }) } })).toThrow(new Error('POST /a: x-body-limit on an operation without a request body'));
  });

  it('a request body of another media type', () => {
    expect(build({ '/a': { post: op('a', { requestBody: { content: { 'text/plain': {} } } }) } })).toThrow(
      new Error('POST /a: request bodies are application/json (or */* read as JSON), not text/plain'),
    );
  });

  it('a security requirement the policy cannot enforce faithfully', () => {
    expect(build({ '/a': { get: op('a', { security: [{ bearerAuth: [], cookieAuth: [] }] }) } })).toThrow(
      new Error('GET /a security: unsupported security requirement {"bearerAuth":[],"cookieAuth":[]}'),
    );
    expect(build({ '/a': { get: op('a', { security: [{}] }) } })).toThrow(new Error('GET /a security: unsupported security requirement {}'));
    expect(build({ '/a': { get: op('a') } }, { security: [{ apiKey: [] }] })).toThrow(new Error('security: unsupported security requirement {"apiKey":[]}'));
  });

  it('an unknown x-invalid-text answer', () => {
    expect(build({ '/a': { get: op('a', { 'x-invalid-text': 'ignore' }) } })).toThrow(
      new Error('GET /a: x-invalid-text must be one of validation_failed, unauthenticated, accepted, handler'),
    );
  });

  it("a malformed x-policy, with parsePolicy's message", () => {
    expect(build({ '/a': { get: op('a', { 'x-policy': { caller: 'root', writes: false } }) } })).toThrow(
      new Error('GET /a: x-policy caller must be one of public, metrics_token, user, self_or_admin, admin'),
    );
  });
});

describe('RouteTable from openapi.yaml', () => {
  const table = new RouteTable(loadApiSpec() as unknown as Spec);

  it('builds, with every operation once', () => {
    const ids = table.operations.map((o) => o.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBeGreaterThan(50);
  });

  it('routes /user/me and its children to the caller, /user/{user} and its children to the named user', () => {
    expect(route(table, 'GET', '/user/me')).toEqual(['getMe', {}]);
    expect(route(table, 'GET', '/user/ada')).toEqual(['getUser', { user: 'ada' }]);
    expect(route(table, 'GET', '/user/me/settings/theme')).toEqual(['getMySetting', { key: 'theme' }]);
    expect(route(table, 'GET', '/user/ada/settings/theme')).toEqual(['getUserSetting', { user: 'ada', key: 'theme' }]);
    expect(route(table, 'DELETE', '/user/me/token/ci')).toEqual(['deleteMyToken', { name: 'ci' }]);
    expect(route(table, 'DELETE', '/user/ada/token/ci')).toEqual(['deleteUserToken', { user: 'ada', name: 'ci' }]);
    expect(route(table, 'GET', '/user/me/token')).toEqual(['listMyTokens', {}]);
    expect(route(table, 'GET', '/user/')).toEqual(['listUsers', {}]); // the trailing slash dropped, not an empty {user}
    expect(route(table, 'GET', '/user/ada/token')).toEqual(['listUserTokens', { user: 'ada' }]);
  });

  it('routes user group paths with several parameters', () => {
    expect(route(table, 'PUT', '/user_group/devs/grant/user_group/ops')).toEqual(['grantUserGroupOnUserGroup', { group: 'devs', source: 'ops' }]);
    expect(route(table, 'PUT', '/user_group/devs/member/ada')).toEqual(['addUserGroupMember', { group: 'devs', user: 'ada' }]);
    expect(route(table, 'GET', '/user_group/devs/effective/ada')).toEqual(['getEffectiveUserGroupPermission', { group: 'devs', user: 'ada' }]);
  });

  it('answers undefined for a known path with another method, and for HEAD', () => {
    expect(table.match('PUT', '/user/ada')).toBeUndefined();
    expect(table.match('GET', '/login')).toBeUndefined();
    expect(table.match('HEAD', '/healthz')).toBeUndefined();
  });

  it('lets a literal path with a method it lacks fall to the template that has it: DELETE /user/me is deactivateUser with user "me"', () => {
    // Specificity orders templates only: the literal /user/me has no DELETE, /user/{user} has.
    expect(route(table, 'DELETE', '/user/me')).toEqual(['deactivateUser', { user: 'me' }]);
    expect(route(table, 'POST', '/user/me/revoke')).toEqual(['revokeMyTokens', {}]);
    expect(route(table, 'GET', '/user/me/revoke')).toBeUndefined();
    expect(route(table, 'GET', '/user/me/password')).toBeUndefined();
    expect(route(table, 'DELETE', '/user/me/password')).toEqual(['resetUserPassword', { user: 'me' }]);
  });

  it('carries each operation\'s policy and security (spot checks)', () => {
    const byId = new Map(table.operations.map((o) => [o.id, o]));
    expect(byId.get('healthz')).toMatchObject({ accepts: undefined, policy: { caller: 'public' } });
    expect(byId.get('getMetrics')).toMatchObject({ accepts: undefined, policy: { caller: 'metrics_token' } });
    expect(byId.get('refreshToken')).toMatchObject({ policy: { tokens: 'login' } });
    expect(byId.get('createUser')).toMatchObject({ accepts: { bearer: true }, policy: { caller: 'admin', writes: true } });
    for (const o of table.operations) if (o.accepts === undefined && o.body !== 'none') expect([o.id, o.bodyLimit]).toEqual([o.id, expect.any(Number)]);
  });
});
