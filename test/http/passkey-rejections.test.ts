import crypto from 'node:crypto';
import type { AuthenticationResponseJSON, PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { createTestApp, unique, type TestApp, type TestUser } from '../helpers/test-app';
import { auditOf, bearer, firstStep } from '../helpers/mfa';
import { SoftAuthenticator, type SoftAlg, type SoftAuthenticatorOptions, type Tweak } from '../helpers/soft-authenticator';

// Every refusal of issue 20 item 3 (WebAuthn §7.1 / §7.2), at each ceremony it applies to: a
// passkey's registration (`400 mfa_failed`), the second step of a login (`401 mfa_failed`) and a
// sign-in without password (`401 unauthenticated`). Each refused attempt changes nothing (no
// token, no verified factor, the counter as it was, no cookie) but the spent challenge, the
// account's count of failures and an audit entry; and each is shown next to the same ceremony
// done right, which succeeds.

/** The test app's relying party (from its APP_URL): the tweaks below are made against it. */
const RP_ID = 'accounts.example.test';
const ORIGIN = 'https://accounts.example.test';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  expect(t.config.webauthn).toMatchObject({ rpId: RP_ID, origins: [ORIGIN] });
});
afterAll(async () => {
  await t.close();
});

const COPIED = 'A passkey of your Accounts account may have been copied';

function device(opts: Partial<SoftAuthenticatorOptions> = {}): SoftAuthenticator {
  return new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN, ...opts });
}

/** Creation options for a credential no server asked for (a passkey never registered here). */
function foreignCreationOptions(): PublicKeyCredentialCreationOptionsJSON {
  return {
    rp: { name: 'Elsewhere', id: RP_ID },
    user: { id: crypto.randomBytes(16).toString('base64url'), name: 'someone', displayName: 'someone' },
    challenge: crypto.randomBytes(32).toString('base64url'),
    pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
  };
}

/** The user handle the service gives a user: the 16 bytes of the UUID, base64url. */
function handleOf(userId: string): string {
  return Buffer.from(userId.replace(/-/g, ''), 'hex').toString('base64url');
}

const randomChallenge = () => crypto.randomBytes(32).toString('base64url');

/** Adds a pending passkey: the 201's factor id and creation options. */
async function addPasskey(u: { jwt: string; password: string }, name = unique('key')): Promise<{ id: string; options: PublicKeyCredentialCreationOptionsJSON }> {
  const res = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name, current_password: u.password });
  if (res.status !== 201) throw new Error(`add passkey failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.id, options: res.body.options };
}

function confirm(jwt: string, factorId: string, credential: RegistrationResponseJSON) {
  return t.http().post(`/user/me/factor/${factorId}/verify`).set(bearer(jwt)).send({ credential });
}

interface PasskeyUser extends TestUser {
  /** A full (aal2) login token: the one that confirmed the passkey. */
  jwt: string;
  device: SoftAuthenticator;
  factorId: string;
  factorName: string;
  credentialId: string;
}

/** A user whose first factor is a passkey on `dev`. */
async function withPasskey(dev = device()): Promise<PasskeyUser> {
  const u = await t.factory.loggedIn();
  const factorName = unique('key');
  const factor = await addPasskey(u, factorName);
  const response = dev.create(factor.options);
  const res = await confirm(u.jwt, factor.id, response);
  if (res.status !== 200) throw new Error(`confirm passkey failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { ...u, device: dev, factorId: factor.id, factorName, credentialId: response.id };
}

async function mfaOptions(jwt: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const res = await t.http().post('/login/mfa/options').set(bearer(jwt));
  if (res.status !== 200) throw new Error(`mfa options failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function passkeyOptions(): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const res = await t.http().post('/login/passkey/options');
  if (res.status !== 200) throw new Error(`passkey options failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

function secondStep(jwt: string, webauthn: AuthenticationResponseJSON) {
  return t.http().post('/login/mfa').set(bearer(jwt)).send({ webauthn });
}

function passkeyLogin(credential: AuthenticationResponseJSON) {
  return t.http().post('/login/passkey').send({ credential, set_session: true });
}

/** What a refused ceremony must leave as it was: the user's tokens, factors (counter, verified), MFA flag, last login, recovery codes. */
async function state(userId: string) {
  return {
    tokens: await t.knex('user_tokens').where({ user_id: userId }).orderBy('id').select('id', 'kind', 'aal', 'expires'),
    factors: await t.knex('mfa_factors').where({ user_id: userId }).orderBy('id').select('id', 'name', 'verified', 'last_used', 'webauthn_credential_id', 'webauthn_counter'),
    user: await t.knex('users').where({ id: userId }).first('mfa_enabled', 'last_login', 'deactivated'),
    recoveryCodes: (await t.knex('mfa_recovery_codes').where({ user_id: userId }).select('code_hash', 'used')).length,
  };
}

async function counterOf(factorId: string): Promise<number> {
  return Number((await t.knex('mfa_factors').where({ id: factorId }).first('webauthn_counter')).webauthn_counter);
}

async function failures(userId: string): Promise<number> {
  return (await t.knex('login_throttle').where({ key: `mfa:${userId}` }).first())?.failures ?? 0;
}

/** The refusals the library makes, as tweaks of an otherwise right response. */
function clientTweaks(kind: 'create' | 'get'): { name: string; tweak: Tweak }[] {
  const type = kind === 'create' ? 'webauthn.get' : 'webauthn.create';
  return [
    { name: `wrong type (${type})`, tweak: { type } },
    { name: 'a challenge never issued', tweak: { challenge: randomChallenge() } },
    { name: 'an origin not allowed', tweak: { origin: 'https://evil.example' } },
    { name: 'an origin on a sub-domain, not listed', tweak: { origin: `https://login.${RP_ID}` } },
    { name: 'the origin over http', tweak: { origin: `http://${RP_ID}` } },
    { name: 'an RP ID not allowed', tweak: { rpId: 'evil.example' } },
    { name: "the RP ID's parent domain", tweak: { rpId: 'example.test' } },
    { name: 'user presence missing', tweak: { up: false } },
    { name: 'backup state without backup eligibility', tweak: { be: false, bs: true } },
  ];
}

describe('registration: POST /user/me/factor/{id}/verify refuses with 400 mfa_failed and leaves the factor pending', () => {
  /** Refused, nothing changed, the challenge spent (the right response to those options is refused next); a new factor done right is verified. */
  async function refusedAtRegistration(u: { user: { id: string }; jwt: string; password: string }, factor: { id: string; options: PublicKeyCredentialCreationOptionsJSON }, response: RegistrationResponseJSON) {
    const before = await state(u.user.id);
    const verified = (await auditOf(t, 'mfa.factor_verified', u.user.id)).length;
    const res = await confirm(u.jwt, factor.id, response);
    expect([res.status, res.body.code]).toEqual([400, 'mfa_failed']);
    expect(res.body.recovery_codes).toBeUndefined();
    expect(await state(u.user.id)).toEqual(before);
    expect((await auditOf(t, 'mfa.failed', u.user.id)).at(-1)!.summary).toEqual({ stage: 'enrolment', factor: factor.id });
    expect(await auditOf(t, 'mfa.factor_verified', u.user.id)).toHaveLength(verified);
  }

  test.each<{ name: string; tweak: Tweak; alg?: SoftAlg }>([
    ...clientTweaks('create'),
    { name: 'algorithm EdDSA (-8) not allowed', tweak: {}, alg: -8 },
    { name: 'algorithm ES384 (-35) not allowed', tweak: {}, alg: -35 },
  ])('$name', async ({ name, tweak, alg }) => {
    const u = await t.factory.loggedIn();
    const factor = await addPasskey(u);
    await refusedAtRegistration(u, factor, device(alg ? { alg } : {}).create(factor.options, tweak));
    if (tweak.challenge === undefined) {
      // The challenge is spent: the right response to those options is refused too.
      const right = await confirm(u.jwt, factor.id, device().create(factor.options));
      expect([name, right.status, right.body.code]).toEqual([name, 400, 'mfa_failed']);
      // Done right, with a factor of its own, it is verified.
      const again = await addPasskey(u);
      expect([name, (await confirm(u.jwt, again.id, device().create(again.options))).status]).toEqual([name, 200]);
    } else {
      // The attempt named another challenge: the factor's own is not spent, and done right the factor is verified.
      expect([name, (await confirm(u.jwt, factor.id, device().create(factor.options))).status]).toEqual([name, 200]);
    }
  });

  it('refuses a bad signature (in a packed self attestation, which a client may send though asked for none)', async () => {
    const u = await t.factory.loggedIn();
    const factor = await addPasskey(u);
    await refusedAtRegistration(u, factor, device({ attestation: 'packed' }).create(factor.options, { corruptSignature: true }));
    const again = await addPasskey(u);
    expect((await confirm(u.jwt, again.id, device({ attestation: 'packed' }).create(again.options))).status).toBe(200);
  });

  it('refuses a challenge answered once already (by the factor it was issued for, or replayed to another pending one)', async () => {
    const u = await t.factory.loggedIn();
    const first = await addPasskey(u);
    const response = device().create(first.options);
    expect((await confirm(u.jwt, first.id, response)).status).toBe(200);
    const second = await addPasskey(u);
    await refusedAtRegistration(u, second, response);
    // The same credential's registration again, to the factor now verified: 409, as for a code.
    expect((await confirm(u.jwt, first.id, response)).status).toBe(409);
  });

  it("refuses another pending factor's challenge of the same user, and another user's, without spending either", async () => {
    const u = await t.factory.loggedIn();
    const other = await t.factory.loggedIn();
    const mine = await addPasskey(u);
    const mineToo = await addPasskey(u);
    const theirs = await addPasskey(other);
    await refusedAtRegistration(u, mineToo, device().create(mine.options));
    await refusedAtRegistration(u, mineToo, device().create(theirs.options));
    // Neither challenge was spent by the attempts that named it for something else.
    expect((await confirm(other.jwt, theirs.id, device().create(theirs.options))).status).toBe(200);
    expect((await confirm(u.jwt, mine.id, device().create(mine.options))).status).toBe(200);
  });

  it('refuses challenges issued for a sign-in (the second step, without password), which stay usable for it', async () => {
    const u = await withPasskey();
    const { jwt: pending } = await firstStep(t, u);
    const forSecondStep = await mfaOptions(pending);
    const forPasskey = await passkeyOptions();
    const factor = await addPasskey(u);
    await refusedAtRegistration(u, factor, device().create(factor.options, { challenge: forSecondStep.challenge }));
    const another = await addPasskey(u);
    await refusedAtRegistration(u, another, device().create(another.options, { challenge: forPasskey.challenge }));
    expect((await secondStep(pending, u.device.get(forSecondStep))).status).toBe(200);
    expect((await passkeyLogin(u.device.get(forPasskey))).status).toBe(200);
  });

  it('refuses a challenge 5 minutes old (the service clock moved), takes one a millisecond younger', async () => {
    const u = await t.factory.loggedIn();
    t.clock.stop();
    try {
      const factor = await addPasskey(u);
      t.clock.advance(5 * 60_000);
      await refusedAtRegistration(u, factor, device().create(factor.options));
      const younger = await addPasskey(u);
      t.clock.advance(5 * 60_000 - 1);
      expect((await confirm(u.jwt, younger.id, device().create(younger.options))).status).toBe(200);
    } finally {
      t.clock.resume();
    }
  });

  it('refuses a credential registered twice: by the same user (past excludeCredentials) or by another user', async () => {
    const u = await withPasskey();
    const factor = await addPasskey(u);
    expect(factor.options.excludeCredentials?.map((c) => c.id)).toEqual([u.credentialId]);
    expect(() => u.device.create(factor.options)).toThrow(/InvalidStateError/); // what a browser does
    await refusedAtRegistration(u, factor, u.device.create(factor.options, { credentialId: u.credentialId }));
    const other = await t.factory.loggedIn();
    const theirs = await addPasskey(other);
    await refusedAtRegistration(other, theirs, device().create(theirs.options, { credentialId: u.credentialId }));
    // The credential stays the first user's alone.
    expect(await t.knex('mfa_factors').where({ webauthn_credential_id: u.credentialId }).pluck('id')).toEqual([u.factorId]);
  });

  it('refuses a deactivated user (401: the token ends with the account) and changes nothing', async () => {
    const u = await t.factory.loggedIn();
    const factor = await addPasskey(u);
    await t.container.stores.users.deactivate(u.user.id, t.clock.now());
    const before = await state(u.user.id);
    const res = await confirm(u.jwt, factor.id, device().create(factor.options));
    expect(res.status).toBe(401);
    expect(await state(u.user.id)).toEqual(before);
  });

  it('takes user verification as it comes (a passkey without it serves as a second factor)', async () => {
    const u = await t.factory.loggedIn();
    const factor = await addPasskey(u);
    expect((await confirm(u.jwt, factor.id, device().create(factor.options, { uv: false }))).status).toBe(200);
    expect((await t.knex('mfa_factors').where({ id: factor.id }).first()).webauthn_user_verified).toBe(false);
  });

  it('counts refusals on the account: after MFA_MAX_FAILURES (5), even a right response gets 429', async () => {
    const u = await t.factory.loggedIn();
    t.clock.stop();
    try {
      const factor = await addPasskey(u);
      for (let i = 1; i <= 5; i++) {
        const res = await confirm(u.jwt, factor.id, device().create(factor.options, { origin: 'https://evil.example' }));
        expect([i, res.status]).toEqual([i, 400]);
      }
      const fresh = await addPasskey(u);
      const before = await state(u.user.id);
      const blocked = await confirm(u.jwt, fresh.id, device().create(fresh.options));
      expect([blocked.status, blocked.body.code]).toEqual([429, 'rate_limited']);
      expect(await state(u.user.id)).toEqual(before);
      t.clock.advance(1000);
      expect((await confirm(u.jwt, fresh.id, device().create(fresh.options))).status).toBe(200);
    } finally {
      t.clock.resume();
    }
  });
});

describe('the second step: POST /login/mfa {webauthn} refuses with 401 mfa_failed, the aal1 token stays', () => {
  /** Refused, nothing changed (no new token, the same aal1 one, the counter as it was), audited, counted. */
  async function refusedAtSecondStep(u: PasskeyUser, pending: string, response: AuthenticationResponseJSON) {
    const before = await state(u.user.id);
    const counted = await failures(u.user.id);
    const res = await secondStep(pending, response);
    expect([res.status, res.body.code]).toEqual([401, 'mfa_failed']);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(await state(u.user.id)).toEqual(before);
    expect((await t.http().get('/user/me').set(bearer(pending))).body.code).toBe('mfa_required');
    expect((await auditOf(t, 'mfa.failed', u.user.id)).at(-1)!.summary).toMatchObject({ stage: 'login', kind: 'webauthn' });
    expect(await failures(u.user.id)).toBe(counted + 1);
  }

  test.each<{ name: string; tweak: Tweak }>([
    ...clientTweaks('get'),
    { name: 'a bad signature', tweak: { corruptSignature: true } },
    { name: 'a user handle not the user\'s', tweak: { userHandle: crypto.randomBytes(16).toString('base64url') } },
  ])('$name', async ({ name, tweak }) => {
    const u = await withPasskey();
    const { jwt: pending } = await firstStep(t, u);
    const options = await mfaOptions(pending);
    await refusedAtSecondStep(u, pending, u.device.get(options, tweak));
    if (tweak.challenge === undefined) {
      // The challenge is spent: the right assertion for those options is refused too.
      const right = await secondStep(pending, u.device.get(options));
      expect([name, right.status]).toEqual([name, 401]);
    }
    // Done right (with fresh options, or the unspent ones), the same token becomes a full one.
    const done = await secondStep(pending, u.device.get(tweak.challenge === undefined ? await mfaOptions(pending) : options));
    expect([name, done.status]).toEqual([name, 200]);
    expect(await counterOf(u.factorId)).toBe(u.device.credential(u.credentialId).counter);
  });

  it("refuses another user's user handle with the user's own passkey", async () => {
    const u = await withPasskey();
    const other = await t.factory.user();
    const { jwt: pending } = await firstStep(t, u);
    await refusedAtSecondStep(u, pending, u.device.get(await mfaOptions(pending), { userHandle: handleOf(other.user.id) }));
  });

  it('refuses an assertion used once already (its challenge spent), at another login of the user', async () => {
    // An authenticator that keeps no counter (0 after 0 is taken): the challenge alone refuses the replay.
    const u = await withPasskey(device({ zeroCounter: true }));
    const a = await firstStep(t, u);
    const response = u.device.get(await mfaOptions(a.jwt));
    expect((await secondStep(a.jwt, response)).status).toBe(200);
    const b = await firstStep(t, u);
    await refusedAtSecondStep(u, b.jwt, response);
    expect(await auditOf(t, 'mfa.passkey_counter_rejected', u.user.id)).toEqual([]);
  });

  it('refuses challenges issued for a registration or a sign-in without password, which stay usable for those', async () => {
    const u = await withPasskey();
    const { jwt: pending } = await firstStep(t, u);
    const factor = await addPasskey(u);
    const forPasskey = await passkeyOptions();
    await refusedAtSecondStep(u, pending, u.device.get(await mfaOptions(pending), { challenge: factor.options.challenge }));
    await refusedAtSecondStep(u, pending, u.device.get(await mfaOptions(pending), { challenge: forPasskey.challenge }));
    expect((await confirm(u.jwt, factor.id, device().create(factor.options))).status).toBe(200);
    expect((await passkeyLogin(u.device.get(forPasskey))).status).toBe(200);
  });

  it("refuses another user's challenge, without spending it", async () => {
    const u = await withPasskey();
    const other = await withPasskey();
    const mine = await firstStep(t, u);
    const theirs = await firstStep(t, other);
    const theirOptions = await mfaOptions(theirs.jwt);
    await refusedAtSecondStep(u, mine.jwt, u.device.get(await mfaOptions(mine.jwt), { challenge: theirOptions.challenge }));
    expect((await secondStep(theirs.jwt, other.device.get(theirOptions))).status).toBe(200);
  });

  it('refuses a challenge 5 minutes old, takes one a millisecond younger', async () => {
    const u = await withPasskey();
    t.clock.stop();
    try {
      const { jwt: pending } = await firstStep(t, u);
      const old = await mfaOptions(pending);
      t.clock.advance(5 * 60_000);
      await refusedAtSecondStep(u, pending, u.device.get(old));
      const younger = await mfaOptions(pending);
      t.clock.advance(5 * 60_000 - 1);
      expect((await secondStep(pending, u.device.get(younger))).status).toBe(200);
    } finally {
      t.clock.resume();
    }
  });

  it("refuses another user's passkey, a passkey never registered, and a copy of the user's credential id with another key", async () => {
    const u = await withPasskey();
    const other = await withPasskey();
    const { jwt: pending } = await firstStep(t, u);
    const otherCounter = await counterOf(other.factorId);
    // Sent with no user handle, or with this user's: the credential alone says whose it is.
    for (const userHandle of [null, handleOf(u.user.id)]) {
      await refusedAtSecondStep(u, pending, other.device.get(await mfaOptions(pending), { credential: other.credentialId, userHandle }));
    }
    expect(await counterOf(other.factorId)).toBe(otherCounter);
    const stranger = device();
    const unknown = stranger.create(foreignCreationOptions());
    await refusedAtSecondStep(u, pending, stranger.get(await mfaOptions(pending), { credential: unknown.id }));
    const copy = device();
    copy.create(foreignCreationOptions(), { credentialId: u.credentialId });
    await refusedAtSecondStep(u, pending, copy.get(await mfaOptions(pending), { userHandle: handleOf(u.user.id) }));
  });

  it('refuses a counter that did not go up (lower, equal, 0): an audit entry and a mail each time, the stored counter kept', async () => {
    const u = await withPasskey();
    for (let i = 0; i < 2; i++) {
      const s = await firstStep(t, u);
      expect((await secondStep(s.jwt, u.device.get(await mfaOptions(s.jwt)))).status).toBe(200);
    }
    expect(await counterOf(u.factorId)).toBe(2);
    const { jwt: pending } = await firstStep(t, u);
    for (const counter of [1, 2, 0]) {
      await refusedAtSecondStep(u, pending, u.device.get(await mfaOptions(pending), { counter }));
      expect((await auditOf(t, 'mfa.passkey_counter_rejected', u.user.id)).at(-1)!.summary).toEqual({ factor: u.factorId, stored: 2, presented: counter });
    }
    expect(await auditOf(t, 'mfa.passkey_counter_rejected', u.user.id)).toHaveLength(3);
    const mails = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === COPIED, 3);
    expect(mails).toHaveLength(3);
    expect(mails[0].text).toContain(`"${u.factorName}"`);
    expect(mails[0].raw).not.toContain(u.credentialId);
    expect(await counterOf(u.factorId)).toBe(2);
    // The authenticator's own next count (above the stored one) is taken.
    expect((await secondStep(pending, u.device.get(await mfaOptions(pending)))).status).toBe(200);
  });

  it('takes an assertion without user verification, or without a user handle (a second factor needs neither)', async () => {
    const u = await withPasskey();
    const a = await firstStep(t, u);
    expect((await secondStep(a.jwt, u.device.get(await mfaOptions(a.jwt), { uv: false }))).status).toBe(200);
    const b = await firstStep(t, u);
    expect((await secondStep(b.jwt, u.device.get(await mfaOptions(b.jwt), { userHandle: null }))).status).toBe(200);
  });

  it('refuses a deactivated user (401: the token ends with the account), nothing changed', async () => {
    const u = await withPasskey();
    const { jwt: pending } = await firstStep(t, u);
    const options = await mfaOptions(pending);
    await t.container.stores.users.deactivate(u.user.id, t.clock.now());
    const before = await state(u.user.id);
    const res = await secondStep(pending, u.device.get(options));
    expect(res.status).toBe(401);
    expect(await state(u.user.id)).toEqual(before);
  });

  it('after MFA_MAX_FAILURES (5) refused assertions, a right one gets 429 until the delay is over', async () => {
    const u = await withPasskey();
    const { jwt: pending } = await firstStep(t, u);
    t.clock.stop();
    try {
      for (let i = 1; i <= 5; i++) {
        const res = await secondStep(pending, u.device.get(await mfaOptions(pending), { corruptSignature: true }));
        expect([i, res.status]).toEqual([i, 401]);
      }
      const options = await mfaOptions(pending);
      const before = await state(u.user.id);
      const blocked = await secondStep(pending, u.device.get(options));
      expect([blocked.status, blocked.body.code, blocked.headers['retry-after']]).toEqual([429, 'rate_limited', '1']);
      expect(await state(u.user.id)).toEqual(before);
      t.clock.advance(1000);
      expect((await secondStep(pending, u.device.get(await mfaOptions(pending)))).status).toBe(200);
    } finally {
      t.clock.resume();
    }
  });
});

describe('without password: POST /login/passkey refuses with 401 unauthenticated, no token, no cookie', () => {
  /** Refused with the ordinary 401, no cookie, nothing changed (no token, the counter and last login as they were). */
  async function refusedWithoutPassword(u: { user: { id: string } }, response: AuthenticationResponseJSON) {
    const before = await state(u.user.id);
    const res = await passkeyLogin(response);
    expect([res.status, res.body.code]).toEqual([401, 'unauthenticated']);
    expect(res.body.jwt_token).toBeUndefined();
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(await state(u.user.id)).toEqual(before);
    return res;
  }

  test.each<{ name: string; tweak: Tweak }>([
    ...clientTweaks('get'),
    { name: 'user verification missing', tweak: { uv: false } },
    { name: 'a bad signature', tweak: { corruptSignature: true } },
    { name: 'a user handle not the user\'s', tweak: { userHandle: crypto.randomBytes(16).toString('base64url') } },
    { name: 'no user handle', tweak: { userHandle: null } },
  ])('$name', async ({ name, tweak }) => {
    const u = await withPasskey();
    const options = await passkeyOptions();
    const refused = await refusedWithoutPassword(u, u.device.get(options, tweak));
    const words = (body: Record<string, unknown>) => ({ ...body, request_id: undefined });
    if (tweak.challenge === undefined) {
      // The challenge is spent: the right assertion for those options is refused too, in the same words.
      const right = await passkeyLogin(u.device.get(options));
      expect([name, right.status, words(right.body)]).toEqual([name, 401, words(refused.body)]);
    }
    // Done right (with fresh options, or the unspent ones): a token and the cookie.
    const done = await passkeyLogin(u.device.get(tweak.challenge === undefined ? await passkeyOptions() : options));
    expect([name, done.status]).toEqual([name, 200]);
    expect(done.headers['set-cookie']?.[0]).toContain(done.body.jwt_token);
    expect(await counterOf(u.factorId)).toBe(u.device.credential(u.credentialId).counter);
  });

  it("refuses another user's user handle with the user's own passkey (audited for the passkey's user)", async () => {
    const u = await withPasskey();
    const other = await withPasskey();
    await refusedWithoutPassword(u, u.device.get(await passkeyOptions(), { userHandle: handleOf(other.user.id) }));
    expect((await auditOf(t, 'mfa.failed', u.user.id)).at(-1)!.summary).toEqual({ stage: 'passkey', factor: u.factorId });
    expect(await state(other.user.id)).toMatchObject({ tokens: [expect.objectContaining({ aal: 'aal2' })] });
  });

  it('refuses an assertion used once already', async () => {
    // An authenticator that keeps no counter (0 after 0 is taken): the challenge alone refuses the replay.
    const u = await withPasskey(device({ zeroCounter: true }));
    const response = u.device.get(await passkeyOptions());
    expect((await passkeyLogin(response)).status).toBe(200);
    await refusedWithoutPassword(u, response);
    expect(await auditOf(t, 'mfa.passkey_counter_rejected', u.user.id)).toEqual([]);
    expect((await passkeyLogin(u.device.get(await passkeyOptions()))).status).toBe(200);
  });

  it("refuses challenges issued for a registration, or for a second step (the user's own, another user's), which stay usable for those", async () => {
    const u = await withPasskey();
    const other = await withPasskey();
    const factor = await addPasskey(u);
    const mine = await firstStep(t, u);
    const theirs = await firstStep(t, other);
    const myOptions = await mfaOptions(mine.jwt);
    const theirOptions = await mfaOptions(theirs.jwt);
    for (const challenge of [factor.options.challenge, myOptions.challenge, theirOptions.challenge]) {
      await refusedWithoutPassword(u, u.device.get(await passkeyOptions(), { challenge }));
    }
    expect((await confirm(u.jwt, factor.id, device().create(factor.options))).status).toBe(200);
    expect((await secondStep(mine.jwt, u.device.get(myOptions))).status).toBe(200);
    expect((await secondStep(theirs.jwt, other.device.get(theirOptions))).status).toBe(200);
  });

  it('refuses a challenge 5 minutes old, takes one a millisecond younger', async () => {
    const u = await withPasskey();
    t.clock.stop();
    try {
      const old = await passkeyOptions();
      t.clock.advance(5 * 60_000);
      await refusedWithoutPassword(u, u.device.get(old));
      const younger = await passkeyOptions();
      t.clock.advance(5 * 60_000 - 1);
      expect((await passkeyLogin(u.device.get(younger))).status).toBe(200);
    } finally {
      t.clock.resume();
    }
  });

  it('refuses a passkey never registered, a pending factor\'s, and a copy of a credential id with another key', async () => {
    const u = await withPasskey();
    const stranger = device();
    stranger.create(foreignCreationOptions());
    const audited = (await auditOf(t, 'mfa.failed', u.user.id)).length;
    await refusedWithoutPassword(u, stranger.get(await passkeyOptions()));
    // Made for a factor left pending: never stored, so unknown.
    const factor = await addPasskey(u);
    const pendingDevice = device();
    pendingDevice.create(factor.options);
    await refusedWithoutPassword(u, pendingDevice.get(await passkeyOptions()));
    expect(await auditOf(t, 'mfa.failed', u.user.id)).toHaveLength(audited); // no user named: nothing to audit
    const copy = device();
    copy.create(foreignCreationOptions(), { credentialId: u.credentialId });
    await refusedWithoutPassword(u, copy.get(await passkeyOptions(), { userHandle: handleOf(u.user.id) }));
    expect((await auditOf(t, 'mfa.failed', u.user.id)).at(-1)!.summary).toEqual({ stage: 'passkey', factor: u.factorId });
  });

  it('refuses a counter that did not go up: an audit entry and a mail to the user, the stored counter kept', async () => {
    const u = await withPasskey();
    for (let i = 0; i < 3; i++) expect((await passkeyLogin(u.device.get(await passkeyOptions()))).status).toBe(200);
    expect(await counterOf(u.factorId)).toBe(3);
    await refusedWithoutPassword(u, u.device.get(await passkeyOptions(), { counter: 2 }));
    expect(await auditOf(t, 'mfa.passkey_counter_rejected', u.user.id)).toEqual([
      expect.objectContaining({ summary: { factor: u.factorId, stored: 3, presented: 2 } }),
    ]);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === COPIED);
    expect(mail.text).toContain(`"${u.factorName}"`);
    expect(mail.raw).not.toContain(u.credentialId);
    expect(await counterOf(u.factorId)).toBe(3);
    expect((await passkeyLogin(u.device.get(await passkeyOptions()))).status).toBe(200);
  });

  it('refuses a deactivated user, and one whose address is not proven', async () => {
    const u = await withPasskey();
    await t.knex('users').where({ id: u.user.id }).update({ email_verified: false });
    await refusedWithoutPassword(u, u.device.get(await passkeyOptions()));
    await t.knex('users').where({ id: u.user.id }).update({ email_verified: true });
    await t.container.stores.users.deactivate(u.user.id, t.clock.now());
    await refusedWithoutPassword(u, u.device.get(await passkeyOptions()));
  });

  it("after MFA_MAX_FAILURES (5) refused assertions, the account's right one gets 429 until the delay is over", async () => {
    const u = await withPasskey();
    t.clock.stop();
    try {
      for (let i = 1; i <= 5; i++) {
        const res = await passkeyLogin(u.device.get(await passkeyOptions(), { corruptSignature: true }));
        expect([i, res.status]).toEqual([i, 401]);
      }
      expect(await failures(u.user.id)).toBe(5);
      const before = await state(u.user.id);
      const blocked = await passkeyLogin(u.device.get(await passkeyOptions()));
      expect([blocked.status, blocked.body.code, blocked.headers['retry-after']]).toEqual([429, 'rate_limited', '1']);
      expect(blocked.headers['set-cookie']).toBeUndefined();
      expect(await state(u.user.id)).toEqual(before);
      t.clock.advance(1000);
      expect((await passkeyLogin(u.device.get(await passkeyOptions()))).status).toBe(200);
      expect(await failures(u.user.id)).toBe(0);
    } finally {
      t.clock.resume();
    }
  });
});

describe('the per-IP limit', () => {
  it('counts POST /login/passkey/options and /login/passkey with /login, per client IP and minute (THROTTLE_IP_PER_MINUTE)', async () => {
    const s = await createTestApp({ env: { THROTTLE_IP_PER_MINUTE: '3' } });
    try {
      s.clock.stop();
      const options = await s.http().post('/login/passkey/options');
      expect(options.status).toBe(200);
      expect((await s.http().post('/login').send({ email: 'nobody@example.test', password: 'not a password' })).status).toBe(401);
      const stranger = device();
      stranger.create(foreignCreationOptions());
      expect((await s.http().post('/login/passkey').send({ credential: stranger.get(options.body) })).status).toBe(401);
      const blocked = await s.http().post('/login/passkey').send({ credential: stranger.get(options.body) });
      expect([blocked.status, blocked.body.code]).toEqual([429, 'rate_limited']);
      expect((await s.http().post('/login/passkey/options')).status).toBe(429);
    } finally {
      await s.close();
    }
  });

  it('counts POST /login/mfa/options with POST /login/mfa (apart from /login), per client IP and minute', async () => {
    const s = await createTestApp({ env: { THROTTLE_IP_PER_MINUTE: '3' } });
    try {
      s.clock.stop();
      const u = await s.factory.loggedIn();
      const dev = device();
      const added = await s.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name: 'laptop', current_password: u.password });
      expect((await s.http().post(`/user/me/factor/${added.body.id}/verify`).set(bearer(u.jwt)).send({ credential: dev.create(added.body.options) })).status).toBe(200);
      const { jwt: pending } = await firstStep(s, u);
      const options = () => s.http().post('/login/mfa/options').set(bearer(pending));
      const first = await options();
      expect(first.status).toBe(200);
      expect((await s.http().post('/login/mfa').set(bearer(pending)).send({ webauthn: dev.get(first.body, { corruptSignature: true }) })).status).toBe(401);
      const second = await options();
      expect(second.status).toBe(200);
      const blocked = await s.http().post('/login/mfa').set(bearer(pending)).send({ webauthn: dev.get(second.body) });
      expect([blocked.status, blocked.body.code]).toEqual([429, 'rate_limited']);
      expect((await options()).status).toBe(429);
      expect((await s.http().get('/user/me').set(bearer(pending))).body.code).toBe('mfa_required');
    } finally {
      await s.close();
    }
  });
});
