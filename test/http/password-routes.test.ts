import { bearer, captureQueries, countRows, createTestApp, jobsDone, queuedMail, rawRequest, testAppWithAdmin, unique } from '../helpers/test-app';

const { t, admin } = testAppWithAdmin();

/** Creates a user through the API and returns the token of their welcome link. */
async function invited(): Promise<{ id: string; email: string; token: string }> {
  const name = `inv${Math.random().toString(36).slice(2, 10)}`;
  const email = `${name}@example.test`;
  const res = await t.http().post('/user').set(bearer(admin.jwt)).send({ name, email }).expect(201);
  const [mail] = await t.mail.waitFor((m) => m.to.includes(email));
  return { id: res.body.id, email, token: /token=([A-Za-z0-9_-]+)/.exec(mail.text)![1] };
}

describe('POST /password/reset/confirm', () => {
  it('sets the password, clears force_password_change, ends login tokens, and works once', async () => {
    const u = await invited();
    // Give the user a password and a login session first, to see them end.
    await t.knex('users').where({ id: u.id }).update({ password_hash: await t.container.hasher.hash('old password 123') });
    const session = await t.factory.login({ email: u.email, password: 'old password 123' });
    const api = await t.factory.apiToken((await t.container.stores.users.findById(u.id))!);
    const res = await t.http().post('/password/reset/confirm').send({ token: u.token, password: 'new password 456' });
    expect(res.status).toBe(204);
    const row = await t.knex('users').where({ id: u.id }).first();
    expect(row.force_password_change).toBe(false);
    expect((await t.http().get('/me').set(bearer(session))).status).toBe(401);
    expect((await t.http().get('/me').set(bearer(api))).status).toBe(204);
    expect((await t.http().post('/login').send({ email: u.email, password: 'old password 123' })).status).toBe(401);
    expect((await t.http().post('/login').send({ email: u.email, password: 'new password 456' })).status).toBe(200);
    const again = await t.http().post('/password/reset/confirm').send({ token: u.token, password: 'third password 789' });
    expect(again.status).toBe(400);
    expect(again.body.code).toBe('invalid_token');
    expect((await t.http().post('/login').send({ email: u.email, password: 'new password 456' })).status).toBe(200);
  });

  it('refuses unknown and expired tokens with invalid_token', async () => {
    const unknown = await t.http().post('/password/reset/confirm').send({ token: 'x'.repeat(43), password: 'some password 1' });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({ code: 'invalid_token' });
    const u = await invited();
    t.clock.advance(7 * 86_400_000 + 1000);
    try {
      const expired = await t.http().post('/password/reset/confirm').send({ token: u.token, password: 'some password 1' });
      expect(expired.status).toBe(400);
      expect(expired.body.code).toBe('invalid_token');
      expect((await t.knex('users').where({ id: u.id }).first()).password_hash).toBeNull();
    } finally {
      t.clock.advance(-(7 * 86_400_000 + 1000));
    }
  });

  it('refuses a weak password with weak_password and leaves the link usable', async () => {
    const u = await invited();
    for (const password of ['short', 'x'.repeat(257), '\u{1F600}'.repeat(65)]) {
      const res = await t.http().post('/password/reset/confirm').send({ token: u.token, password });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('weak_password');
    }
    expect((await t.http().post('/password/reset/confirm').send({ token: u.token, password: '\u{1F600}'.repeat(8) })).status).toBe(204);
    expect((await t.http().post('/login').send({ email: u.email, password: '\u{1F600}'.repeat(8) })).status).toBe(200);
  });

  it('uses every byte of a long password (beyond bcrypt\'s 72)', async () => {
    const u = await invited();
    const long = `${'a'.repeat(100)}1`;
    await t.http().post('/password/reset/confirm').send({ token: u.token, password: long }).expect(204);
    expect((await t.http().post('/login').send({ email: u.email, password: `${'a'.repeat(100)}2` })).status).toBe(401);
    expect((await t.http().post('/login').send({ email: u.email, password: long })).status).toBe(200);
  });

  it('lets one of several concurrent uses of a link succeed', async () => {
    const u = await invited();
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => t.http().post('/password/reset/confirm').send({ token: u.token, password: `concurrent password ${i}` })),
    );
    expect(results.filter((r) => r.status === 204)).toHaveLength(1);
    expect(results.filter((r) => r.status === 400 && r.body.code === 'invalid_token')).toHaveLength(7);
  });

  it('dies when the user is deactivated', async () => {
    const u = await invited();
    await t.http().delete(`/user/${u.id}`).set(bearer(admin.jwt)).expect(204);
    const res = await t.http().post('/password/reset/confirm').send({ token: u.token, password: 'some password 1' });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('invalid_token');
  });

  it('validates the body', async () => {
    for (const body of [{}, { token: 'x' }, { password: 'some password' }, { token: 1, password: 'some password' }, { token: 'x', password: 'some password', extra: 1 }]) {
      const res = await t.http().post('/password/reset/confirm').send(body);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
  });
});

const works = async (token: string) => (await t.http().get('/me').set(bearer(token))).status === 204;

describe('POST /user/me/password', () => {
  it('with a wrong current password answers 403 wrong_password and changes nothing', async () => {
    const u = await t.factory.loggedIn();
    const before = (await t.knex('users').where({ id: u.user.id }).first()).password_hash;
    const res = await t.http().post('/user/me/password').set(bearer(u.jwt)).send({ current_password: 'not it at all', password: 'a new password 1' });
    expect([res.status, res.body.code]).toEqual([403, 'wrong_password']);
    expect((await t.knex('users').where({ id: u.user.id }).first()).password_hash).toBe(before);
    expect(await works(u.jwt)).toBe(true);
    const missing = await t.http().post('/user/me/password').set(bearer(u.jwt)).send({ password: 'a new password 1' });
    expect([missing.status, missing.body.code]).toEqual([400, 'validation_failed']);
  });

  it('counts a wrong current password on the login throttle: after the account failures run out even the right one is 429 until the delay, and nothing changes', async () => {
    const own = await createTestApp({ env: { THROTTLE_ACCOUNT_FAILURES: '3' } });
    try {
      const u = await own.factory.loggedIn();
      const before = (await own.knex('users').where({ id: u.user.id }).first()).password_hash;
      for (let i = 0; i < 3; i++) {
        const res = await own.http().post('/user/me/password').set(bearer(u.jwt)).send({ current_password: `guess ${i}`, password: 'a new password 1' });
        expect([res.status, res.body.code]).toEqual([403, 'wrong_password']);
      }
      const refused = await own.http().post('/user/me/password').set(bearer(u.jwt)).send({ current_password: u.password, password: 'a new password 1' });
      expect([refused.status, refused.body.code, refused.headers['retry-after']]).toEqual([429, 'rate_limited', '1']);
      expect((await own.knex('users').where({ id: u.user.id }).first()).password_hash).toBe(before);
      own.clock.advance(1_000);
      await own.http().post('/user/me/password').set(bearer(u.jwt)).send({ current_password: u.password, password: 'a new password 1' }).expect(204);
      expect(await own.knex('login_throttle').where({ key: `user:${u.user.id}` })).toHaveLength(0);
    } finally {
      await own.close();
    }
  });

  it('refuses a weak new password with weak_password', async () => {
    const u = await t.factory.loggedIn();
    const res = await t.http().post('/user/me/password').set(bearer(u.jwt)).send({ current_password: u.password, password: 'short' });
    expect([res.status, res.body.code]).toEqual([400, 'weak_password']);
    expect((await t.http().post('/login').send({ email: u.email, password: u.password })).status).toBe(200);
  });

  it.each([
    [undefined, { used: false, other: false, api: true }],
    ['login_only', { used: false, other: false, api: true }],
    ['1', { used: false, other: false, api: true }],
    ['none', { used: true, other: true, api: true }],
    ['0', { used: true, other: true, api: true }],
    ['no', { used: true, other: true, api: true }],
    ['false', { used: true, other: true, api: true }],
    ['all', { used: false, other: false, api: false }],
  ])('clear_tokens=%s ends exactly the right tokens', async (clear, expected) => {
    const u = await t.factory.loggedIn();
    const other = await t.factory.login(u);
    const api = await t.factory.apiToken(u.user);
    const url = clear === undefined ? '/user/me/password' : `/user/me/password?clear_tokens=${clear}`;
    const res = await t.http().post(url).set(bearer(u.jwt)).send({ current_password: u.password, password: 'changed password 1' });
    expect(res.status).toBe(204);
    expect({ used: await works(u.jwt), other: await works(other), api: await works(api) }).toEqual(expected);
    expect((await t.http().post('/login').send({ email: u.email, password: u.password })).status).toBe(401);
    expect((await t.http().post('/login').send({ email: u.email, password: 'changed password 1' })).status).toBe(200);
  });

  it('mails a notice with no secret, clears the forced change and kills reset links', async () => {
    const u = await t.factory.loggedIn();
    await t.http().post('/password/reset').send({ email: u.email }).expect(202);
    const [resetMail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Reset your Accounts password');
    const link = /token=([A-Za-z0-9_-]+)/.exec(resetMail.text)![1];
    await t.http().post('/user/me/password').set(bearer(u.jwt)).send({ current_password: u.password, password: 'changed password 2' }).expect(204);
    const [notice] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Your Accounts password has been changed');
    expect(notice.raw).not.toContain('changed password 2');
    expect(notice.raw).not.toContain(u.password);
    const dead = await t.http().post('/password/reset/confirm').send({ token: link, password: 'hijacked password' });
    expect([dead.status, dead.body.code]).toEqual([400, 'invalid_token']);
  });

  it('still needs the current password with a forced-change login token while the password works, and frees the user', async () => {
    const u = await t.factory.user({ forcePasswordChange: true });
    const login = await t.http().post('/login').send({ email: u.email, password: u.password });
    const token = login.body.jwt_token;
    expect((await t.http().get('/me').set(bearer(token))).body.code).toBe('password_change_required');
    const missing = await t.http().post('/user/me/password?clear_tokens=none').set(bearer(token)).send({ password: 'my own password' });
    expect([missing.status, missing.body.code, missing.body.details]).toEqual([400, 'validation_failed', [{ path: '/body/current_password', message: 'is required' }]]);
    const wrong = await t.http().post('/user/me/password?clear_tokens=none').set(bearer(token)).send({ password: 'my own password', current_password: 'not it' });
    expect([wrong.status, wrong.body.code]).toEqual([403, 'wrong_password']);
    const row = await t.knex('users').where({ id: u.user.id }).first();
    expect(row.force_password_change).toBe(true);
    expect(await t.container.hasher.verify(u.password, row.password_hash)).toBe(true);

    await t.http().post('/user/me/password?clear_tokens=none').set(bearer(token)).send({ password: 'my own password', current_password: u.password }).expect(204);
    expect((await t.knex('users').where({ id: u.user.id }).first()).force_password_change).toBe(false);
    expect(await works(token)).toBe(true);
    const again = await t.http().post('/login').send({ email: u.email, password: 'my own password' });
    expect(again.body.password_change_required).toBeUndefined();
  });

  it('waives the current password only for a confined session whose password no longer works (an admin reset that kept the sessions)', async () => {
    const u = await t.factory.loggedIn();
    await t.http().delete(`/user/${u.user.id}/password?clear_tokens=none&send_mail=0`).set(bearer(admin.jwt)).expect(204);
    expect((await t.http().get('/me').set(bearer(u.jwt))).body.code).toBe('password_change_required');
    await t.http().post('/user/me/password?clear_tokens=none').set(bearer(u.jwt)).send({ password: 'chosen after reset' }).expect(204);
    const login = await t.http().post('/login').send({ email: u.email, password: 'chosen after reset' });
    expect([login.status, login.body.password_change_required]).toEqual([200, undefined]);
  });

  it('still wants the current password from an API token of a user who must change it', async () => {
    const u = await t.factory.user({ forcePasswordChange: true });
    const api = await t.factory.apiToken(u.user);
    const res = await t.http().post('/user/me/password').set(bearer(api)).send({ password: 'my own password' });
    expect([res.status, res.body.code]).toEqual([400, 'validation_failed']);
  });
});

describe('DELETE /user/:user/password (admin reset)', () => {
  it('makes the password unusable, forces a change, ends login tokens, and mails a single-use link', async () => {
    const u = await t.factory.loggedIn();
    const api = await t.factory.apiToken(u.user);
    const res = await t.http().delete(`/user/${u.email}/password`).set(bearer(admin.jwt));
    expect(res.status).toBe(204);
    expect((await t.http().post('/login').send({ email: u.email, password: u.password })).status).toBe(401);
    expect(await works(u.jwt)).toBe(false);
    expect(await works(api)).toBe(true);
    expect((await t.knex('users').where({ id: u.user.id }).first()).force_password_change).toBe(true);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Reset your Accounts password');
    expect(mail.text).toContain('1 hour');
    const link = /https:\/\/accounts\.example\.test\/reset-password\?token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
    await t.http().post('/password/reset/confirm').send({ token: link, password: 'fresh password 1' }).expect(204);
    const login = await t.http().post('/login').send({ email: u.email, password: 'fresh password 1' });
    expect(login.status).toBe(200);
    expect(login.body.password_change_required).toBeUndefined();
    expect((await t.http().post('/password/reset/confirm').send({ token: link, password: 'fresh password 2' })).status).toBe(400);
  });

  it('kills the links the user had before', async () => {
    const u = await t.factory.user();
    await t.http().post('/password/reset').send({ email: u.email }).expect(202);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email));
    const old = /token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
    await t.http().delete(`/user/${u.user.id}/password?send_mail=0`).set(bearer(admin.jwt)).expect(204);
    const res = await t.http().post('/password/reset/confirm').send({ token: old, password: 'hijacked password' });
    expect([res.status, res.body.code]).toEqual([400, 'invalid_token']);
  });

  it('confines kept login tokens to the password change with clear_tokens=none', async () => {
    const u = await t.factory.loggedIn();
    await t.http().delete(`/user/${u.user.id}/password?clear_tokens=none&send_mail=0`).set(bearer(admin.jwt)).expect(204);
    const res = await t.http().get('/me').set(bearer(u.jwt));
    expect([res.status, res.body.code, res.headers.location]).toEqual([401, 'password_change_required', '/user/me/password']);
    expect((await t.http().get('/user/me').set(bearer(u.jwt))).status).toBe(200);
    await t.http().post('/user/me/password?clear_tokens=none').set(bearer(u.jwt)).send({ password: 'out of jail 1' }).expect(204);
    expect(await works(u.jwt)).toBe(true);
  });

  it('ends all tokens with clear_tokens=all', async () => {
    const u = await t.factory.loggedIn();
    const api = await t.factory.apiToken(u.user);
    await t.http().delete(`/user/${u.user.id}/password?clear_tokens=all&send_mail=0`).set(bearer(admin.jwt)).expect(204);
    expect([await works(u.jwt), await works(api)]).toEqual([false, false]);
  });

  it.each([['send_mail=0'], ['send_password_reset_mail=0']])('sends no mail with %s', async (q) => {
    const u = await t.factory.user();
    await t.http().delete(`/user/${u.user.id}/password?${q}`).set(bearer(admin.jwt)).expect(204);
    expect(await queuedMail(t.knex, u.email)).toEqual([]);
    expect(await t.knex('password_tokens').where({ user_id: u.user.id })).toHaveLength(0);
  });

  it('refuses non-admins with 403 and deactivated targets with 410', async () => {
    const u = await t.factory.loggedIn();
    const victim = await t.factory.user();
    expect((await t.http().delete(`/user/${victim.user.id}/password`).set(bearer(u.jwt))).status).toBe(403);
    expect((await t.http().post('/login').send({ email: victim.email, password: victim.password })).status).toBe(200);
    await t.http().delete(`/user/${victim.user.id}`).set(bearer(admin.jwt)).expect(204);
    expect((await t.http().delete(`/user/${victim.user.id}/password`).set(bearer(admin.jwt))).status).toBe(410);
  });
});

describe('POST /password/reset', () => {
  it('always answers 202, and mails a link only to an active user with that address', async () => {
    const u = await t.factory.user();
    const gone = await t.factory.user();
    await t.http().delete(`/user/${gone.user.id}`).set(bearer(admin.jwt)).expect(204);
    for (const email of [u.email.toUpperCase(), 'nobody@example.test', gone.email]) {
      const res = await t.http().post('/password/reset').send({ email });
      expect(res.status).toBe(202);
      expect(res.text).toBe('');
    }
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email));
    expect(mail.subject).toBe('Reset your Accounts password');
    expect(await queuedMail(t.knex, 'nobody@example.test')).toEqual([]);
    expect(await queuedMail(t.knex, gone.email)).toEqual([]);
    const token = /token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
    const session = await t.factory.login(u);
    await t.http().post('/password/reset/confirm').send({ token, password: 'reset password 1' }).expect(204);
    expect(await works(session)).toBe(false);
    const [notice] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Your Accounts password has been changed');
    expect(notice.raw).not.toContain('reset password 1');
  });

  it('expires links after an hour', async () => {
    const u = await t.factory.user();
    await t.http().post('/password/reset').send({ email: u.email }).expect(202);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email));
    const token = /token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
    t.clock.advance(3600_000 + 1000);
    try {
      expect((await t.http().post('/password/reset/confirm').send({ token, password: 'too late password' })).body.code).toBe('invalid_token');
    } finally {
      t.clock.advance(-(3600_000 + 1000));
    }
  });

  it('mails one account at most once a minute', async () => {
    const u = await t.factory.user();
    for (let i = 0; i < 3; i++) await t.http().post('/password/reset').send({ email: u.email }).expect(202);
    await t.mail.waitFor((m) => m.to.includes(u.email));
    expect(await queuedMail(t.knex, u.email)).toHaveLength(1);
    t.clock.advance(61_000);
    try {
      await t.http().post('/password/reset').send({ email: u.email }).expect(202);
      await t.mail.waitFor((m) => m.to.includes(u.email), 2);
    } finally {
      t.clock.advance(-61_000);
    }
  });

  it('mails once when the jobs of several requests run at the same time (several instances): the minute is taken in one statement', async () => {
    const u = await t.factory.user();
    const other = await createTestApp({ sameDatabaseAs: t });
    try {
      const meta = { ip: null, userAgent: null, requestId: null };
      const jobs = [t, other, t, other, t, other].map((app) => app.container.services.passwords.sendResetLink(u.email, meta));
      await Promise.all(jobs);
    } finally {
      await other.close();
    }
    expect(await t.knex('password_tokens').where({ user_id: u.user.id, purpose: 'reset' })).toHaveLength(1);
    expect(await t.knex('audit_log').where({ target_id: u.user.id, action: 'password.reset_requested' })).toHaveLength(1);
    expect(await t.knex('mail_outbox').whereRaw('? = any(recipients)', [u.email])).toHaveLength(1);
  });

  it('mails one address at most 3 times an hour (still 202 beyond), however it is spelt, counted by a hash of it', async () => {
    const u = await t.factory.user();
    const resets = async () => t.knex('mail_outbox').whereRaw('? = any(recipients)', [u.email]).where({ subject: 'Reset your Accounts password' });
    let advanced = 0;
    try {
      for (let i = 0; i < 5; i++) {
        await t.http().post('/password/reset').send({ email: i % 2 ? u.email.toUpperCase() : u.email }).expect(202);
        await jobsDone(t.knex);
        t.clock.advance(61_000); // past the once-a-minute rule
        advanced += 61_000;
      }
      expect(await resets()).toHaveLength(3);
      const keys = (await t.knex('rate_limits').select('key')).map((r) => r.key as string);
      expect(keys.filter((k) => k.startsWith('mail:password_reset:to:'))).not.toEqual([]);
      expect(keys.filter((k) => k.toLowerCase().includes(u.user.name.toLowerCase()))).toEqual([]);

      t.clock.advance(3600_000);
      advanced += 3600_000;
      await t.http().post('/password/reset').send({ email: u.email }).expect(202);
      await jobsDone(t.knex);
      expect(await resets()).toHaveLength(4);
    } finally {
      t.clock.advance(-advanced);
    }
  });

  it('is throttled per client IP with 429, Retry-After and RateLimit headers', async () => {
    const limited = await createTestApp({ env: { THROTTLE_IP_PER_MINUTE: '3' } });
    try {
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await limited.http().post('/password/reset').send({ email: 'x@example.test' })).status);
      expect(statuses).toEqual([202, 202, 202, 429]);
      const res = await limited.http().post('/password/reset').send({ email: 'x@example.test' });
      expect([res.status, res.body.code]).toEqual([429, 'rate_limited']);
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      expect(res.headers['ratelimit-limit']).toBe('3');
      expect(res.headers['ratelimit-remaining']).toBe('0');
      const u = await limited.factory.user();
      const logins = [];
      for (let i = 0; i < 4; i++) logins.push((await limited.http().post('/login').send({ email: u.email, password: u.password })).status);
      expect(logins).toEqual([200, 200, 200, 429]);
    } finally {
      await limited.close();
    }
  });

  it('does the same work before answering whether or not the address has an account: one queued job', async () => {
    const u = await t.factory.user();
    await t.container.jobs.stop(); // paused, so that only the requests' own statements are seen
    try {
      const shape = async (email: string) => captureQueries(t.knex, () => t.http().post('/password/reset').send({ email }).expect(202));
      const known = await shape(u.email);
      expect(known).toEqual(await shape(`nobody-${unique('x')}@example.test`));
      expect(known.filter((q) => /^insert into "background_jobs"/.test(q))).toHaveLength(1);
      expect(known.filter((q) => /users|password_tokens|mail_outbox/.test(q))).toEqual([]);
    } finally {
      t.container.jobs.start();
    }
    await t.mail.waitFor((m) => m.to.includes(u.email));
  });

  it('answers text that breaks the text rule with the ordinary 202, queueing nothing', async () => {
    const u = await t.factory.user();
    const jobs = await countRows(t.knex, 'background_jobs');
    for (const email of [`${u.email}\u0000`, `\u0000${u.email}`]) expect((await t.http().post('/password/reset').send({ email })).status).toBe(202);
    const lone = await rawRequest(t.app, { method: 'POST', path: '/password/reset', headers: { 'Content-Type': 'application/json' }, body: `{"email": "${u.email}\\udc00"}` });
    expect(lone.status).toBe(202);
    expect(await countRows(t.knex, 'background_jobs')).toBe(jobs);
    expect(await queuedMail(t.knex, u.email)).toEqual([]);
  });

  it('validates the body', async () => {
    expect((await t.http().post('/password/reset').send({})).status).toBe(400);
    expect((await t.http().post('/password/reset').send({ email: 'a@b.c', extra: 1 })).status).toBe(400);
  });
});
