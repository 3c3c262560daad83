import crypto from 'node:crypto';
import { createTestApp, type TestApp, type TestUser } from '../helpers/test-app';
import { addFactor, auditOf, bearer, enrolled, firstStep } from '../helpers/mfa';
import { SOFT_AAGUID, SoftAuthenticator } from '../helpers/soft-authenticator';

// Passkeys (issue 20, API.md §2.8): the happy paths, renaming, the options' shapes, concurrency,
// housekeeping of challenges, mails and audit entries, and nothing secret in the log. Every
// ceremony is driven by the software authenticator; the refusals are in passkey-rejections.test.ts.

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

const sha256 = (text: string) => crypto.createHash('sha256').update(text).digest('hex');
const handleOf = (userId: string) => Buffer.from(userId.replace(/-/g, ''), 'hex').toString('base64url');
const mailsTo = (app: TestApp, email: string, subject: string) => app.mail.to(email).filter((m) => m.subject === subject);

function authenticatorFor(app: TestApp, options: { zeroCounter?: boolean } = {}): SoftAuthenticator {
  return new SoftAuthenticator({ rpId: app.config.webauthn.rpId, origin: app.config.webauthn.origins[0], ...options });
}

/** Adds a passkey through the API: the 201, the credential made, and the verify's 200. */
async function addPasskey(app: TestApp, u: { jwt: string; password: string }, device: SoftAuthenticator, name = 'laptop') {
  const created = await app.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name, current_password: u.password });
  if (created.status !== 201) throw new Error(`enrol failed: ${created.status} ${JSON.stringify(created.body)}`);
  const credential = device.create(created.body.options);
  const verified = await app.http().post(`/user/me/factor/${created.body.id}/verify`).set(bearer(u.jwt)).send({ credential });
  if (verified.status !== 200) throw new Error(`verify failed: ${verified.status} ${JSON.stringify(verified.body)}`);
  return { created, credential, verified, factorId: created.body.id as string };
}

interface PasskeyUser extends TestUser {
  jwt: string;
  device: SoftAuthenticator;
  factorId: string;
  credentialId: string;
  recoveryCodes: string[];
}

/** A user whose first factor is a passkey (so MFA is on), with their full session. */
async function passkeyUser(app: TestApp = t, options: Parameters<TestApp['factory']['user']>[0] = {}, device = authenticatorFor(app)): Promise<PasskeyUser> {
  const u = await app.factory.loggedIn(options);
  const { factorId, credential, verified } = await addPasskey(app, u, device);
  return { ...u, device, factorId, credentialId: credential.id, recoveryCodes: verified.body.recovery_codes };
}

async function factorRow(id: string) {
  return t.knex('mfa_factors').where({ id }).first();
}

describe('adding a passkey (POST /user/me/factor type webauthn, then verify with the credential)', () => {
  it('answers 201 with creation options for a discoverable credential, its challenge stored only as a hash, for this user and factor', async () => {
    const u = await t.factory.loggedIn({ name: 'grace' });
    const res = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name: 'MacBook Touch ID', current_password: u.password });
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`/user/me/factor/${res.body.id}`);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({ id: expect.any(String), type: 'webauthn', name: 'MacBook Touch ID', created: expect.any(String), last_used: null, verified: false, options: expect.any(Object) });
    const { options } = res.body;
    expect(options).toMatchObject({
      rp: { id: 'accounts.example.test', name: 'Accounts' },
      user: { id: handleOf(u.user.id), name: u.email, displayName: 'grace' },
      timeout: 300_000,
      attestation: 'none',
      excludeCredentials: [],
      authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'preferred' },
    });
    expect(options.pubKeyCredParams.map((p: { alg: number; type: string }) => [p.type, p.alg])).toEqual([['public-key', -7], ['public-key', -257]]);
    expect(options.challenge).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes
    const rows = await t.knex('webauthn_challenges').where({ user_id: u.user.id });
    expect(rows).toEqual([{ challenge_hash: sha256(options.challenge), purpose: 'registration', user_id: u.user.id, factor_id: res.body.id, expires: expect.any(Date) }]);
    expect(rows[0].expires.getTime() - new Date(res.body.created).getTime()).toBe(300_000);
    expect(JSON.stringify(await t.knex('webauthn_challenges').select())).not.toContain(options.challenge);
    const row = await factorRow(res.body.id);
    expect(row).toMatchObject({ type: 'webauthn', verified: false, totp_secret: null, webauthn_credential_id: null, webauthn_public_key: null });
    expect((await auditOf(t, 'mfa.factor_added', u.user.id))[0].summary).toEqual({ factor: res.body.id, type: 'webauthn', name: 'MacBook Touch ID' });
  });

  it('verifies the credential: stores id, public key, counter, transports, backup flags, AAGUID; the first factor turns MFA on (10 codes, other sessions end, aal2), a mail, audit entries', async () => {
    const u = await t.factory.loggedIn();
    const other = await t.factory.login(u);
    const device = authenticatorFor(t);
    const created = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name: 'phone', current_password: u.password }).expect(201);
    const credential = device.create(created.body.options);
    const res = await t.http().post(`/user/me/factor/${created.body.id}/verify`).set(bearer(u.jwt)).send({ credential });
    expect(res.status).toBe(200);
    expect(res.body.factor).toEqual({ id: created.body.id, type: 'webauthn', name: 'phone', created: created.body.created, last_used: expect.any(String), verified: true });
    expect(res.body.recovery_codes).toHaveLength(10);
    const row = await factorRow(created.body.id);
    expect(row).toMatchObject({
      verified: true,
      webauthn_credential_id: credential.id,
      webauthn_transports: ['internal'],
      webauthn_backup_eligible: false,
      webauthn_backed_up: false,
      webauthn_aaguid: SOFT_AAGUID,
      webauthn_user_verified: true,
    });
    expect(Number(row.webauthn_counter)).toBe(0);
    // The COSE public key (an EC2 P-256 key: its x and y are the SPKI's last 64 bytes).
    const spki = device.credential(credential.id).publicKey.export({ type: 'spki', format: 'der' });
    expect(Buffer.from(row.webauthn_public_key).includes(spki.subarray(spki.length - 64, spki.length - 32))).toBe(true);
    expect(await t.knex('webauthn_challenges').where({ user_id: u.user.id })).toEqual([]); // spent
    expect((await t.knex('users').where({ id: u.user.id }).first()).mfa_enabled).toBe(true);
    expect((await t.http().get('/me').set(bearer(other))).status).toBe(401);
    const sessions = await t.http().get('/user/me/session').set(bearer(u.jwt)).expect(200);
    expect(sessions.body.map((s: { aal: string }) => s.aal)).toEqual(['aal2']);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Two-factor sign-in was added to your Accounts account');
    expect(mail.text).toContain('A passkey, "phone", was added');
    expect((await auditOf(t, 'mfa.factor_verified', u.user.id))[0].summary).toMatchObject({ factor: created.body.id, type: 'webauthn', first: true, sessions_ended: 1 });
    // The list shows it as any factor: nothing of the credential.
    const list = await t.http().get('/user/me/factor').set(bearer(u.jwt)).expect(200);
    expect(list.body).toEqual([res.body.factor]);
  });

  it('lists the user\'s passkeys in a second registration\'s excludeCredentials, and gives no recovery codes then', async () => {
    const u = await passkeyUser();
    const res = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name: 'security key', current_password: u.password }).expect(201);
    expect(res.body.options.excludeCredentials).toEqual([{ id: u.credentialId, type: 'public-key', transports: ['internal'] }]);
    const key = authenticatorFor(t);
    const verified = await t.http().post(`/user/me/factor/${res.body.id}/verify`).set(bearer(u.jwt)).send({ credential: key.create(res.body.options) }).expect(200);
    expect(verified.body.recovery_codes).toBeUndefined();
    expect((await auditOf(t, 'mfa.factor_verified', u.user.id))[1].summary).toMatchObject({ factor: res.body.id, first: false });
  });

  it('takes the kind of body the factor\'s type wants: a code for an app, a credential for a passkey (else 400 validation_failed, nothing counted)', async () => {
    const u = await t.factory.loggedIn();
    const app = await addFactor(t, u, 'app');
    const key = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name: 'key', current_password: u.password }).expect(201);
    const credential = authenticatorFor(t).create(key.body.options);
    const wrongForApp = await t.http().post(`/user/me/factor/${app.id}/verify`).set(bearer(u.jwt)).send({ credential });
    expect([wrongForApp.status, wrongForApp.body.code]).toEqual([400, 'validation_failed']);
    const wrongForKey = await t.http().post(`/user/me/factor/${key.body.id}/verify`).set(bearer(u.jwt)).send({ code: '123456' });
    expect([wrongForKey.status, wrongForKey.body.code]).toEqual([400, 'validation_failed']);
    const both = await t.http().post(`/user/me/factor/${key.body.id}/verify`).set(bearer(u.jwt)).send({ code: '123456', credential });
    expect([both.status, both.body.code]).toEqual([400, 'validation_failed']);
    expect(await t.knex('login_throttle').where({ key: `mfa:${u.user.id}` }).first()).toBeUndefined();
    expect(await t.knex('webauthn_challenges').where({ factor_id: key.body.id })).toHaveLength(1); // not spent
    // The right one still works.
    expect((await t.http().post(`/user/me/factor/${key.body.id}/verify`).set(bearer(u.jwt)).send({ credential })).status).toBe(200);
  });

  it('finishes on another instance a ceremony one instance began (challenges live in the database)', async () => {
    const other = await createTestApp({ sameDatabaseAs: t });
    try {
      const u = await t.factory.loggedIn();
      const device = authenticatorFor(t);
      const created = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name: 'laptop', current_password: u.password }).expect(201);
      expect((await other.http().post(`/user/me/factor/${created.body.id}/verify`).set(bearer(u.jwt)).send({ credential: device.create(created.body.options) })).status).toBe(200);
      const options = (await other.http().post('/login/passkey/options').expect(200)).body;
      expect((await t.http().post('/login/passkey').send({ credential: device.get(options) })).status).toBe(200);
    } finally {
      await other.close();
    }
  });
});

describe('renaming a factor (PATCH /user/me/factor/{id})', () => {
  it('renames a passkey and an authenticator app, pending or verified: 200 Factor, an audit entry; the list shows the new name', async () => {
    const u = await passkeyUser();
    const res = await t.http().patch(`/user/me/factor/${u.factorId.toUpperCase()}`).set(bearer(u.jwt)).send({ name: 'Work laptop' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: u.factorId, type: 'webauthn', name: 'Work laptop', created: expect.any(String), last_used: expect.any(String), verified: true });
    const app = await addFactor(t, u, 'phone');
    const renamed = await t.http().patch(`/user/me/factor/${app.id}`).set(bearer(u.jwt)).send({ name: 'old phone' });
    expect([renamed.status, renamed.body.type, renamed.body.name, renamed.body.verified]).toEqual([200, 'totp', 'old phone', false]);
    const list = await t.http().get('/user/me/factor').set(bearer(u.jwt)).expect(200);
    expect(list.body.map((f: { name: string }) => f.name)).toEqual(['Work laptop', 'old phone']);
    expect((await auditOf(t, 'mfa.factor_renamed', u.user.id)).map((e) => e.summary)).toEqual([
      { factor: u.factorId, type: 'webauthn', name: 'Work laptop', previous: 'laptop' },
      { factor: app.id, type: 'totp', name: 'old phone', previous: 'phone' },
    ]);
    // The same name again is no change (and no audit entry).
    expect((await t.http().patch(`/user/me/factor/${app.id}`).set(bearer(u.jwt)).send({ name: 'old phone' })).status).toBe(200);
    expect(await auditOf(t, 'mfa.factor_renamed', u.user.id)).toHaveLength(2);
  });

  it('answers 409 for a name the user gave another factor, 404 for another user\'s factor or none, 400 for a bad name, 403 for an API token; nothing renamed', async () => {
    const u = await passkeyUser();
    await addFactor(t, u, 'phone');
    const taken = await t.http().patch(`/user/me/factor/${u.factorId}`).set(bearer(u.jwt)).send({ name: 'phone' });
    expect([taken.status, taken.body.code]).toEqual([409, 'conflict']);
    const stranger = await passkeyUser();
    const foreign = await t.http().patch(`/user/me/factor/${u.factorId}`).set(bearer(stranger.jwt)).send({ name: 'mine now' });
    expect([foreign.status, foreign.body.code]).toEqual([404, 'not_found']);
    expect((await t.http().patch(`/user/me/factor/${crypto.randomUUID()}`).set(bearer(u.jwt)).send({ name: 'x' })).status).toBe(404);
    for (const body of [{ name: '' }, { name: 'a\u0007b' }, { name: 'x'.repeat(101) }, {}, { name: 'x', type: 'totp' }]) {
      const res = await t.http().patch(`/user/me/factor/${u.factorId}`).set(bearer(u.jwt)).send(body);
      expect([JSON.stringify(body), res.status, res.body.code]).toEqual([JSON.stringify(body), 400, 'validation_failed']);
    }
    const api = await t.factory.apiToken(u.user);
    expect((await t.http().patch(`/user/me/factor/${u.factorId}`).set(bearer(api)).send({ name: 'x' })).status).toBe(403);
    expect((await factorRow(u.factorId)).name).toBe('laptop');
    expect(await auditOf(t, 'mfa.factor_renamed', u.user.id)).toEqual([]);
  });
});

describe('a passkey as the second step (POST /login/mfa/options, POST /login/mfa {webauthn})', () => {
  it('gives request options naming the user\'s verified passkeys, a challenge stored for this user and the second step', async () => {
    const u = await passkeyUser();
    const second = authenticatorFor(t);
    const key = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name: 'key', current_password: u.password }).expect(201);
    await t.http().post(`/user/me/factor/${key.body.id}/verify`).set(bearer(u.jwt)).send({ credential: second.create(key.body.options) }).expect(200);
    await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name: 'pending', current_password: u.password }).expect(201);
    const { jwt } = await firstStep(t, u);
    const res = await t.http().post('/login/mfa/options').set(bearer(jwt));
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({
      challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      allowCredentials: [
        { id: u.credentialId, type: 'public-key', transports: ['internal'] },
        { id: second.credentials[0].id, type: 'public-key', transports: ['internal'] },
      ],
      timeout: 300_000,
      userVerification: 'preferred',
      rpId: 'accounts.example.test',
    });
    expect(await t.knex('webauthn_challenges').where({ challenge_hash: sha256(res.body.challenge) })).toEqual([
      { challenge_hash: sha256(res.body.challenge), purpose: 'mfa', user_id: u.user.id, factor_id: null, expires: expect.any(Date) },
    ]);
  });

  it('answers 409 to a user with no passkey, and 403 to a token with no second step pending', async () => {
    const u = await enrolled(t); // an authenticator app only
    const { jwt } = await firstStep(t, u);
    const none = await t.http().post('/login/mfa/options').set(bearer(jwt));
    expect([none.status, none.body.code]).toEqual([409, 'conflict']);
    const p = await passkeyUser();
    const plain = await t.factory.loggedIn();
    for (const token of [p.jwt, plain.jwt, await t.factory.apiToken(p.user)]) {
      const res = await t.http().post('/login/mfa/options').set(bearer(token));
      expect([res.status, res.body.code]).toEqual([403, 'forbidden']);
    }
    expect(await t.knex('webauthn_challenges').where({ user_id: p.user.id, purpose: 'mfa' })).toEqual([]);
  });

  it('swaps the aal1 token for an aal2 one for the passkey\'s assertion: counter and last use recorded, the challenge spent, audit login.mfa_succeeded', async () => {
    const u = await passkeyUser();
    const { jwt } = await firstStep(t, u);
    const options = (await t.http().post('/login/mfa/options').set(bearer(jwt)).expect(200)).body;
    t.clock.advance(60_000);
    const before = t.clock.now().getTime();
    const res = await t.http().post('/login/mfa').set(bearer(jwt)).send({ webauthn: u.device.get(options) });
    const after = t.clock.now().getTime();
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ jwt_token: expect.any(String) });
    expect((await t.http().get('/me').set(bearer(jwt))).status).toBe(401); // the aal1 token ended
    const sessions = await t.http().get('/user/me/session').set(bearer(res.body.jwt_token)).expect(200);
    expect(sessions.body.find((s: { current: boolean }) => s.current).aal).toBe('aal2');
    const row = await factorRow(u.factorId);
    expect(Number(row.webauthn_counter)).toBe(1);
    expect(row.last_used.getTime()).toBeGreaterThanOrEqual(before);
    expect(row.last_used.getTime()).toBeLessThanOrEqual(after);
    expect(await t.knex('webauthn_challenges').where({ challenge_hash: sha256(options.challenge) })).toEqual([]);
    const [entry] = await auditOf(t, 'login.mfa_succeeded', u.user.id);
    expect(entry).toMatchObject({ actor_id: u.user.id, summary: { method: 'webauthn', factor: u.factorId } });
  });

  it('accepts a passkey made without user verification at the second step', async () => {
    const u = await passkeyUser();
    const { jwt } = await firstStep(t, u);
    const options = (await t.http().post('/login/mfa/options').set(bearer(jwt)).expect(200)).body;
    expect((await t.http().post('/login/mfa').set(bearer(jwt)).send({ webauthn: u.device.get(options, { uv: false }) })).status).toBe(200);
  });

  it('renews the cookie when the login came by cookie', async () => {
    const u = await passkeyUser();
    const agent = t.http();
    await agent.post('/login').send({ email: u.email, password: u.password, set_session: true }).expect(200);
    const options = (await agent.post('/login/mfa/options').set('X-Requested-With', 'test').expect(200)).body;
    const res = await agent.post('/login/mfa').send({ webauthn: u.device.get(options) });
    expect(res.status).toBe(200);
    expect(String(res.headers['set-cookie'])).toContain(`account_session=${res.body.jwt_token}`);
    expect((await agent.get('/user').set('X-Requested-With', 'test')).status).toBe(403); // a full session, not an admin
  });
});

describe('signing in with a passkey, no password (POST /login/passkey/options, POST /login/passkey)', () => {
  it('gives options for a discoverable credential: no user named, user verification required, a challenge stored for none', async () => {
    const res = await t.http().post('/login/passkey/options');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), timeout: 300_000, userVerification: 'required', rpId: 'accounts.example.test' });
    expect(await t.knex('webauthn_challenges').where({ challenge_hash: sha256(res.body.challenge) })).toEqual([
      { challenge_hash: sha256(res.body.challenge), purpose: 'passkey', user_id: null, factor_id: null, expires: expect.any(Date) },
    ]);
    // Each call a fresh one.
    expect((await t.http().post('/login/passkey/options')).body.challenge).not.toBe(res.body.challenge);
  });

  it('answers a good assertion 200 with an aal2 login token of a day: last login and the counter recorded, audit login.passkey_succeeded', async () => {
    const u = await passkeyUser();
    const options = (await t.http().post('/login/passkey/options').expect(200)).body;
    const credential = u.device.get(options);
    expect(credential.response.userHandle).toBe(handleOf(u.user.id));
    const res = await t.http().post('/login/passkey').send({ credential });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ jwt_token: expect.any(String) });
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(new Date(res.headers.expires).getTime() - t.clock.now().getTime()).toBeGreaterThan(86_400_000 - 5_000);
    const sessions = await t.http().get('/user/me/session').set(bearer(res.body.jwt_token)).expect(200);
    expect(sessions.body.find((s: { current: boolean }) => s.current).aal).toBe('aal2');
    expect((await t.http().get('/user/me/settings').set(bearer(res.body.jwt_token))).status).toBe(200); // a full session
    const user = await t.knex('users').where({ id: u.user.id }).first();
    expect(user.last_login).not.toBeNull();
    expect(Number((await factorRow(u.factorId)).webauthn_counter)).toBe(1);
    const [entry] = await auditOf(t, 'login.passkey_succeeded', u.user.id);
    expect(entry).toMatchObject({ actor_id: u.user.id, summary: { factor: u.factorId } });
    expect(await auditOf(t, 'login.succeeded', u.user.id)).toHaveLength(1); // the factory's password login only
  });

  it('sets the session cookie with set_session, gives an admin 30 days, and reports a pending password change', async () => {
    const admin = await passkeyUser(t, { admin: true, forcePasswordChange: false });
    const agent = t.http();
    const options = (await agent.post('/login/passkey/options').expect(200)).body;
    const res = await agent.post('/login/passkey').send({ credential: admin.device.get(options), set_session: true });
    expect(res.status).toBe(200);
    expect(String(res.headers['set-cookie'])).toMatch(/account_session=[^;]+; .*HttpOnly/);
    expect(new Date(res.headers.expires).getTime() - t.clock.now().getTime()).toBeGreaterThan(30 * 86_400_000 - 5_000);
    expect((await agent.get('/user').set('X-Requested-With', 'test')).status).toBe(200);

    const forced = await passkeyUser();
    await t.knex('users').where({ id: forced.user.id }).update({ force_password_change: true });
    const o2 = (await t.http().post('/login/passkey/options').expect(200)).body;
    const r2 = await t.http().post('/login/passkey').send({ credential: forced.device.get(o2) });
    expect([r2.status, r2.body.password_change_required, r2.headers.location]).toEqual([200, true, '/user/me/password']);
  });

  it('answers input that breaks the text rule with the ordinary 401, a body of another shape 400, garbage 401; none a 5xx', async () => {
    const u = await passkeyUser();
    const options = (await t.http().post('/login/passkey/options').expect(200)).body;
    const credential = u.device.get(options);
    const nul = await t.http().post('/login/passkey').set('Content-Type', 'application/json').send(JSON.stringify({ credential: { ...credential, authenticatorAttachment: 'plat\u0000form' } }));
    expect([nul.status, nul.body.code]).toEqual([401, 'unauthenticated']);
    for (const body of [{}, { credential: { ...credential, type: 'password' } }, { credential, password: 'x' }, { credential: { ...credential, id: 'not base64url!' } }]) {
      const res = await t.http().post('/login/passkey').send(body);
      expect([JSON.stringify(body).slice(0, 40), res.status, res.body.code]).toEqual([JSON.stringify(body).slice(0, 40), 400, 'validation_failed']);
    }
    const garbage = { ...credential, response: { ...credential.response, clientDataJSON: 'AAAA', authenticatorData: 'AAAA', signature: 'AAAA' } };
    const res = await t.http().post('/login/passkey').send({ credential: garbage });
    expect([res.status, res.body.code]).toEqual([401, 'unauthenticated']);
    // None of these spent the challenge (the NUL and the shapes never reached the service; garbage names none): it still signs in.
    expect((await t.http().post('/login/passkey').send({ credential })).status).toBe(200);
  });

  it('works with an authenticator that keeps no counter (0 every time)', async () => {
    const u = await passkeyUser(t, {}, authenticatorFor(t, { zeroCounter: true }));
    for (let i = 0; i < 2; i++) {
      const options = (await t.http().post('/login/passkey/options').expect(200)).body;
      expect((await t.http().post('/login/passkey').send({ credential: u.device.get(options) })).status).toBe(200);
    }
    expect(Number((await factorRow(u.factorId)).webauthn_counter)).toBe(0);
  });
});

describe('concurrency', () => {
  it('of two uses of one assertion at POST /login/passkey, exactly one signs in', async () => {
    const u = await passkeyUser();
    const options = (await t.http().post('/login/passkey/options').expect(200)).body;
    const credential = u.device.get(options);
    const tokensBefore = await t.knex('user_tokens').where({ user_id: u.user.id }).count<{ n: string }>('* as n').first();
    const results = await Promise.all([1, 2].map(() => t.http().post('/login/passkey').send({ credential })));
    expect(results.map((r) => r.status).sort()).toEqual([200, 401]);
    expect(results.find((r) => r.status === 401)!.body.code).toBe('unauthenticated');
    const tokensAfter = await t.knex('user_tokens').where({ user_id: u.user.id }).count<{ n: string }>('* as n').first();
    expect(Number(tokensAfter!.n)).toBe(Number(tokensBefore!.n) + 1);
  });

  it('of two uses of one assertion at POST /login/mfa (two aal1 tokens), exactly one finishes', async () => {
    const u = await passkeyUser();
    const a = await firstStep(t, u);
    const b = await firstStep(t, u);
    const options = (await t.http().post('/login/mfa/options').set(bearer(a.jwt)).expect(200)).body;
    const webauthn = u.device.get(options);
    const results = await Promise.all([a.jwt, b.jwt].map((jwt) => t.http().post('/login/mfa').set(bearer(jwt)).send({ webauthn })));
    expect(results.map((r) => r.status).sort()).toEqual([200, 401]);
    expect(results.find((r) => r.status === 401)!.body.code).toBe('mfa_failed');
  });

  it('of two verifies of one registration response, exactly one verifies the factor', async () => {
    const u = await t.factory.loggedIn();
    const created = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name: 'laptop', current_password: u.password }).expect(201);
    const credential = authenticatorFor(t).create(created.body.options);
    const results = await Promise.all([1, 2].map(() => t.http().post(`/user/me/factor/${created.body.id}/verify`).set(bearer(u.jwt)).send({ credential })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses[0]).toBe(200);
    expect([400, 409]).toContain(statuses[1]);
    expect(results.filter((r) => r.body.recovery_codes).length).toBe(1);
    expect(await t.knex('mfa_recovery_codes').where({ user_id: u.user.id })).toHaveLength(10);
  });
});

describe('a counter gone backwards', () => {
  it('refuses the sign-in, audits mfa.passkey_counter_rejected and mails the user (no secret in either); the counter stays', async () => {
    const u = await passkeyUser();
    for (let i = 0; i < 3; i++) {
      const options = (await t.http().post('/login/passkey/options').expect(200)).body;
      await t.http().post('/login/passkey').send({ credential: u.device.get(options) }).expect(200);
    }
    expect(Number((await factorRow(u.factorId)).webauthn_counter)).toBe(3);
    const options = (await t.http().post('/login/passkey/options').expect(200)).body;
    const copy = u.device.get(options, { counter: 2 });
    const res = await t.http().post('/login/passkey').send({ credential: copy });
    expect([res.status, res.body.code, res.body.error]).toEqual([401, 'unauthenticated', 'Unauthorized']);
    expect(Number((await factorRow(u.factorId)).webauthn_counter)).toBe(3);
    expect((await auditOf(t, 'mfa.passkey_counter_rejected', u.user.id)).map((e) => e.summary)).toEqual([{ factor: u.factorId, stored: 3, presented: 2 }]);
    // No actor: a refused attempt proved nothing about who made it.
    expect((await auditOf(t, 'mfa.failed', u.user.id)).map((e) => [e.actor_id, e.summary])).toEqual([[null, { stage: 'passkey', factor: u.factorId }]]);
    expect((await auditOf(t, 'mfa.passkey_counter_rejected', u.user.id))[0].actor_id).toBeNull();
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'A passkey of your Accounts account may have been copied');
    expect(mail.text).toContain('"laptop"');
    for (const part of [copy.response.signature, copy.response.clientDataJSON, copy.response.authenticatorData, options.challenge]) expect(mail.raw).not.toContain(part);
    expect(mailsTo(t, u.email, 'A passkey of your Accounts account may have been copied')).toHaveLength(1);
  });
});

describe('throttles', () => {
  it('counts refused passkeys on the account\'s MFA count (MFA_MAX_FAILURES), then 429; limits the options and the sign-in per client IP as /login', async () => {
    const s = await createTestApp({ env: { MFA_MAX_FAILURES: '2', THROTTLE_IP_PER_MINUTE: '8' } });
    try {
      s.clock.stop();
      const u = await passkeyUser(s);
      for (let i = 0; i < 2; i++) {
        const options = (await s.http().post('/login/passkey/options').expect(200)).body;
        expect((await s.http().post('/login/passkey').send({ credential: u.device.get(options, { corruptSignature: true }) })).status).toBe(401);
      }
      const options = (await s.http().post('/login/passkey/options').expect(200)).body;
      const blocked = await s.http().post('/login/passkey').send({ credential: u.device.get(options) });
      expect([blocked.status, blocked.body.code, blocked.headers['ratelimit-limit']]).toEqual([429, 'rate_limited', '2']);
      expect(await s.knex('login_throttle').where({ key: `mfa:${u.user.id}` }).first()).toMatchObject({ failures: 2 });
      // Seven requests so far from this address on the /login count (the factory's login among them): the eighth passes, the ninth not.
      s.clock.advance(1000);
      const o2 = (await s.http().post('/login/passkey/options').expect(200)).body;
      const byIp = await s.http().post('/login/passkey').send({ credential: u.device.get(o2) });
      expect([byIp.status, byIp.body.code, byIp.headers['ratelimit-limit']]).toEqual([429, 'rate_limited', '8']);
      expect((await s.http().post('/login').send({ email: u.email, password: u.password })).status).toBe(429);
    } finally {
      await s.close();
    }
  });
});

describe('housekeeping', () => {
  it('drops challenges once expired, and keeps the live ones (which still work)', async () => {
    const u = await passkeyUser();
    const old = (await t.http().post('/login/passkey/options').expect(200)).body;
    t.clock.advance(4 * 60_000);
    const live = (await t.http().post('/login/passkey/options').expect(200)).body;
    t.clock.advance(60_000 + 1);
    await t.container.housekeeping.runOnce();
    expect(await t.knex('webauthn_challenges').where({ challenge_hash: sha256(old.challenge) })).toEqual([]);
    expect(await t.knex('webauthn_challenges').where({ challenge_hash: sha256(live.challenge) })).toHaveLength(1);
    expect((await t.knex('webauthn_challenges').where('expires', '<=', t.clock.now())).length).toBe(0);
    expect((await t.http().post('/login/passkey').send({ credential: u.device.get(live) })).status).toBe(200);
  });
});

describe('nothing secret in the log', () => {
  it('never logs a challenge, a credential\'s response (client data, attestation, authenticator data, signature) or a public key, even at trace', async () => {
    const lines: string[] = [];
    const s = await createTestApp({ env: { LOG_LEVEL: 'trace' }, logDestination: { write: (line: string) => void lines.push(line) } });
    try {
      const u = await s.factory.loggedIn();
      const device = authenticatorFor(s);
      const secrets: string[] = [];
      const created = await s.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name: 'laptop', current_password: u.password }).expect(201);
      const credential = device.create(created.body.options);
      secrets.push(created.body.options.challenge, credential.response.clientDataJSON, credential.response.attestationObject, credential.response.publicKey!);
      await s.http().post(`/user/me/factor/${created.body.id}/verify`).set(bearer(u.jwt)).send({ credential }).expect(200);
      const { jwt } = await firstStep(s, u);
      const mfaOptions = (await s.http().post('/login/mfa/options').set(bearer(jwt)).expect(200)).body;
      const wrong = device.get(mfaOptions, { corruptSignature: true });
      await s.http().post('/login/mfa').set(bearer(jwt)).send({ webauthn: wrong }).expect(401);
      const again = (await s.http().post('/login/mfa/options').set(bearer(jwt)).expect(200)).body;
      const right = device.get(again);
      await s.http().post('/login/mfa').set(bearer(jwt)).send({ webauthn: right }).expect(200);
      const options = (await s.http().post('/login/passkey/options').expect(200)).body;
      const signIn = device.get(options);
      await s.http().post('/login/passkey').send({ credential: signIn }).expect(200);
      const refused = device.get((await s.http().post('/login/passkey/options').expect(200)).body, { uv: false });
      await s.http().post('/login/passkey').send({ credential: refused }).expect(401);
      for (const [o, a] of [[mfaOptions, wrong], [again, right], [options, signIn]] as const) {
        secrets.push(o.challenge, a.response.clientDataJSON, a.response.authenticatorData, a.response.signature);
      }
      secrets.push(refused.response.signature, refused.response.clientDataJSON);
      await s.container.auditChainer.runOnce();
      const audit = JSON.stringify(await s.knex('audit_log').select());
      expect(lines.length).toBeGreaterThan(10);
      expect(lines.join('\n')).toContain('/login/passkey'); // the requests were logged, only not their bodies
      for (const x of secrets) {
        for (const [where, text] of [['log', lines.join('\n')], ['audit', audit]] as const) {
          expect([where, x.slice(0, 16), text.includes(x)]).toEqual([where, x.slice(0, 16), false]);
        }
      }
    } finally {
      await s.close();
    }
  });
});
