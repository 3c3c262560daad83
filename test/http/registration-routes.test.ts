import { bearer, captureQueries, countRows, createTestApp, jobsDone as jobsDoneIn, queuedMail, rawRequest, testAppWithAdmin, unique } from '../helpers/test-app';

const { t, admin } = testAppWithAdmin({ env: { ALLOW_REGISTRATION: '1' } });

const PASSWORD = 'registration password 1';
const DAY = 24 * 3600_000;

function newcomer() {
  const name = unique('reg');
  return { name, email: `${name}@example.test`, password: PASSWORD };
}

const linkToken = (text: string) => /\/verify-email\?token=([A-Za-z0-9_-]+)/.exec(text)![1];

/** Registers through the API and returns the verification link's token. */
async function registered(who = newcomer()): Promise<typeof who & { token: string; id: string }> {
  await t.http().post('/register').send(who).expect(202);
  const [mail] = await t.mail.waitFor((m) => m.to.includes(who.email));
  const row = await t.knex('users').where({ email: who.email }).first();
  return { ...who, token: linkToken(mail.text), id: row.id };
}

const jobsDone = () => jobsDoneIn(t.knex);

describe('POST /register', () => {
  it('answers 202, makes an unverified account, and mails its verification link', async () => {
    const who = newcomer();
    const res = await t.http().post('/register').send(who);
    expect([res.status, res.text]).toEqual([202, '']);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(who.email));
    expect(mail.subject).toBe('Verify your Accounts email address');
    expect(mail.text).toMatch(/https:\/\/accounts\.example\.test\/verify-email\?token=[A-Za-z0-9_-]{43}\n/);
    expect(mail.raw).not.toContain(PASSWORD);
    const row = await t.knex('users').where({ email: who.email }).first();
    expect(row).toMatchObject({ name: who.name, is_admin: false, force_password_change: false, email_verified: false, deactivated: null });
    const links = await t.knex('email_links').where({ user_id: row.id });
    expect(links).toHaveLength(1);
    expect(links[0]).toMatchObject({ purpose: 'verify', used: null });
    expect(links[0].token_hash).not.toBe(linkToken(mail.text)); // only the hash is kept
    expect(new Date(links[0].expires).getTime() - new Date(links[0].created).getTime()).toBe(DAY);
  });

  it('refuses the right password with 403 email_unverified (and no token) until the link is used, then logs in', async () => {
    const u = await registered();
    const tokens = await countRows(t.knex, 'user_tokens');
    const refused = await t.http().post('/login').send({ email: u.email, password: u.password });
    expect([refused.status, refused.body.code]).toEqual([403, 'email_unverified']);
    expect(await countRows(t.knex, 'user_tokens')).toBe(tokens);
    const wrong = await t.http().post('/login').send({ email: u.email, password: 'not the password' });
    expect([wrong.status, wrong.body.code]).toEqual([401, 'unauthenticated']);

    await t.http().post('/register/verify').send({ token: u.token }).expect(204);
    expect((await t.knex('users').where({ id: u.id }).first()).email_verified).toBe(true);
    const ok = await t.http().post('/login').send({ email: u.email, password: u.password });
    expect(ok.status).toBe(200);
    const me = await t.http().get('/user/me').set(bearer(ok.body.jwt_token)).expect(200);
    expect(me.body).toMatchObject({ id: u.id, name: u.name, email: u.email, is_admin: false });
  });

  it('mails an address that has an account "you already have an account" instead, and makes nothing', async () => {
    const existing = await t.factory.user();
    const users = await countRows(t.knex, 'users');
    const attempt = { name: unique('other'), email: existing.email.toUpperCase(), password: 'someone else password' };
    await t.http().post('/register').send(attempt).expect(202);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(existing.email));
    expect(mail.subject).toBe('You already have an Accounts account');
    expect(mail.raw).not.toContain('someone else password');
    expect(mail.raw).not.toMatch(/token=/);
    await jobsDone();
    expect(await countRows(t.knex, 'users')).toBe(users);
    expect(await t.knex('users').where({ name: attempt.name }).first()).toBeUndefined();
    // At most one such mail a minute per account.
    await t.http().post('/register').send({ ...attempt, name: unique('other') }).expect(202);
    expect(await queuedMail(t.knex, existing.email)).toHaveLength(1);
    expect((await t.http().post('/login').send({ email: existing.email, password: existing.password })).status).toBe(200);
  });

  it('does the same work before answering whether or not the address has an account: a lookup by name, one queued job', async () => {
    const existing = await t.factory.user();
    await t.container.jobs.stop(); // paused, so that only the requests' own statements are seen
    try {
      const shape = (email: string) => captureQueries(t.knex, () => t.http().post('/register').send({ name: unique('same'), email, password: PASSWORD }).expect(202));
      const known = await shape(existing.email);
      expect(known).toEqual(await shape(`nobody-${unique('x')}@example.test`));
      expect(known.filter((q) => /^insert into "background_jobs"/.test(q))).toHaveLength(1);
      expect(known.filter((q) => /lower\(email\)|"email" =|mail_outbox|email_links|^insert into "users"/.test(q))).toEqual([]);
    } finally {
      t.container.jobs.start();
    }
    await t.mail.waitFor((m) => m.to.includes(existing.email));
  });

  it('makes one account of 20 concurrent registrations of one address', async () => {
    const email = `${unique('race')}@example.test`;
    const answers = await Promise.all(Array.from({ length: 20 }, () => t.http().post('/register').send({ name: unique('racer'), email, password: PASSWORD })));
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(202));
    await jobsDone();
    expect(await t.knex('users').whereRaw('lower(email) = lower(?)', [email]).count<{ count: string }[]>('* as count')).toEqual([{ count: '1' }]);
    const mails = await t.mail.waitFor((m) => m.to.includes(email), 2);
    expect(mails.map((m) => m.subject).sort()).toEqual(['Verify your Accounts email address', 'You already have an Accounts account']);

    // The jobs themselves run at once (as on several instances): one makes the account; the
    // address's mail count lets two more through (to "you already have one"), the rest do nothing.
    const other = `${unique('race')}@example.test`;
    const hash = await t.container.hasher.hash(PASSWORD);
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () => t.container.services.registration.complete({ name: unique('racer'), email: other, passwordHash: hash })),
    );
    expect(outcomes.filter((o) => o === 'created')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'exists')).toHaveLength(2);
    expect(outcomes.filter((o) => o === 'limited')).toHaveLength(17);
    expect(await t.knex('users').where({ email: other }).count<{ count: string }[]>('* as count')).toEqual([{ count: '1' }]);
    // The mail count lines the jobs up; the insert alone is atomic too.
    const third = `${unique('race')}@example.test`;
    const inserted = await Promise.all(Array.from({ length: 20 }, () => t.container.stores.users.insertUnverified({ name: unique('racer'), email: third, passwordHash: hash })));
    expect(inserted.filter((u) => u !== undefined)).toHaveLength(1);
  });

  it('makes and mails nothing beyond 3 registrations an hour with one address (still 202), and counts by a hash of the address', async () => {
    const who = newcomer();
    const subjects = async () => (await t.knex('mail_outbox').select('subject').whereRaw('? = any(recipients)', [who.email]).orderBy('id')).map((m) => m.subject);
    const DRIFT = 61_000; // past the once-a-minute rule for "you already have an account"
    let advanced = 0;
    try {
      for (let i = 0; i < 5; i++) {
        await t.http().post('/register').send({ ...who, name: unique('bomb'), email: i % 2 ? who.email.toUpperCase() : who.email }).expect(202);
        await jobsDone();
        t.clock.advance(DRIFT);
        advanced += DRIFT;
      }
      expect(await subjects()).toEqual(['Verify your Accounts email address', 'You already have an Accounts account', 'You already have an Accounts account']);
      expect(await t.knex('users').whereRaw('lower(email) = lower(?)', [who.email]).count<{ count: string }[]>('* as count')).toEqual([{ count: '1' }]);
      const keys = (await t.knex('rate_limits').select('key')).map((r) => r.key as string);
      expect(keys.filter((k) => k.startsWith('mail:register:to:'))).not.toEqual([]);
      expect(keys.filter((k) => k.includes(who.name))).toEqual([]);

      t.clock.advance(3600_000);
      advanced += 3600_000;
      await t.http().post('/register').send({ ...who, name: unique('later') }).expect(202);
      await jobsDone();
      expect((await subjects()).length).toBe(4);
    } finally {
      t.clock.advance(-advanced);
    }
  });

  it('answers a taken name 409 (no user member), a reserved name and a weak password 400, queueing nothing', async () => {
    const existing = await t.factory.user();
    const jobs = await countRows(t.knex, 'background_jobs');
    const taken = await t.http().post('/register').send({ ...newcomer(), name: existing.user.name });
    expect([taken.status, taken.body.code, taken.body.user]).toEqual([409, 'conflict', undefined]);
    const me = await t.http().post('/register').send({ ...newcomer(), name: 'me' });
    expect([me.status, me.body.code]).toEqual([400, 'validation_failed']);
    const weak = await t.http().post('/register').send({ ...newcomer(), password: 'short' });
    expect([weak.status, weak.body.code]).toEqual([400, 'weak_password']);
    for (const bad of [{}, { ...newcomer(), email: 'not an address' }, { ...newcomer(), extra: 1 }, { name: 'x', email: 'x@example.test' }]) {
      const res = await t.http().post('/register').send(bad);
      expect([res.status, res.body.code]).toEqual([400, 'validation_failed']);
    }
    expect(await countRows(t.knex, 'background_jobs')).toBe(jobs);
  });

  it('answers text that breaks the text rule with the ordinary 202, queueing nothing', async () => {
    const jobs = await countRows(t.knex, 'background_jobs');
    const who = newcomer();
    expect((await t.http().post('/register').send({ ...who, email: `${who.email}\u0000` })).status).toBe(202);
    expect((await t.http().post('/register').send({ ...who, name: `${who.name}\u0000` })).status).toBe(202);
    const lone = await rawRequest(t.app, {
      method: 'POST',
      path: '/register',
      headers: { 'Content-Type': 'application/json' },
      body: `{"name": "${who.name}", "email": "${who.email}", "password": "pass\\udc00word 123"}`,
    });
    expect(lone.status).toBe(202);
    expect(await countRows(t.knex, 'background_jobs')).toBe(jobs);
  });

  it('is throttled per client IP with 429 and Retry-After', async () => {
    const limited = await createTestApp({ env: { ALLOW_REGISTRATION: '1', THROTTLE_IP_PER_MINUTE: '2' } });
    try {
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await limited.http().post('/register').send(newcomer())).status);
      expect(statuses).toEqual([202, 202, 429]);
      const res = await limited.http().post('/register').send(newcomer());
      expect([res.status, res.body.code]).toEqual([429, 'rate_limited']);
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    } finally {
      await limited.close();
    }
  });
});

describe('POST /register/verify', () => {
  it('works once; an unknown token, a used one and one past REGISTRATION_TTL get 400 invalid_token', async () => {
    const u = await registered();
    await t.http().post('/register/verify').send({ token: u.token }).expect(204);
    for (const token of [u.token, 'no-such-token']) {
      const res = await t.http().post('/register/verify').send({ token });
      expect([res.status, res.body.code]).toEqual([400, 'invalid_token']);
    }
    const late = await registered();
    t.clock.advance(DAY + 1000);
    try {
      const res = await t.http().post('/register/verify').send({ token: late.token });
      expect([res.status, res.body.code]).toEqual([400, 'invalid_token']);
    } finally {
      t.clock.advance(-(DAY + 1000));
    }
    expect((await t.knex('users').where({ id: late.id }).first()).email_verified).toBe(false);
  });

  it('answers 400 validation_failed to a missing, mistyped, too long or NUL token, and verifies nothing', async () => {
    const u = await registered();
    for (const body of [{}, { token: 12345 }, { token: 'a'.repeat(513) }, { token: `${u.token}\u0000` }, { token: u.token, extra: 1 }]) {
      const res = await t.http().post('/register/verify').send(body);
      expect([res.status, res.body.code]).toEqual([400, 'validation_failed']);
    }
    expect((await t.knex('users').where({ id: u.id }).first()).email_verified).toBe(false);
    await t.http().post('/register/verify').send({ token: u.token }).expect(204); // the link still works
  });

  it('does not take a password-reset token, nor verify a deactivated account', async () => {
    const u = await registered();
    await t.http().delete(`/user/${u.id}`).set(bearer(admin.jwt)).expect(204);
    expect((await t.http().post('/register/verify').send({ token: u.token })).body.code).toBe('invalid_token');
    const other = await t.factory.user();
    await t.http().post('/password/reset').send({ email: other.email }).expect(202);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(other.email));
    const resetToken = /token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
    expect((await t.http().post('/register/verify').send({ token: resetToken })).body.code).toBe('invalid_token');
    await t.http().post('/password/reset/confirm').send({ token: resetToken, password: 'still usable password' }).expect(204);
  });

  it('is served (and validates) even with registration off', async () => {
    const off = await createTestApp();
    try {
      const res = await off.http().post('/register/verify').send({ token: 'nothing' });
      expect([res.status, res.body.code]).toEqual([400, 'invalid_token']);
      expect((await off.http().post('/register/verify').send({})).status).toBe(400);
    } finally {
      await off.close();
    }
  });
});

describe('registration off (the default)', () => {
  it('answers POST /register 404 Route Not Found, whatever the body, and queues nothing', async () => {
    const off = await createTestApp();
    try {
      for (const body of [newcomer(), {}, { ...newcomer(), email: 'bad\u0000@example.test' }]) {
        const res = await off.http().post('/register').send(body);
        expect([res.status, res.body.code, res.body.error]).toEqual([404, 'not_found', 'Route Not Found']);
      }
      expect(await countRows(off.knex, 'background_jobs')).toBe(0);
      expect(await countRows(off.knex, 'users')).toBe(0);
    } finally {
      await off.close();
    }
  });
});

describe('an address proven otherwise', () => {
  it('a password reset by mailed link verifies a registration (the address owner takes it over)', async () => {
    const u = await registered();
    await t.http().post('/password/reset').send({ email: u.email }).expect(202);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Reset your Accounts password');
    const token = /token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
    await t.http().post('/password/reset/confirm').send({ token, password: 'the owner password' }).expect(204);
    expect((await t.http().post('/login').send({ email: u.email, password: 'the owner password' })).status).toBe(200);
    expect((await t.http().post('/login').send({ email: u.email, password: u.password })).status).toBe(401);
  });

  it('admin-created users count as verified', async () => {
    const who = newcomer();
    await t.http().post('/user?send_mail=0').set(bearer(admin.jwt)).send(who).expect(201);
    expect((await t.knex('users').where({ email: who.email }).first()).email_verified).toBe(true);
    const res = await t.http().post('/login').send({ email: who.email, password: who.password });
    expect([res.status, res.body.password_change_required]).toEqual([200, true]);
  });
});

describe('registrations never verified', () => {
  it('are removed by the service once their link has expired; verified and younger ones stay', async () => {
    const old = await registered();
    const oldVerified = await registered();
    await t.http().post('/register/verify').send({ token: oldVerified.token }).expect(204);
    await t.knex('users').whereIn('id', [old.id, oldVerified.id]).update({ created: new Date(Date.now() - DAY - 60_000) });
    const young = await registered();
    const admins = await t.factory.user({ admin: true });
    await t.container.housekeeping.stop(); // this test runs the pass itself
    try {
      await t.container.housekeeping.runOnce();
    } finally {
      t.container.housekeeping.start();
    }
    expect(await t.knex('users').where({ id: old.id }).first()).toBeUndefined();
    expect(await t.knex('email_links').where({ user_id: old.id }).first()).toBeUndefined();
    expect(await t.knex('users').where({ id: oldVerified.id }).first()).toBeDefined();
    expect(await t.knex('users').where({ id: young.id }).first()).toBeDefined();
    expect(await t.knex('users').where({ id: admins.user.id }).first()).toBeDefined();
    // The address is free again.
    await t.http().post('/register').send({ name: unique('again'), email: old.email, password: PASSWORD }).expect(202);
    await t.mail.waitFor((m) => m.to.includes(old.email), 2);
    expect((await t.knex('users').where({ email: old.email })).map((r) => r.email_verified)).toEqual([false]);
  });
});
