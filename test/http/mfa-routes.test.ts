import { Secret, TOTP } from 'otpauth';
import { createTestApp, queuedMail, testAppWithAdmin } from '../helpers/test-app';
import { addFactor, auditOf, bearer, codeAt, enrolled, firstStep, freshCode, fullLogin } from '../helpers/mfa';

const { t, admin } = testAppWithAdmin();


describe('POST /user/me/factor (adding an authenticator app)', () => {
  it('answers 201 with the secret, the otpauth URI and a QR code, once; the factor is pending and its stored secret is encrypted', async () => {
    const u = await t.factory.loggedIn();
    const res = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'totp', name: 'my phone', current_password: u.password });
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`/user/me/factor/${res.body.id}`);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatchObject({ type: 'totp', name: 'my phone', verified: false, last_used: null });
    expect(res.body.secret).toMatch(/^[A-Z2-7]{32}$/); // 160 bits
    const uri = new URL(res.body.uri);
    expect(uri.protocol).toBe('otpauth:');
    expect([uri.host, decodeURIComponent(uri.pathname)]).toEqual(['totp', `/Accounts:${u.email}`]);
    expect(Object.fromEntries(uri.searchParams)).toMatchObject({ secret: res.body.secret, issuer: 'Accounts', algorithm: 'SHA1', digits: '6', period: '30' });
    expect(res.body.qr_svg).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
    const row = await t.knex('mfa_factors').where({ id: res.body.id }).first();
    expect(row).toMatchObject({ user_id: u.user.id, type: 'totp', verified: false, totp_last_step: null });
    expect(row.totp_secret).not.toContain(res.body.secret);
    expect(row.totp_secret).toMatch(/^[0-9a-f]{16}:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$/);
    expect(Buffer.from(row.totp_secret.split(':')[2], 'base64url').includes(Buffer.from(Secret.fromBase32(res.body.secret).bytes))).toBe(false);
    const [entry] = await auditOf(t, 'mfa.factor_added', u.user.id);
    expect(entry.summary).toEqual({ factor: res.body.id, type: 'totp', name: 'my phone' });
    // Shown once: the list never shows it again.
    const list = await t.http().get('/user/me/factor').set(bearer(u.jwt)).expect(200);
    expect(list.body).toEqual([{ id: res.body.id, type: 'totp', name: 'my phone', created: res.body.created, last_used: null, verified: false }]);
    // Pending factors do not turn MFA on.
    expect((await t.http().get('/user/me').set(bearer(u.jwt)).expect(200)).body.mfa_enabled).toBe(false);
  });

  it('needs the current password (403 wrong_password, nothing made) and a login token (an API token: 403)', async () => {
    const u = await t.factory.loggedIn();
    const wrong = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'totp', name: 'x', current_password: 'not it at all' });
    expect([wrong.status, wrong.body.code]).toEqual([403, 'wrong_password']);
    const api = await t.factory.apiToken(u.user);
    const byApi = await t.http().post('/user/me/factor').set(bearer(api)).send({ type: 'totp', name: 'x', current_password: u.password });
    expect([byApi.status, byApi.body.code]).toEqual([403, 'forbidden']);
    expect(await t.knex('mfa_factors').where({ user_id: u.user.id }).count('* as n').first()).toEqual({ n: '0' });
    // An API token may read the list.
    expect((await t.http().get('/user/me/factor').set(bearer(api))).status).toBe(200);
  });

  it('refuses a name the user already gave a factor, and an eleventh factor, with 409', async () => {
    const u = await t.factory.loggedIn();
    await addFactor(t, u, 'phone');
    const dup = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'totp', name: 'phone', current_password: u.password });
    expect([dup.status, dup.body.code]).toEqual([409, 'conflict']);
    for (let i = 2; i <= 10; i++) await addFactor(t, u, `phone ${i}`);
    const eleventh = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'totp', name: 'one too many', current_password: u.password });
    expect([eleventh.status, eleventh.body.code]).toEqual([409, 'conflict']);
    expect(await countFactors(u.user.id)).toBe(10);
  });

  it('refuses bad input with 400 and makes nothing: an unknown type, an empty or control-character name, a missing password', async () => {
    const u = await t.factory.loggedIn();
    for (const body of [
      { type: 'sms', name: 'x', current_password: u.password },
      { type: 'totp', name: '', current_password: u.password },
      { type: 'totp', name: 'a\u0007b', current_password: u.password },
      { type: 'totp', name: 'a\u0000b', current_password: u.password },
      { type: 'totp', name: 7, current_password: u.password },
      { type: 'totp', name: 'x', current_password: 'pass\u0000word' },
      { type: 'totp', name: 'x'.repeat(101), current_password: u.password },
      { type: 'totp', name: 'x' },
      { type: 'totp', name: 'x', current_password: u.password, secret: 'JBSWY3DPEHPK3PXP' },
    ]) {
      const res = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send(body);
      expect([JSON.stringify(body), res.status, res.body.code]).toEqual([JSON.stringify(body), 400, 'validation_failed']);
    }
    expect(await countFactors(u.user.id)).toBe(0);
  });
});

async function countFactors(userId: string): Promise<number> {
  return Number((await t.knex('mfa_factors').where({ user_id: userId }).count<{ n: string }>('* as n').first())!.n);
}

describe('POST /user/me/factor/{id}/verify (confirming it)', () => {
  it('turns MFA on with the first factor: 10 recovery codes once, other login sessions end (API tokens stay), this one becomes aal2, a mail, audit entries', async () => {
    const u = await t.factory.loggedIn();
    const other = await t.factory.login(u);
    const api = await t.factory.apiToken(u.user);
    const factor = await addFactor(t, u);
    const res = await t.http().post(`/user/me/factor/${factor.id.toUpperCase()}/verify`).set(bearer(u.jwt)).send({ code: codeAt(t, factor.secret) });
    expect(res.status).toBe(200);
    expect(res.body.factor).toMatchObject({ id: factor.id, type: 'totp', name: 'phone', verified: true });
    expect(res.body.recovery_codes).toHaveLength(10);
    expect(new Set(res.body.recovery_codes).size).toBe(10);
    for (const c of res.body.recovery_codes) expect(c).toMatch(/^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$/);
    expect((await t.knex('users').where({ id: u.user.id }).first()).mfa_enabled).toBe(true);
    const codes = await t.knex('mfa_recovery_codes').where({ user_id: u.user.id });
    expect(codes).toHaveLength(10);
    for (const row of codes) for (const c of res.body.recovery_codes) expect(row.code_hash).not.toContain(c.replace(/-/g, ''));
    // The other session ended; this one goes on at aal2; the API token is not affected.
    expect((await t.http().get('/me').set(bearer(other))).status).toBe(401);
    expect((await t.http().get('/user/me').set(bearer(u.jwt))).body.mfa_enabled).toBe(true);
    expect((await t.http().get('/user').set(bearer(u.jwt))).status).toBe(403); // forbidden as a non-admin: past the MFA rule
    const sessions = await t.http().get('/user/me/session').set(bearer(u.jwt)).expect(200);
    expect(sessions.body.map((s: { aal: string; current: boolean }) => [s.aal, s.current])).toEqual([['aal2', true]]);
    expect((await t.http().get('/user/me').set(bearer(api))).status).toBe(200);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Two-factor sign-in was added to your Accounts account');
    expect(mail.text).toContain('"phone"');
    expect((await auditOf(t, 'mfa.factor_verified', u.user.id))[0].summary).toMatchObject({ factor: factor.id, first: true, sessions_ended: 1 });
    expect((await auditOf(t, 'mfa.recovery_codes_created', u.user.id))[0].summary).toEqual({ count: 10 });
    // The codes are never shown again: already verified is 409, and a second factor brings none.
    const again = await t.http().post(`/user/me/factor/${factor.id}/verify`).set(bearer(u.jwt)).send({ code: freshCode(t, factor.secret) });
    expect([again.status, again.body.code]).toEqual([409, 'conflict']);
    const second = await addFactor(t, u, 'tablet');
    const res2 = await t.http().post(`/user/me/factor/${second.id}/verify`).set(bearer(u.jwt)).send({ code: codeAt(t, second.secret) });
    expect(res2.status).toBe(200);
    expect(res2.body.recovery_codes).toBeUndefined();
    expect(await t.knex('mfa_recovery_codes').where({ user_id: u.user.id }).pluck('code_hash')).toEqual(codes.map((c) => c.code_hash));
  });

  it('answers a wrong code 400 mfa_failed and changes nothing but the count of wrong codes and an audit entry', async () => {
    const u = await t.factory.loggedIn();
    const factor = await addFactor(t, u);
    const right = codeAt(t, factor.secret);
    const wrong = right === '000000' ? '000001' : '000000';
    const res = await t.http().post(`/user/me/factor/${factor.id}/verify`).set(bearer(u.jwt)).send({ code: wrong });
    expect([res.status, res.body.code]).toEqual([400, 'mfa_failed']);
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect((await t.knex('mfa_factors').where({ id: factor.id }).first()).verified).toBe(false);
    expect((await t.knex('users').where({ id: u.user.id }).first()).mfa_enabled).toBe(false);
    expect((await auditOf(t, 'mfa.failed', u.user.id))[0].summary).toEqual({ stage: 'enrolment', factor: factor.id });
    expect(await t.knex('login_throttle').where({ key: `mfa:${u.user.id}` }).first()).toMatchObject({ failures: 1 });
    expect((await t.http().post(`/user/me/factor/${factor.id}/verify`).set(bearer(u.jwt)).send({ code: right })).status).toBe(200);
    expect(await t.knex('login_throttle').where({ key: `mfa:${u.user.id}` }).first()).toBeUndefined();
  });

  it('answers 404 for an unknown factor, another user\'s, and one left unconfirmed for 10 minutes (which housekeeping then drops)', async () => {
    const u = await t.factory.loggedIn();
    const stranger = await t.factory.loggedIn();
    const theirs = await addFactor(t, stranger);
    const mine = await addFactor(t, u);
    for (const id of ['6f1c2a1e-3b4d-4c5e-8f70-9a1b2c3d4e5f', theirs.id]) {
      const res = await t.http().post(`/user/me/factor/${id}/verify`).set(bearer(u.jwt)).send({ code: codeAt(t, theirs.secret) });
      expect([res.status, res.body.code]).toEqual([404, 'not_found']);
    }
    expect((await t.knex('mfa_factors').where({ id: theirs.id }).first()).verified).toBe(false);
    t.clock.advance(10 * 60_000 + 1000);
    const late = await t.http().post(`/user/me/factor/${mine.id}/verify`).set(bearer(u.jwt)).send({ code: codeAt(t, mine.secret) });
    expect(late.status).toBe(404);
    expect((await t.http().get('/user/me/factor').set(bearer(u.jwt))).body).toEqual([]);
    await t.container.housekeeping.runOnce();
    expect(await t.knex('mfa_factors').whereIn('id', [mine.id, theirs.id]).count('* as n').first()).toEqual({ n: '0' });
    // Its name is free again.
    await addFactor(t, u, 'phone');
  });

  it('of two concurrent first confirmations (two factors), exactly one makes recovery codes', async () => {
    const u = await t.factory.loggedIn();
    const a = await addFactor(t, u, 'a');
    const b = await addFactor(t, u, 'b');
    const [ra, rb] = await Promise.all([
      t.http().post(`/user/me/factor/${a.id}/verify`).set(bearer(u.jwt)).send({ code: codeAt(t, a.secret) }),
      t.http().post(`/user/me/factor/${b.id}/verify`).set(bearer(u.jwt)).send({ code: codeAt(t, b.secret) }),
    ]);
    expect([ra.status, rb.status]).toEqual([200, 200]);
    expect([ra.body.recovery_codes, rb.body.recovery_codes].filter(Boolean)).toHaveLength(1);
    expect(await t.knex('mfa_recovery_codes').where({ user_id: u.user.id }).count('* as n').first()).toEqual({ n: '10' });
    expect(await auditOf(t, 'mfa.recovery_codes_created', u.user.id)).toHaveLength(1);
  });

  it('of two concurrent confirmations of one factor with one code, one wins and the other gets 409', async () => {
    const u = await t.factory.loggedIn();
    const f = await addFactor(t, u);
    const code = codeAt(t, f.secret);
    const answers = await Promise.all([1, 2].map(() => t.http().post(`/user/me/factor/${f.id}/verify`).set(bearer(u.jwt)).send({ code })));
    expect(answers.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(await t.knex('mfa_recovery_codes').where({ user_id: u.user.id }).count('* as n').first()).toEqual({ n: '10' });
  });

  it('takes only a 6-digit code: anything else is 400 validation_failed and counts nothing', async () => {
    const u = await t.factory.loggedIn();
    const f = await addFactor(t, u);
    for (const code of ['12345', '1234567', 'abcd-efgh-jkmn', '12345\u0000', '1'.repeat(1000), '', 123456, null]) {
      const res = await t.http().post(`/user/me/factor/${f.id}/verify`).set(bearer(u.jwt)).send({ code });
      expect([String(code).slice(0, 10), res.status, res.body.code]).toEqual([String(code).slice(0, 10), 400, 'validation_failed']);
    }
    expect(await t.knex('login_throttle').where({ key: `mfa:${u.user.id}` }).first()).toBeUndefined();
    expect(await auditOf(t, 'mfa.failed', u.user.id)).toEqual([]);
    // Spaces around or in the middle are fine.
    const code = codeAt(t, f.secret);
    expect((await t.http().post(`/user/me/factor/${f.id}/verify`).set(bearer(u.jwt)).send({ code: ` ${code.slice(0, 3)} ${code.slice(3)} ` })).status).toBe(200);
  });
});

describe('POST /login and POST /login/mfa (the second step)', () => {
  it('gives a user with MFA an aal1 token of at most 10 minutes, mfa_required and the verified factors; that token may only finish the login', async () => {
    const u = await enrolled(t);
    await addFactor(t, { jwt: u.jwt, password: u.password }, 'pending one');
    const before = t.clock.now().getTime();
    const res = await t.http().post('/login').send({ email: u.email, password: u.password, set_session: true });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ jwt_token: expect.any(String), mfa_required: true, factors: [{ id: u.factorId, type: 'totp', name: 'phone' }] });
    const expires = new Date(res.headers.expires).getTime();
    expect(expires - before).toBeLessThanOrEqual(10 * 60_000 + 1000);
    expect(expires - before).toBeGreaterThan(9 * 60_000);
    expect(res.headers['set-cookie'][0]).toMatch(/Expires=/);
    const pending = res.body.jwt_token;
    expect((await t.http().get('/me').set(bearer(pending))).status).toBe(204);
    for (const [method, path] of [['get', '/user/me'], ['get', '/user/me/factor'], ['post', '/refresh_token'], ['get', '/user/me/session'], ['post', '/user/me/token']] as const) {
      const r = await t.http()[method](path).set(bearer(pending)).send(method === 'post' ? { name: 'x' } : undefined);
      expect([path, r.status, r.body.code]).toEqual([path, 403, 'mfa_required']);
    }
    // A wrong password says nothing about factors.
    const wrong = await t.http().post('/login').send({ email: u.email, password: 'wrong password!' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.factors).toBeUndefined();
  });

  it('swaps the aal1 token for a full aal2 one for a right TOTP code: the old token ends, audit login.mfa_succeeded', async () => {
    const u = await enrolled(t);
    const { jwt: pending } = await firstStep(t, u);
    const res = await t.http().post('/login/mfa').set(bearer(pending)).send({ code: freshCode(t, u.secret) });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ jwt_token: expect.any(String) });
    expect(new Date(res.headers.expires).getTime() - t.clock.now().getTime()).toBeGreaterThan(23 * 3_600_000);
    expect((await t.http().get('/me').set(bearer(pending))).status).toBe(401);
    const me = await t.http().get('/user/me').set(bearer(res.body.jwt_token));
    expect([me.status, me.body.mfa_enabled]).toEqual([200, true]);
    expect((await t.http().get('/user/me/session').set(bearer(res.body.jwt_token))).body.find((s: { current: boolean }) => s.current).aal).toBe('aal2');
    expect((await auditOf(t, 'login.mfa_succeeded', u.user.id)).at(-1)!.summary).toEqual({ method: 'totp', factor: u.factorId });
    expect((await t.knex('mfa_factors').where({ id: u.factorId }).first()).last_used).not.toBeNull();
  });

  it('accepts a TOTP code once per factor, and a code of an earlier step never', async () => {
    const u = await enrolled(t);
    const code = freshCode(t, u.secret);
    const earlier = codeAt(t, u.secret, -30_000);
    const a = await firstStep(t, u);
    expect((await t.http().post('/login/mfa').set(bearer(a.jwt)).send({ code })).status).toBe(200);
    const b = await firstStep(t, u);
    for (const c of [code, earlier]) {
      const replay = await t.http().post('/login/mfa').set(bearer(b.jwt)).send({ code: c });
      expect([replay.status, replay.body.code]).toEqual([401, 'mfa_failed']);
      expect(replay.headers['www-authenticate']).toBe('Bearer');
    }
    // The aal1 token stays after a failure.
    expect((await t.http().get('/me').set(bearer(b.jwt))).status).toBe(204);
    expect((await auditOf(t, 'mfa.failed', u.user.id)).map((e) => e.summary)).toEqual([
      { stage: 'login', kind: 'totp' },
      { stage: 'login', kind: 'totp' },
    ]);
  });

  it('of two requests with one code at the same moment, exactly one gets 200 (one token, one code)', async () => {
    const u = await enrolled(t);
    const code = freshCode(t, u.secret);
    const { jwt } = await firstStep(t, u);
    const answers = await Promise.all([1, 2].map(() => t.http().post('/login/mfa').set(bearer(jwt)).send({ code })));
    expect(answers.map((r) => r.status).sort()).toEqual([200, 401]);
    // Two logins, one code: also one winner.
    const code2 = freshCode(t, u.secret);
    const [x, y] = [await firstStep(t, u), await firstStep(t, u)];
    const both = await Promise.all([x, y].map((s) => t.http().post('/login/mfa').set(bearer(s.jwt)).send({ code: code2 })));
    expect(both.map((r) => r.status).sort()).toEqual([200, 401]);
    expect(await t.knex('user_tokens').where({ user_id: u.user.id, kind: 'login', aal: 'aal2' }).count('* as n').first()).toEqual({ n: '3' });
  });

  it('takes a recovery code once (case, spaces and hyphens ignored), mails how many are left, and audits it', async () => {
    const u = await enrolled(t);
    const [first] = u.recoveryCodes;
    const { jwt } = await firstStep(t, u);
    const typed = ` ${first.toUpperCase().replace(/-/g, ' ')} `;
    const res = await t.http().post('/login/mfa').set(bearer(jwt)).send({ code: typed });
    expect(res.status).toBe(200);
    expect((await t.http().get('/user/me/recovery_codes').set(bearer(res.body.jwt_token))).body).toEqual({ remaining: 9 });
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'A recovery code for your Accounts account was used');
    expect(mail.text).toContain('9 unused recovery codes are left');
    expect(mail.raw).not.toContain(first);
    expect((await auditOf(t, 'login.mfa_succeeded', u.user.id)).at(-1)!.summary).toEqual({ method: 'recovery_code' });
    expect((await auditOf(t, 'mfa.recovery_code_used', u.user.id))[0].summary).toEqual({ remaining: 9 });
    const again = await firstStep(t, u);
    const reuse = await t.http().post('/login/mfa').set(bearer(again.jwt)).send({ code: first });
    expect([reuse.status, reuse.body.code]).toEqual([401, 'mfa_failed']);
    // Two requests with one unused code: one winner.
    const [c, d] = [await firstStep(t, u), await firstStep(t, u)];
    const both = await Promise.all([c, d].map((s) => t.http().post('/login/mfa').set(bearer(s.jwt)).send({ code: u.recoveryCodes[1] })));
    expect(both.map((r) => r.status).sort()).toEqual([200, 401]);
    expect((await t.knex('mfa_recovery_codes').where({ user_id: u.user.id }).whereNull('used').count('* as n').first())).toEqual({ n: '8' });
  });

  it('answers malformed codes 400 validation_failed and changes nothing (no count, no audit entry, the token stays aal1)', async () => {
    const u = await enrolled(t);
    const { jwt } = await firstStep(t, u);
    for (const code of ['12345', '1234567', '12 34 56', 'abcd-efgh-jkm', 'abcd-efgh-jkmnp', 'abcd_efgh_jkmn', 'ab\u0000d-efgh-jkmn', '1'.repeat(1000), '', 123456, null, ['123456']]) {
      const res = await t.http().post('/login/mfa').set(bearer(jwt)).send({ code });
      expect([JSON.stringify(code).slice(0, 20), res.status, res.body.code]).toEqual([JSON.stringify(code).slice(0, 20), 400, 'validation_failed']);
    }
    const extra = await t.http().post('/login/mfa').set(bearer(jwt)).send({ code: '123456', factor: u.factorId });
    expect(extra.status).toBe(400);
    expect(await t.knex('login_throttle').where({ key: `mfa:${u.user.id}` }).first()).toBeUndefined();
    expect(await auditOf(t, 'mfa.failed', u.user.id)).toEqual([]);
    expect((await t.http().get('/user/me').set(bearer(jwt))).body.code).toBe('mfa_required');
  });

  it('refuses the second step to a token with none pending (403): an aal2 token, an API token, a user without MFA', async () => {
    const u = await enrolled(t);
    const plain = await t.factory.loggedIn();
    for (const jwt of [u.jwt, await t.factory.apiToken(u.user), plain.jwt]) {
      const res = await t.http().post('/login/mfa').set(bearer(jwt)).send({ code: codeAt(t, u.secret) });
      expect([res.status, res.body.code]).toEqual([403, 'forbidden']);
    }
    expect((await t.http().post('/login/mfa').send({ code: '123456' })).status).toBe(401);
  });

  it('renews the cookie when the login came by cookie', async () => {
    const u = await enrolled(t);
    const agent = t.http();
    const login = await agent.post('/login').send({ email: u.email, password: u.password, set_session: true });
    expect(login.body.mfa_required).toBe(true);
    const res = await agent.post('/login/mfa').send({ code: freshCode(t, u.secret) });
    expect(res.status).toBe(200);
    expect(res.headers['set-cookie'][0]).toContain(`account_session=${res.body.jwt_token}`);
    expect((await agent.get('/user/me')).status).toBe(200);
  });

  it('reports a pending password change alongside, after the second step', async () => {
    const u = await enrolled(t);
    await t.knex('users').where({ id: u.user.id }).update({ force_password_change: true });
    const { jwt, res } = await firstStep(t, u);
    expect(res.body).toMatchObject({ mfa_required: true, password_change_required: true });
    expect(res.headers.location).toBe('/user/me/password');
    expect((await t.http().get('/user/me').set(bearer(jwt))).body.code).toBe('mfa_required');
    const done = await t.http().post('/login/mfa').set(bearer(jwt)).send({ code: freshCode(t, u.secret) });
    expect(done.body).toEqual({ jwt_token: expect.any(String), password_change_required: true });
    expect(done.headers.location).toBe('/user/me/password');
    expect((await t.http().get('/user/me/factor').set(bearer(done.body.jwt_token))).body.code).toBe('password_change_required');
  });
});

describe('the MFA throttle (MFA_MAX_FAILURES)', () => {
  it('after 5 wrong codes refuses further tries (the right code too) with 429 and Retry-After for a doubling delay, apart from the password count, in the database', async () => {
    const u = await enrolled(t);
    const { jwt } = await firstStep(t, u);
    t.clock.stop();
    try {
      const right = freshCode(t, u.secret);
      const wrong = right === '999999' ? '999998' : '999999';
      for (let i = 1; i <= 5; i++) {
        const res = await t.http().post('/login/mfa').set(bearer(jwt)).send({ code: wrong });
        expect([i, res.status]).toEqual([i, 401]);
      }
      const blocked = await t.http().post('/login/mfa').set(bearer(jwt)).send({ code: right });
      expect([blocked.status, blocked.body.code, blocked.headers['retry-after']]).toEqual([429, 'rate_limited', '1']);
      expect(await t.knex('login_throttle').where({ key: `mfa:${u.user.id}` }).first()).toMatchObject({ failures: 5 });
      // The password's count is apart: the password still logs in.
      expect((await firstStep(t, u)).res.body.mfa_required).toBe(true);
      // Another instance over the same database refuses too.
      const other = await createTestApp({ sameDatabaseAs: t });
      try {
        other.clock.stop(t.clock.now().getTime());
        const there = await other.http().post('/login/mfa').set(bearer(jwt)).send({ code: right });
        expect(there.status).toBe(429);
      } finally {
        await other.close();
      }
      // Once the delay is over, one more wrong code blocks for 2 s; then the right one works and the count starts again.
      t.clock.advance(1000);
      expect((await t.http().post('/login/mfa').set(bearer(jwt)).send({ code: wrong })).status).toBe(401);
      t.clock.advance(1000);
      expect((await t.http().post('/login/mfa').set(bearer(jwt)).send({ code: right })).headers['retry-after']).toBe('1');
      t.clock.advance(1000);
      expect((await t.http().post('/login/mfa').set(bearer(jwt)).send({ code: right })).status).toBe(200);
      expect(await t.knex('login_throttle').where({ key: `mfa:${u.user.id}` }).first()).toBeUndefined();
    } finally {
      t.clock.resume();
    }
  });
});

describe('MFA_MAX_FAILURES and the per-IP limit on POST /login/mfa', () => {
  it('counts wrong codes up to the configured number, and limits requests a minute per client IP as /login does', async () => {
    const s = await createTestApp({ env: { MFA_MAX_FAILURES: '2', THROTTLE_IP_PER_MINUTE: '4' } });
    try {
      s.clock.stop();
      const u = await enrolled(s);
      const { jwt } = await firstStep(s, u);
      const right = freshCode(s, u.secret);
      const wrong = right === '999999' ? '999998' : '999999';
      expect((await s.http().post('/login/mfa').set(bearer(jwt)).send({ code: wrong })).status).toBe(401);
      expect((await s.http().post('/login/mfa').set(bearer(jwt)).send({ code: wrong })).status).toBe(401);
      const byAccount = await s.http().post('/login/mfa').set(bearer(jwt)).send({ code: right });
      expect([byAccount.status, byAccount.headers['ratelimit-limit']]).toEqual([429, '2']);
      s.clock.advance(1000);
      expect((await s.http().post('/login/mfa').set(bearer(jwt)).send({ code: right })).status).toBe(200);
      const again = await firstStep(s, u);
      const byIp = await s.http().post('/login/mfa').set(bearer(again.jwt)).send({ code: freshCode(s, u.secret) });
      expect([byIp.status, byIp.body.code, byIp.headers['ratelimit-limit']]).toEqual([429, 'rate_limited', '4']);
      expect(byIp.headers['retry-after']).toBeDefined();
    } finally {
      await s.close();
    }
  });
});

describe('DELETE /user/me/factor/{id}', () => {
  it('removes a factor; the last verified one turns MFA off and deletes the recovery codes; a mail for a verified one', async () => {
    const u = await enrolled(t);
    const waiting = await firstStep(t, u); // someone with the password, at the second step
    const spare = await addFactor(t, u, 'spare');
    expect((await t.http().delete(`/user/me/factor/${spare.id}`).set(bearer(u.jwt))).status).toBe(204);
    expect((await queuedMail(t.knex, u.email)).filter((m) => m.subject === 'Two-factor sign-in was removed from your Accounts account')).toEqual([]);
    const res = await t.http().delete(`/user/me/factor/${u.factorId}`).set(bearer(u.jwt));
    expect(res.status).toBe(204);
    expect((await t.knex('users').where({ id: u.user.id }).first()).mfa_enabled).toBe(false);
    expect(await t.knex('mfa_recovery_codes').where({ user_id: u.user.id })).toEqual([]);
    expect((await t.http().get('/user/me/recovery_codes').set(bearer(u.jwt))).body).toEqual({ remaining: 0 });
    // The login waiting for its second step did not become a full session: it ended.
    expect((await t.http().get('/user/me').set(bearer(waiting.jwt))).status).toBe(401);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Two-factor sign-in was removed from your Accounts account');
    expect(mail.text).toContain('"phone"');
    expect((await auditOf(t, 'mfa.factor_removed', u.user.id)).map((e) => e.summary)).toEqual([
      { factor: spare.id, type: 'totp', name: 'spare', verified: false, mfa_off: false },
      { factor: u.factorId, type: 'totp', name: 'phone', verified: true, mfa_off: true },
    ]);
    // The password alone logs in again.
    expect((await firstStep(t, u)).res.body).toEqual({ jwt_token: expect.any(String) });
    expect((await t.http().delete(`/user/me/factor/${u.factorId}`).set(bearer(u.jwt))).status).toBe(404);
  });

  it('answers 404 for another user\'s factor and leaves it', async () => {
    const u = await enrolled(t);
    const other = await t.factory.loggedIn();
    const res = await t.http().delete(`/user/me/factor/${u.factorId}`).set(bearer(other.jwt));
    expect([res.status, res.body.code]).toEqual([404, 'not_found']);
    expect(await countFactors(u.user.id)).toBe(1);
  });

  it('keeps MFA on while another verified factor remains', async () => {
    const u = await enrolled(t);
    const second = await addFactor(t, u, 'tablet');
    await t.http().post(`/user/me/factor/${second.id}/verify`).set(bearer(u.jwt)).send({ code: codeAt(t, second.secret) }).expect(200);
    await t.http().delete(`/user/me/factor/${u.factorId}`).set(bearer(u.jwt)).expect(204);
    expect((await t.knex('users').where({ id: u.user.id }).first()).mfa_enabled).toBe(true);
    expect(await t.knex('mfa_recovery_codes').where({ user_id: u.user.id }).count('* as n').first()).toEqual({ n: '10' });
    // The remaining factor's codes still work.
    const { jwt } = await firstStep(t, u);
    expect((await t.http().post('/login/mfa').set(bearer(jwt)).send({ code: freshCode(t, second.secret) })).status).toBe(200);
  });
});

describe('recovery codes', () => {
  it('GET counts the unused ones (0 without MFA); login tokens only', async () => {
    const u = await enrolled(t);
    expect((await t.http().get('/user/me/recovery_codes').set(bearer(u.jwt))).body).toEqual({ remaining: 10 });
    const plain = await t.factory.loggedIn();
    expect((await t.http().get('/user/me/recovery_codes').set(bearer(plain.jwt))).body).toEqual({ remaining: 0 });
    const api = await t.http().get('/user/me/recovery_codes').set(bearer(await t.factory.apiToken(u.user)));
    expect([api.status, api.body.code]).toEqual([403, 'forbidden']);
  });

  it('POST replaces them (201, once; the old ones stop working) with the current password; 409 without MFA; 403 wrong password', async () => {
    const u = await enrolled(t);
    const wrong = await t.http().post('/user/me/recovery_codes').set(bearer(u.jwt)).send({ current_password: 'nope nope nope' });
    expect([wrong.status, wrong.body.code]).toEqual([403, 'wrong_password']);
    const res = await t.http().post('/user/me/recovery_codes').set(bearer(u.jwt)).send({ current_password: u.password });
    expect(res.status).toBe(201);
    expect(res.body.codes).toHaveLength(10);
    expect(res.body.codes).not.toContain(u.recoveryCodes[0]);
    expect((await auditOf(t, 'mfa.recovery_codes_created', u.user.id)).at(-1)!.summary).toEqual({ count: 10, replaced: true });
    const old = await firstStep(t, u);
    expect((await t.http().post('/login/mfa').set(bearer(old.jwt)).send({ code: u.recoveryCodes[0] })).status).toBe(401);
    expect((await t.http().post('/login/mfa').set(bearer(old.jwt)).send({ code: res.body.codes[0] })).status).toBe(200);
    const plain = await t.factory.loggedIn();
    const none = await t.http().post('/user/me/recovery_codes').set(bearer(plain.jwt)).send({ current_password: plain.password });
    expect([none.status, none.body.code]).toEqual([409, 'conflict']);
    expect(await t.knex('mfa_recovery_codes').where({ user_id: plain.user.id })).toEqual([]);
  });

  it('POST refuses bad input with 400 and leaves the codes: a missing, non-string, NUL or over-long password, other members', async () => {
    const u = await enrolled(t);
    const before = await t.knex('mfa_recovery_codes').where({ user_id: u.user.id }).orderBy('id');
    for (const body of [{}, { current_password: 12345678 }, { current_password: 'pass\u0000word' }, { current_password: 'p'.repeat(5000) }, { current_password: u.password, codes: ['aaaa-bbbb-cccc'] }]) {
      const res = await t.http().post('/user/me/recovery_codes').set(bearer(u.jwt)).send(body);
      expect([JSON.stringify(body).slice(0, 60), res.status, res.body.code]).toEqual([JSON.stringify(body).slice(0, 60), 400, 'validation_failed']);
    }
    expect(await t.knex('mfa_recovery_codes').where({ user_id: u.user.id }).orderBy('id')).toEqual(before);
  });
});

describe('a malformed factor id', () => {
  it('is 400 validation_failed on confirming and removing, and changes nothing', async () => {
    const u = await t.factory.loggedIn();
    const factor = await addFactor(t, { jwt: u.jwt, password: u.password });
    for (const id of ['not-a-uuid', `${factor.id}x`, '%00']) {
      const verify = await t.http().post(`/user/me/factor/${id}/verify`).set(bearer(u.jwt)).send({ code: codeAt(t, factor.secret) });
      expect([id, verify.status, verify.body.code]).toEqual([id, 400, 'validation_failed']);
      const gone = await t.http().delete(`/user/me/factor/${id}`).set(bearer(u.jwt));
      expect([id, gone.status, gone.body.code]).toEqual([id, 400, 'validation_failed']);
    }
    expect(await t.knex('mfa_factors').where({ user_id: u.user.id }).select('id', 'verified')).toEqual([{ id: factor.id, verified: false }]);
  });
});

describe('admin: GET and DELETE /user/{user}/factor', () => {
  it('lists a user\'s factors, and resets them: every factor and code gone, sessions ended (API tokens stay), the wrong-code count cleared, a mail, audit', async () => {
    const u = await enrolled(t);
    const api = await t.factory.apiToken(u.user);
    const list = await t.http().get(`/user/${u.email}/factor`).set(bearer(admin.jwt)).expect(200);
    expect(list.body).toEqual([expect.objectContaining({ id: u.factorId, verified: true, type: 'totp', name: 'phone' })]);
    const pending = await firstStep(t, u);
    await t.http().post('/login/mfa').set(bearer(pending.jwt)).send({ code: '000000' });
    const res = await t.http().delete(`/user/${u.user.id}/factor`).set(bearer(admin.jwt));
    expect(res.status).toBe(204);
    expect(await countFactors(u.user.id)).toBe(0);
    expect(await t.knex('mfa_recovery_codes').where({ user_id: u.user.id })).toEqual([]);
    expect((await t.knex('users').where({ id: u.user.id }).first()).mfa_enabled).toBe(false);
    expect(await t.knex('login_throttle').where({ key: `mfa:${u.user.id}` }).first()).toBeUndefined();
    expect((await t.http().get('/me').set(bearer(u.jwt))).status).toBe(401);
    expect((await t.http().get('/me').set(bearer(api))).status).toBe(204);
    await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Two-factor sign-in on your Accounts account was reset');
    const [entry] = await t.knex('audit_log').where({ action: 'mfa.reset', target_id: u.user.id });
    expect(entry.actor_id).not.toBeNull();
    expect(entry.summary).toMatchObject({ recovery_codes: 10, sessions_ended: 2 });
    // The password alone logs in now; a second reset is 204 and mails nothing.
    expect((await firstStep(t, u)).res.body.mfa_required).toBeUndefined();
    expect((await t.http().delete(`/user/${u.user.id}/factor`).set(bearer(admin.jwt))).status).toBe(204);
    expect(await t.knex('mail_outbox').where('subject', 'Two-factor sign-in on your Accounts account was reset').whereRaw('? = any(recipients)', [u.email]).count('* as n').first()).toEqual({ n: '1' });
  });

  it('answers 404 for an unknown user and 410 for a deactivated one', async () => {
    expect((await t.http().get('/user/nobody-here@example.test/factor').set(bearer(admin.jwt))).status).toBe(404);
    const gone = await t.factory.user();
    await t.http().delete(`/user/${gone.user.id}`).set(bearer(admin.jwt)).expect(204);
    expect((await t.http().delete(`/user/${gone.user.id}/factor`).set(bearer(admin.jwt))).status).toBe(410);
  });
});

describe('password flows keep MFA', () => {
  it('an admin reset and the mailed link do not remove or bypass it', async () => {
    const u = await enrolled(t);
    await t.http().delete(`/user/${u.user.id}/password`).set(bearer(admin.jwt)).expect(204);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Reset your Accounts password');
    const token = /token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
    await t.http().post('/password/reset/confirm').send({ token, password: 'a brand new password' }).expect(204);
    expect(await countFactors(u.user.id)).toBe(1);
    const { res } = await firstStep(t, { email: u.email, password: 'a brand new password' });
    expect(res.body.mfa_required).toBe(true);
  });

  it('a reset asked for by the user (POST /password/reset) and a password change do not either', async () => {
    const u = await enrolled(t);
    await t.http().post('/password/reset').send({ email: u.email }).expect(202);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Reset your Accounts password');
    const token = /token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
    await t.http().post('/password/reset/confirm').send({ token, password: 'another new password' }).expect(204);
    expect((await firstStep(t, { email: u.email, password: 'another new password' })).res.body.mfa_required).toBe(true);
    const full = await fullLogin(t, { email: u.email, password: 'another new password', secret: u.secret });
    await t.http().post('/user/me/password').set(bearer(full)).send({ current_password: 'another new password', password: 'and a third password' }).expect(204);
    expect((await firstStep(t, { email: u.email, password: 'and a third password' })).res.body.mfa_required).toBe(true);
    expect((await t.knex('users').where({ id: u.user.id }).first()).mfa_enabled).toBe(true);
  });
});

describe('refresh, API tokens and the level', () => {
  it('POST /refresh_token keeps aal2; an aal1 token cannot refresh', async () => {
    const u = await enrolled(t);
    const res = await t.http().post('/refresh_token').set(bearer(u.jwt)).expect(200);
    expect((await t.http().get('/user/me').set(bearer(res.body.jwt_token))).status).toBe(200);
    expect((await t.knex('user_tokens').where({ user_id: u.user.id, kind: 'login' })).map((r) => r.aal)).toEqual(['aal2']);
    const { jwt } = await firstStep(t, u);
    const refused = await t.http().post('/refresh_token').set(bearer(jwt));
    expect([refused.status, refused.body.code]).toEqual([403, 'mfa_required']);
  });

  it('only an aal2 login session of a user with MFA mints an API token; API tokens themselves are not affected', async () => {
    const u = await enrolled(t);
    const made = await t.http().post('/user/me/token').set(bearer(u.jwt)).send({ name: 'ci' });
    expect(made.status).toBe(201);
    expect((await t.knex('user_tokens').where({ user_id: u.user.id, kind: 'api' }).first()).aal).toBe('aal1');
    expect((await t.http().get('/user/me').set(bearer(made.body.token))).status).toBe(200);
    const byApi = await t.http().post('/user/me/token').set(bearer(made.body.token)).send({ name: 'ci 2' });
    expect([byApi.status, byApi.body.code]).toEqual([403, 'mfa_required']);
    const plain = await t.factory.user();
    expect((await t.http().post('/user/me/token').set(bearer(await t.factory.apiToken(plain.user))).send({ name: 'ci' })).status).toBe(201);
  });

  it('UserDetailed shows mfa_enabled to the user and to admins', async () => {
    const u = await enrolled(t);
    expect((await t.http().get(`/user/${u.user.id}`).set(bearer(admin.jwt))).body.mfa_enabled).toBe(true);
    expect((await t.http().get('/user/me').set(bearer(admin.jwt))).body.mfa_enabled).toBe(false);
  });
});

describe('no secret anywhere', () => {
  it('never shows a secret, code, URI or QR in a log line, a mail, an audit entry or any answer but the 201 that creates it', async () => {
    const lines: string[] = [];
    const s = await createTestApp({ env: { LOG_LEVEL: 'trace' }, logDestination: { write: (line: string) => void lines.push(line) } });
    try {
      const answers: string[] = [];
      const keep = <T extends { text: string; headers: Record<string, unknown> }>(r: T): T => {
        answers.push(r.text, JSON.stringify(r.headers));
        return r;
      };
      const admin2 = await s.factory.loggedIn({ admin: true });
      const u = await s.factory.loggedIn();
      const created = await s.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'totp', name: 'phone', current_password: u.password }).expect(201);
      const { secret, uri, qr_svg: qr } = created.body;
      const totp = (offset = 0) => TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: s.clock.now().getTime() + offset });
      const used: string[] = [];
      const code = (c: string) => (used.push(c), c);
      const verified = await s.http().post(`/user/me/factor/${created.body.id}/verify`).set(bearer(u.jwt)).send({ code: code(totp()) }).expect(200);
      const recovery: string[] = verified.body.recovery_codes;
      keep(await s.http().get('/user/me/factor').set(bearer(u.jwt)));
      keep(await s.http().get('/user/me').set(bearer(u.jwt)));
      s.clock.advance(30_000);
      const login = keep(await s.http().post('/login').send({ email: u.email, password: u.password }));
      keep(await s.http().post('/login/mfa').set(bearer(login.body.jwt_token)).send({ code: code(totp(-60_000)) }));
      keep(await s.http().post('/login/mfa').set(bearer(login.body.jwt_token)).send({ code: code(recovery[0]) }));
      const again = keep(await s.http().post('/login').send({ email: u.email, password: u.password }));
      keep(await s.http().post('/login/mfa').set(bearer(again.body.jwt_token)).send({ code: code(totp()) }));
      const fresh = await s.http().post('/user/me/recovery_codes').set(bearer(u.jwt)).send({ current_password: u.password }).expect(201);
      keep(await s.http().get('/user/me/recovery_codes').set(bearer(u.jwt)));
      keep(await s.http().get(`/user/${u.user.id}/factor`).set(bearer(admin2.jwt)));
      keep(await s.http().get('/audit').set(bearer(admin2.jwt)));
      keep(await s.http().delete(`/user/${u.user.id}/factor`).set(bearer(admin2.jwt)));
      await s.mail.waitFor((m) => m.to.includes(u.email), 3);
      await s.container.auditChainer.runOnce();

      const secrets = [secret, secret.toLowerCase(), uri, encodeURIComponent(uri), qr, ...recovery, ...recovery.map((c) => c.replace(/-/g, '')), ...fresh.body.codes, ...used];
      const audit = JSON.stringify(await s.knex('audit_log').select());
      const mails = s.mail.mails.map((m) => m.raw).join('\n');
      const stored = JSON.stringify(await s.knex('mfa_factors').select()) + JSON.stringify(await s.knex('mfa_recovery_codes').select());
      expect(lines.length).toBeGreaterThan(10);
      // A 6-digit code counts where it stands alone (not inside a longer number, a time in milliseconds say).
      const found = (text: string, x: string) => (/^[0-9]+$/.test(x) ? new RegExp(`(?<![0-9])${x}(?![0-9])`).test(text) : text.includes(x));
      for (const x of secrets) {
        for (const [where, text] of [['log', lines.join('\n')], ['audit', audit], ['mail', mails], ['answers', answers.join('\n')], ['stored', stored]] as const) {
          expect([where, x.slice(0, 16), found(text, x)]).toEqual([where, x.slice(0, 16), false]);
        }
      }
    } finally {
      await s.close();
    }
  });
});
