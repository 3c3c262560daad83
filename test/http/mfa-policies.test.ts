import crypto from 'node:crypto';
import { loadApiSpec } from '../../src/api-spec';
import { needsUserToken, parsePolicy } from '../../src/domain/policy';
import type { Spec } from '../../src/http/route-table';
import { createTestApp, type TestApp } from '../helpers/test-app';
import { addFactor, bearer, codeAt, enrolled, firstStep } from '../helpers/mfa';

// Generated from openapi.yaml: what a login token short of the assurance level it needs may call
// is what each operation's x-policy `mfa` says, enforced before anything else.

type SpecOperation = Record<string, unknown>;
const spec = loadApiSpec() as unknown as Spec & { paths: Record<string, Record<string, SpecOperation>> };
const operations = Object.entries(spec.paths)
  .flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => ['get', 'post', 'put', 'delete', 'patch'].includes(method))
      .map(([method, op]) => ({ path, method: method.toUpperCase(), id: (op as SpecOperation).operationId as string, policy: parsePolicy((op as SpecOperation)['x-policy'], `${method} ${path}`) })),
  )
  .filter((o) => needsUserToken(o.policy.caller)); // no user's token, nothing to confine

function pathOf(path: string, who: string): string {
  return path.replace(/\{(\w+)\}/g, (_m, name: string) => (name === 'user' ? encodeURIComponent(who) : name === 'id' ? crypto.randomUUID() : `p-${name}`));
}

function send(t: TestApp, method: string, path: string, jwt: string) {
  const req = t.http()[method.toLowerCase() as 'get' | 'post' | 'put' | 'delete' | 'patch'](path).set(bearer(jwt));
  return ['POST', 'PUT', 'PATCH'].includes(method) ? req.send({}) : req;
}

describe('the aal1 token of a user with MFA (the second step pending)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('the spec lets it call exactly POST /login/mfa, POST /login/mfa/options and GET /me', () => {
    expect(operations.filter((o) => o.policy.mfa === 'pending').map((o) => o.id).sort()).toEqual(['amILoggedIn', 'loginMfa', 'loginMfaOptions']);
  });

  it('gets 403 mfa_required from every operation not declaring mfa: pending, and not from those that do; a system admin too', async () => {
    for (const admin of [false, true]) {
      const u = await enrolled(t, { admin });
      const { jwt } = await firstStep(t, u);
      for (const op of operations) {
        const res = await send(t, op.method, pathOf(op.path, u.user.id), jwt);
        expect([admin, op.id, res.status === 403 && res.body.code === 'mfa_required']).toEqual([admin, op.id, op.policy.mfa !== 'pending']);
      }
      // Nothing it tried changed the user's factors, and the token is still the pending one.
      expect((await t.http().get('/me').set(bearer(jwt))).status).toBe(204);
      expect(await t.knex('mfa_factors').where({ user_id: u.user.id }).count('* as n').first()).toEqual({ n: '1' });
    }
  });

  it('is not confined once the second step is done, and API tokens never are', async () => {
    const u = await enrolled(t);
    const api = await t.factory.apiToken(u.user);
    for (const op of operations) {
      for (const jwt of [u.jwt, api]) {
        const res = await send(t, op.method, pathOf(op.path, u.user.id), jwt);
        expect([op.id, res.body?.code === 'mfa_required']).toEqual([op.id, jwt === api && op.policy.mfa === 'session']);
      }
    }
  });
});

describe('REQUIRE_MFA_FOR_ADMINS=1', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ env: { REQUIRE_MFA_FOR_ADMINS: '1' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('the spec lets an admin without MFA set up a factor: the factor routes, GET /user/me, GET /me, the second step', () => {
    expect(operations.filter((o) => o.policy.mfa === 'pending' || o.policy.mfa === 'enrol').map((o) => o.id).sort()).toEqual(
      ['amILoggedIn', 'createMyFactor', 'deleteMyFactor', 'getMe', 'listMyFactors', 'loginMfa', 'loginMfaOptions', 'renameMyFactor', 'verifyMyFactor'],
    );
  });

  it('tells a system admin without MFA at login, and confines the token: 403 mfa_enrollment_required from every other operation', async () => {
    const a = await t.factory.user({ admin: true });
    const res = await t.http().post('/login').send({ email: a.email, password: a.password });
    expect(res.body).toEqual({ jwt_token: expect.any(String), mfa_enrollment_required: true });
    const jwt = res.body.jwt_token;
    for (const op of operations) {
      const r = await send(t, op.method, pathOf(op.path, a.user.id), jwt);
      expect([op.id, r.status === 403 && r.body.code === 'mfa_enrollment_required']).toEqual([op.id, op.policy.mfa !== 'pending' && op.policy.mfa !== 'enrol']);
    }
  });

  it('lets the admin enrol with that token, which then becomes a full session; other users and API tokens are not affected', async () => {
    const a = await t.factory.user({ admin: true });
    const jwt = (await t.http().post('/login').send({ email: a.email, password: a.password })).body.jwt_token;
    const me = await t.http().get('/user/me').set(bearer(jwt));
    expect([me.status, me.body.mfa_enabled]).toEqual([200, false]);
    const factor = await addFactor(t, { jwt, password: a.password });
    const verified = await t.http().post(`/user/me/factor/${factor.id}/verify`).set(bearer(jwt)).send({ code: codeAt(t, factor.secret) });
    expect(verified.status).toBe(200);
    expect((await t.http().get('/user').set(bearer(jwt))).status).toBe(200);
    // The next login asks for the second step as for anyone with MFA.
    expect((await t.http().post('/login').send({ email: a.email, password: a.password })).body.mfa_required).toBe(true);

    const plain = await t.factory.loggedIn();
    expect((await t.http().post('/login').send({ email: plain.email, password: plain.password })).body).toEqual({ jwt_token: expect.any(String) });
    expect((await t.http().get('/user/me/settings').set(bearer(plain.jwt))).status).toBe(200);
    const other = await t.factory.user({ admin: true });
    expect((await t.http().get('/user').set(bearer(await t.factory.apiToken(other.user)))).status).toBe(200);
  });
});
