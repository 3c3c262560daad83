import {
  ForbiddenError,
  MfaEnrollmentRequiredError,
  MfaRequiredError,
  NotSelfError,
  PasswordChangeRequiredError,
  ScopeError,
  TokenKindError,
} from '../../src/domain/errors';
import { authorize, authorizeTokenKind, needsUserToken, parsePolicy, type MfaSettings, type Policy } from '../../src/domain/policy';
import type { Aal, Caller, Scope, TokenKind, User } from '../../src/domain/types';

/** The policy module alone: who may call what, over hand-made callers and policies. */

const ADA = { id: '0b0e3c1a-6f4e-4b8e-9d2a-1c2b3d4e5f60', name: 'ada', email: 'Ada@Example.com' };
const BOB = { id: '7d1f2e3c-4b5a-4c6d-8e7f-9a0b1c2d3e4f', name: 'bob', email: 'bob@example.com' };

interface CallerShape {
  admin?: boolean;
  mfa?: boolean;
  forced?: boolean;
  kind?: TokenKind;
  aal?: Aal;
  scopes?: Scope[];
}

/** Ada, calling with a token: by default a non-admin without MFA, with a login token (aal1, scope api). */
function caller({ admin = false, mfa = false, forced = false, kind = 'login', aal = 'aal1', scopes = ['api'] }: CallerShape = {}): Caller {
  const user = { ...ADA, isAdmin: admin, mfaEnabled: mfa, forcePasswordChange: forced } as User;
  return { user, token: { id: 't', kind, aal, scopes, lastUsed: null }, via: 'bearer', inGroups: false };
}

function policy(p: Partial<Policy> = {}): Policy {
  return { caller: 'user', writes: false, duringPasswordChange: false, mfa: undefined, tokens: 'any', ...p };
}

const REFUSALS = { TokenKindError, MfaRequiredError, MfaEnrollmentRequiredError, PasswordChangeRequiredError, ScopeError, NotSelfError, ForbiddenError };
type Outcome = keyof typeof REFUSALS | 'allowed';

/** Which error class `work` throws (exactly that class, not a subclass), or 'allowed'. */
function outcome(work: () => void): Outcome {
  try {
    work();
    return 'allowed';
  } catch (err) {
    const name = (Object.keys(REFUSALS) as (keyof typeof REFUSALS)[]).find((k) => (err as object).constructor === REFUSALS[k]);
    if (!name) throw err;
    return name;
  }
}

const REQUIRE_MFA_FOR_ADMINS: MfaSettings = { requireMfaForAdmins: true };
const check = (c: CallerShape, p: Partial<Policy>, named?: string, byName = false, mfa?: MfaSettings) => outcome(() => authorize(caller(c), policy(p), named, byName, mfa));

describe('authorize: the token kind', () => {
  it.each<[string, CallerShape, Partial<Policy>, Outcome]>([
    ['a login token where any token is taken', { kind: 'login' }, { tokens: 'any' }, 'allowed'],
    ['an API token where any token is taken', { kind: 'api' }, { tokens: 'any' }, 'allowed'],
    ['a login token where only login tokens are taken', { kind: 'login' }, { tokens: 'login' }, 'allowed'],
    ['an API token where only login tokens are taken', { kind: 'api' }, { tokens: 'login' }, 'TokenKindError'],
    ['an API token where only API tokens are taken', { kind: 'api' }, { tokens: 'api' }, 'allowed'],
    ['a login token where only API tokens are taken', { kind: 'login' }, { tokens: 'api' }, 'TokenKindError'],
    ["an admin's API token where only login tokens are taken", { kind: 'api', admin: true }, { tokens: 'login' }, 'TokenKindError'],
  ])('%s: %s', (_, c, p, expected) => {
    expect(check(c, p)).toBe(expected);
    expect(outcome(() => authorizeTokenKind(caller(c), policy(p)))).toBe(expected);
  });

  it('says which kind the call takes', () => {
    expect(() => authorizeTokenKind(caller({ kind: 'api' }), policy({ tokens: 'login' }))).toThrow('this call needs a login session, not an API token');
    expect(() => authorizeTokenKind(caller({ kind: 'login' }), policy({ tokens: 'api' }))).toThrow('this call takes an API token, not a login session');
  });

  it('authorizeTokenKind checks nothing else', () => {
    const confined = caller({ admin: false, mfa: true, forced: true, scopes: ['api:read'] });
    expect(outcome(() => authorizeTokenKind(confined, policy({ caller: 'admin', writes: true })))).toBe('allowed');
  });
});

describe('authorize: the assurance level (MFA)', () => {
  it.each<[string, CallerShape, Partial<Policy>, Outcome]>([
    ['MFA on, login aal1, a full-session operation', { mfa: true, aal: 'aal1' }, {}, 'MfaRequiredError'],
    ['MFA on, login aal1, mfa: pending (the second step)', { mfa: true, aal: 'aal1' }, { mfa: 'pending' }, 'allowed'],
    ['MFA on, login aal1, mfa: enrol', { mfa: true, aal: 'aal1' }, { mfa: 'enrol' }, 'MfaRequiredError'],
    ['MFA on, login aal1, mfa: session', { mfa: true, aal: 'aal1' }, { mfa: 'session' }, 'MfaRequiredError'],
    ['MFA on, login aal2, a full-session operation', { mfa: true, aal: 'aal2' }, {}, 'allowed'],
    ['MFA on, login aal2, mfa: session', { mfa: true, aal: 'aal2' }, { mfa: 'session' }, 'allowed'],
    ['MFA off, login aal1', { mfa: false }, {}, 'allowed'],
    ['MFA off, login aal1, mfa: session', { mfa: false }, { mfa: 'session' }, 'allowed'],
    ['MFA on, API token (aal1), a full-session operation', { mfa: true, kind: 'api' }, {}, 'allowed'],
    ['MFA on, API token, mfa: session', { mfa: true, kind: 'api' }, { mfa: 'session' }, 'MfaRequiredError'],
    ['MFA off, API token, mfa: session', { mfa: false, kind: 'api' }, { mfa: 'session' }, 'allowed'],
    ['MFA on, admin login aal1', { mfa: true, admin: true }, { caller: 'admin' }, 'MfaRequiredError'],
  ])('%s', (_, c, p, expected) => {
    expect(check(c, p)).toBe(expected);
  });

  it('tells the login token to finish the second step, and the API token to use a session', () => {
    expect(() => authorize(caller({ mfa: true }), policy())).toThrow('two-factor sign-in required: complete the second step (POST /login/mfa)');
    expect(() => authorize(caller({ mfa: true, kind: 'api' }), policy({ mfa: 'session' }))).toThrow(
      'a user with two-factor sign-in does this with a two-factor login session (aal2), not an API token',
    );
  });
});

describe('authorize: REQUIRE_MFA_FOR_ADMINS', () => {
  it.each<[string, CallerShape, Partial<Policy>, MfaSettings | undefined, Outcome]>([
    ['an admin without MFA, login', { admin: true }, {}, REQUIRE_MFA_FOR_ADMINS, 'MfaEnrollmentRequiredError'],
    ['an admin without MFA, login, mfa: enrol', { admin: true }, { mfa: 'enrol' }, REQUIRE_MFA_FOR_ADMINS, 'allowed'],
    ['an admin without MFA, login, mfa: pending', { admin: true }, { mfa: 'pending' }, REQUIRE_MFA_FOR_ADMINS, 'allowed'],
    ['an admin without MFA, login, mfa: session', { admin: true }, { mfa: 'session' }, REQUIRE_MFA_FOR_ADMINS, 'MfaEnrollmentRequiredError'],
    ['an admin with MFA, login aal2', { admin: true, mfa: true, aal: 'aal2' }, {}, REQUIRE_MFA_FOR_ADMINS, 'allowed'],
    ['a non-admin without MFA, login', {}, {}, REQUIRE_MFA_FOR_ADMINS, 'allowed'],
    ['an admin without MFA, API token', { admin: true, kind: 'api' }, {}, REQUIRE_MFA_FOR_ADMINS, 'allowed'],
    ['an admin without MFA, login, setting off', { admin: true }, {}, { requireMfaForAdmins: false }, 'allowed'],
    ['an admin without MFA, login, no settings given', { admin: true }, {}, undefined, 'allowed'],
  ])('%s', (_, c, p, settings, expected) => {
    expect(check(c, p, undefined, false, settings)).toBe(expected);
  });
});

describe('authorize: a forced password change', () => {
  it.each<[string, CallerShape, Partial<Policy>, Outcome]>([
    ['login token, an ordinary operation', { forced: true }, {}, 'PasswordChangeRequiredError'],
    ['login token, during_password_change: true', { forced: true }, { duringPasswordChange: true }, 'allowed'],
    ["an admin's login token", { forced: true, admin: true }, { caller: 'admin' }, 'PasswordChangeRequiredError'],
    ['API token (not confined)', { forced: true, kind: 'api' }, {}, 'allowed'],
    ['no change pending', { forced: false }, {}, 'allowed'],
  ])('%s', (_, c, p, expected) => {
    expect(check(c, p)).toBe(expected);
  });
});

describe('authorize: scopes', () => {
  it.each<[Scope[], boolean, Outcome]>([
    [['api'], true, 'allowed'],
    [['api'], false, 'allowed'],
    [['api:write'], true, 'allowed'],
    [['api:read'], false, 'allowed'],
    [['api:read'], true, 'ScopeError'],
    [[], false, 'ScopeError'],
  ])('an API token with scopes %j on an operation that writes: %s', (scopes, writes, expected) => {
    expect(check({ kind: 'api', scopes }, { writes })).toBe(expected);
    expect(check({ kind: 'api', scopes, admin: true }, { writes, caller: 'admin' })).toBe(expected);
  });
});

describe('authorize: the caller rule', () => {
  it.each<[string, CallerShape, Partial<Policy>, string | undefined, boolean, Outcome]>([
    ['admin rule, a non-admin', {}, { caller: 'admin' }, undefined, false, 'ForbiddenError'],
    ['admin rule, an admin', { admin: true }, { caller: 'admin' }, undefined, false, 'allowed'],
    ['user rule, a non-admin', {}, { caller: 'user' }, undefined, false, 'allowed'],
    ['self_or_admin, naming nobody (themself)', {}, { caller: 'self_or_admin' }, undefined, false, 'allowed'],
    ['self_or_admin, naming themself by id', {}, { caller: 'self_or_admin' }, ADA.id, false, 'allowed'],
    ['self_or_admin, naming themself by id in upper case', {}, { caller: 'self_or_admin' }, ADA.id.toUpperCase(), false, 'allowed'],
    ['self_or_admin, naming themself by email in another case', {}, { caller: 'self_or_admin' }, 'ada@example.COM', false, 'allowed'],
    ['self_or_admin, naming themself by email=', {}, { caller: 'self_or_admin' }, 'email=ada@example.com', false, 'allowed'],
    ['self_or_admin, naming another by id', {}, { caller: 'self_or_admin' }, BOB.id, false, 'NotSelfError'],
    ['self_or_admin, naming another by email', {}, { caller: 'self_or_admin' }, BOB.email, false, 'NotSelfError'],
    ['self_or_admin, naming themself by name where names count (JSON-RPC)', {}, { caller: 'self_or_admin' }, 'ada', true, 'allowed'],
    ['self_or_admin, naming themself by name where they do not (REST)', {}, { caller: 'self_or_admin' }, 'ada', false, 'NotSelfError'],
    ['self_or_admin, naming another by name (JSON-RPC)', {}, { caller: 'self_or_admin' }, 'bob', true, 'NotSelfError'],
    ['self_or_admin, an admin naming another', { admin: true }, { caller: 'self_or_admin' }, BOB.id, false, 'allowed'],
    ['public: any token that reaches it', {}, { caller: 'public' }, undefined, false, 'allowed'],
    ['metrics_token: any token that reaches it', {}, { caller: 'metrics_token' }, undefined, false, 'allowed'],
  ])('%s', (_, c, p, named, byName, expected) => {
    expect(check(c, p, named, byName)).toBe(expected);
  });

  it('tells a non-admin that admin access is required', () => {
    expect(() => authorize(caller(), policy({ caller: 'admin' }))).toThrow(new ForbiddenError('admin access required'));
    expect(() => authorize(caller(), policy({ caller: 'self_or_admin' }), BOB.id)).toThrow('only system admins may name another user');
  });
});

describe('authorize: the order of the checks', () => {
  // Each row breaks two rules; the earlier check's error is the one thrown.
  it.each<[string, CallerShape, Partial<Policy>, MfaSettings | undefined, Outcome]>([
    ['token kind before assurance level', { mfa: true, aal: 'aal1' }, { tokens: 'api' }, undefined, 'TokenKindError'],
    ['token kind before scopes', { kind: 'api', scopes: ['api:read'] }, { tokens: 'login', writes: true }, undefined, 'TokenKindError'],
    ['token kind before the caller rule', { kind: 'api' }, { tokens: 'login', caller: 'admin' }, undefined, 'TokenKindError'],
    ['assurance level before password change', { mfa: true, forced: true }, {}, undefined, 'MfaRequiredError'],
    ['enrolment before password change', { admin: true, forced: true }, {}, REQUIRE_MFA_FOR_ADMINS, 'MfaEnrollmentRequiredError'],
    ['assurance level before enrolment', { admin: true, mfa: true, aal: 'aal1' }, {}, REQUIRE_MFA_FOR_ADMINS, 'MfaRequiredError'],
    ['password change before scopes', { forced: true, scopes: ['api:read'] }, { writes: true }, undefined, 'PasswordChangeRequiredError'],
    ['password change before the caller rule', { forced: true }, { caller: 'admin' }, undefined, 'PasswordChangeRequiredError'],
    ['scopes before the API-token session rule', { kind: 'api', mfa: true, scopes: ['api:read'] }, { writes: true, mfa: 'session' }, undefined, 'ScopeError'],
    ['scopes before the caller rule (admin)', { kind: 'api', scopes: ['api:read'] }, { writes: true, caller: 'admin' }, undefined, 'ScopeError'],
    ['scopes before the caller rule (self)', { kind: 'api', scopes: ['api:read'] }, { writes: true, caller: 'self_or_admin' }, undefined, 'ScopeError'],
    ['the API-token session rule before the caller rule', { kind: 'api', mfa: true }, { mfa: 'session', caller: 'admin' }, undefined, 'MfaRequiredError'],
  ])('%s', (_, c, p, settings, expected) => {
    expect(check(c, p, BOB.id, false, settings)).toBe(expected);
  });
});

describe('parsePolicy', () => {
  it('reads a policy, with its defaults', () => {
    expect(parsePolicy({ caller: 'user', writes: false }, 'GET /x')).toEqual({ caller: 'user', writes: false, duringPasswordChange: false, mfa: undefined, tokens: 'any' });
    expect(parsePolicy({ caller: 'self_or_admin', writes: true, during_password_change: true, mfa: 'session', tokens: 'login' }, 'GET /x')).toEqual({
      caller: 'self_or_admin',
      writes: true,
      duringPasswordChange: true,
      mfa: 'session',
      tokens: 'login',
    });
    expect(parsePolicy({ caller: 'metrics_token', writes: false }, 'GET /metrics').caller).toBe('metrics_token');
  });

  it.each<[string, unknown, string]>([
    ['missing', undefined, 'no x-policy (every operation declares who may call it)'],
    ['null', null, 'no x-policy (every operation declares who may call it)'],
    ['not an object', 'admin', 'no x-policy (every operation declares who may call it)'],
    ['an unknown key', { caller: 'user', writes: false, role: 'x', scope: 'y' }, 'x-policy has unknown keys role, scope'],
    ['no caller', { writes: false }, 'x-policy caller must be one of public, metrics_token, user, self_or_admin, admin'],
    ['an unknown caller', { caller: 'root', writes: false }, 'x-policy caller must be one of public, metrics_token, user, self_or_admin, admin'],
    ['no writes', { caller: 'user' }, 'x-policy writes must be true or false'],
    ['writes as text', { caller: 'user', writes: 'false' }, 'x-policy writes must be true or false'],
    ['during_password_change as text', { caller: 'user', writes: false, during_password_change: 'yes' }, 'x-policy during_password_change must be true or false'],
    ['an unknown mfa', { caller: 'user', writes: false, mfa: 'always' }, 'x-policy mfa must be one of pending, enrol, session'],
    ['an unknown tokens', { caller: 'user', writes: false, tokens: 'jwt' }, 'x-policy tokens must be one of any, login, api'],
    ['mfa on a public operation', { caller: 'public', writes: false, mfa: 'pending' }, 'x-policy mfa and tokens mean nothing without a user\'s token'],
    ['tokens on the metrics operation', { caller: 'metrics_token', writes: false, tokens: 'api' }, 'x-policy mfa and tokens mean nothing without a user\'s token'],
  ])('refuses %s, naming the operation', (_, raw, message) => {
    expect(() => parsePolicy(raw, 'POST /x')).toThrow(new Error(`POST /x: ${message}`));
  });

  it('accepts tokens: any on a public operation (the default, spelt out)', () => {
    expect(parsePolicy({ caller: 'public', writes: false, tokens: 'any' }, 'GET /x').tokens).toBe('any');
  });
});

describe('needsUserToken', () => {
  it.each([
    ['public', false],
    ['metrics_token', false],
    ['user', true],
    ['self_or_admin', true],
    ['admin', true],
  ] as const)('%s: %s', (rule, expected) => {
    expect(needsUserToken(rule)).toBe(expected);
  });
});
