import { Secret, TOTP } from 'otpauth';
import { bearer, type TestApp, type TestUser } from './test-app';

/** A user who has turned two-factor sign-in on through the API, with what the 201 and the 200 gave. */
export interface EnrolledUser extends TestUser {
  /** A full (`aal2`) login token: the session that confirmed the factor. */
  jwt: string;
  factorId: string;
  /** The base32 secret the 201 showed. */
  secret: string;
  recoveryCodes: string[];
}

/** The service's TOTP code of `secret` at the service's time (the test controls its clock). */
export function codeAt(t: TestApp, secret: string, offsetMs = 0): string {
  return TOTP.generate({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30, timestamp: t.clock.now().getTime() + offsetMs });
}

/**
 * A code of a step no code was accepted for yet: the service's clock moves on a step (30 s) first,
 * so that each call gives a code of a later step (a code is accepted once per factor, and a code
 * of an earlier step never).
 */
export function freshCode(t: TestApp, secret: string): string {
  t.clock.advance(30_000);
  return codeAt(t, secret);
}

/** Re-exported for the MFA tests, which import their helpers from here. */
export { bearer };

/** Adds a pending authenticator app with the caller's password: the 201's body. */
export async function addFactor(t: TestApp, u: { jwt: string; password: string }, name = 'phone') {
  const res = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'totp', name, current_password: u.password });
  if (res.status !== 201) throw new Error(`enrol failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { id: string; secret: string; uri: string; qr_svg: string; name: string };
}

/** A user with a confirmed authenticator app (and their first recovery codes). */
export async function enrolled(t: TestApp, options: Parameters<TestApp['factory']['user']>[0] = {}): Promise<EnrolledUser> {
  const u = await t.factory.loggedIn(options);
  const factor = await addFactor(t, u);
  const res = await t.http().post(`/user/me/factor/${factor.id}/verify`).set(bearer(u.jwt)).send({ code: freshCode(t, factor.secret) });
  if (res.status !== 200) throw new Error(`verify failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { ...u, user: { ...u.user, mfaEnabled: true }, factorId: factor.id, secret: factor.secret, recoveryCodes: res.body.recovery_codes };
}

/** Logs in with the password: the pending (`aal1`) token and the answer. */
export async function firstStep(t: TestApp, u: { email: string; password: string }) {
  const res = await t.http().post('/login').send({ email: u.email, password: u.password });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { jwt: res.body.jwt_token as string, res };
}

/** Both steps: a full (`aal2`) login token. */
export async function fullLogin(t: TestApp, u: { email: string; password: string; secret: string }): Promise<string> {
  const { jwt } = await firstStep(t, u);
  const res = await t.http().post('/login/mfa').set(bearer(jwt)).send({ code: freshCode(t, u.secret) });
  if (res.status !== 200) throw new Error(`second step failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.jwt_token as string;
}

/** The audit entries of an action about a user, oldest first. */
export async function auditOf(t: TestApp, action: string, userId: string): Promise<{ action: string; actor_id: string | null; summary: Record<string, unknown> }[]> {
  return t.knex('audit_log').select('action', 'actor_id', 'summary').where({ action, target_id: userId }).orderBy('seq');
}
