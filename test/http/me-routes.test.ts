import { bearer, captureQueries, createTestApp, queuedMail, unique, type TestApp } from '../helpers/test-app';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});


describe('GET /user/me', () => {
  it('answers the caller as UserDetailed', async () => {
    const u = await t.factory.loggedIn();
    const res = await t.http().get('/user/me').set(bearer(u.jwt));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      id: u.user.id,
      name: u.user.name,
      email: u.email,
      pending_email: null,
      first_name: null,
      last_name: null,
      created: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      last_login: expect.stringMatching(/Z$/),
      last_seen: expect.stringMatching(/Z$/),
      force_password_change: false,
      is_admin: false,
      mfa_enabled: false,
      groups: [],
    });
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('costs one query for a user in no group (the token check), and writes nothing within the minute', async () => {
    const u = await t.factory.loggedIn();
    await t.http().get('/user/me').set(bearer(u.jwt)).expect(200); // the once-a-minute last_used write
    const statements = await captureQueries(t.knex, () => t.http().get('/user/me').set(bearer(u.jwt)).expect(200));
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/^select [^]* from user_tokens t join users /);
  });

  it('needs a token', async () => {
    const res = await t.http().get('/user/me');
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('unauthenticated');
  });
});

describe('POST /user/me', () => {
  it('changes the given fields at once (the email only once confirmed) and mails "field: old -> new"', async () => {
    const u = await t.factory.loggedIn();
    const newName = unique('renamed');
    const newEmail = `${newName}@example.test`;
    const res = await t.http().post('/user/me').set(bearer(u.jwt)).send({ name: newName, email: newEmail, first_name: 'Ada', current_password: u.password });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: u.user.id, name: newName, email: u.email, pending_email: newEmail, first_name: 'Ada', last_name: null, groups: [] });
    const row = await t.knex('users').where({ id: u.user.id }).first();
    expect([row.name, row.email, row.pending_email, row.first_name]).toEqual([newName, u.email, newEmail, 'Ada']);
    const [mail] = await t.mail.waitFor((m) => m.subject === 'Your Accounts account has been updated' && m.to.includes(u.email));
    expect(mail.to).toEqual([u.email]);
    expect(mail.text).toContain(`name: ${u.user.name} -> ${newName}`);
    expect(mail.text).not.toContain('email:');
    expect(mail.text).toContain('first_name: (none) -> Ada');
    expect(mail.text).not.toContain(u.password);
  });

  it('mails only the current address when the email did not change', async () => {
    const u = await t.factory.loggedIn();
    await t.http().post('/user/me').set(bearer(u.jwt)).send({ last_name: 'Lovelace' }).expect(200);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.text.includes('last_name'));
    expect(mail.to).toEqual([u.email]);
  });

  it('answers 200 with no mail when nothing changes', async () => {
    const u = await t.factory.loggedIn();
    const res = await t.http().post('/user/me').set(bearer(u.jwt)).send({ name: u.user.name, email: u.email, is_admin: false });
    expect(res.status).toBe(200);
    expect(res.body.name).toBe(u.user.name);
    expect(await queuedMail(t.knex, u.email)).toEqual([]);
  });

  it('sends no mail with send_mail=0', async () => {
    const u = await t.factory.loggedIn();
    await t.http().post('/user/me?send_mail=0').set(bearer(u.jwt)).send({ first_name: 'Quiet' }).expect(200);
    expect(await queuedMail(t.knex, u.email)).toEqual([]);
  });

  it('refuses a non-admin changing is_admin with 403, changing nothing', async () => {
    const u = await t.factory.loggedIn();
    const res = await t.http().post('/user/me').set(bearer(u.jwt)).send({ is_admin: true, first_name: 'Sneaky' });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('forbidden');
    const row = await t.knex('users').where({ id: u.user.id }).first();
    expect([row.is_admin, row.first_name]).toEqual([false, null]);
  });

  it('answers 409 without a user member to a non-admin taking a used name; a used email (any case) is not told apart', async () => {
    const taken = await t.factory.user();
    const u = await t.factory.loggedIn();
    const res = await t.http().post('/user/me').set(bearer(u.jwt)).send({ name: taken.user.name });
    expect([res.status, res.body.code, res.body.user]).toEqual([409, 'conflict', undefined]);
    expect((await t.knex('users').where({ id: u.user.id }).first()).name).toBe(u.user.name);
    // The address: a pending change like any other (its owner is told, no link goes to it; see email-change.test.ts).
    const email = await t.http().post('/user/me').set(bearer(u.jwt)).send({ email: taken.email.toUpperCase(), current_password: u.password });
    expect([email.status, email.body.email, email.body.pending_email]).toEqual([200, u.email, taken.email.toUpperCase()]);
  });

  it('treats names case-sensitively', async () => {
    const taken = await t.factory.user({ name: unique('Case') });
    const u = await t.factory.loggedIn();
    const res = await t.http().post('/user/me').set(bearer(u.jwt)).send({ name: taken.user.name.toLowerCase() });
    expect(res.status).toBe(200);
  });

  it('answers 409 with the user member to an admin', async () => {
    const taken = await t.factory.user();
    const a = await t.factory.loggedIn({ admin: true });
    const res = await t.http().post('/user/me').set(bearer(a.jwt)).send({ name: taken.user.name });
    expect(res.status).toBe(409);
    expect(res.body.user).toEqual({ id: taken.user.id, email: taken.email, name: taken.user.name, created: expect.any(String), deactivated: null });
  });

  it('lets a name or email of a deactivated user be reused', async () => {
    const gone = await t.factory.user();
    await t.knex('users').where({ id: gone.user.id }).update({ deactivated: new Date() });
    const u = await t.factory.loggedIn();
    const res = await t.http().post('/user/me').set(bearer(u.jwt)).send({ name: gone.user.name, email: gone.email, current_password: u.password });
    expect(res.status).toBe(200);
  });

  it('reserves the name me', async () => {
    const u = await t.factory.loggedIn();
    const res = await t.http().post('/user/me').set(bearer(u.jwt)).send({ name: 'me' });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
  });

  it('refuses an empty body and null for required fields', async () => {
    const u = await t.factory.loggedIn();
    expect((await t.http().post('/user/me').set(bearer(u.jwt)).send({})).status).toBe(400);
    expect((await t.http().post('/user/me').set(bearer(u.jwt)).send({ name: null })).status).toBe(400);
    expect((await t.http().post('/user/me').set(bearer(u.jwt)).send({ first_name: null })).status).toBe(200);
  });

  it('lets an admin drop their own is_admin unless they are the last active admin', async () => {
    const lonely = await createTestApp();
    try {
      const a = await lonely.factory.loggedIn({ admin: true });
      const res = await lonely.http().post('/user/me').set(bearer(a.jwt)).send({ is_admin: false });
      expect(res.status).toBe(409);
      expect(res.body.user).toMatchObject({ id: a.user.id });
      expect((await lonely.knex('users').where({ id: a.user.id }).first()).is_admin).toBe(true);
      await lonely.factory.user({ admin: true });
      const ok = await lonely.http().post('/user/me').set(bearer(a.jwt)).send({ is_admin: false });
      expect(ok.status).toBe(200);
      expect(ok.body.is_admin).toBe(false);
    } finally {
      await lonely.close();
    }
  });
});
