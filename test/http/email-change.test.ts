import { createTestApp, unique, type TestApp, type TestUser } from '../helpers/test-app';

let t: TestApp;
let admin: TestUser & { jwt: string };
beforeAll(async () => {
  t = await createTestApp();
  admin = await t.factory.loggedIn({ admin: true });
});
afterAll(async () => {
  await t.close();
});

const bearer = (jwt: string) => ({ Authorization: `Bearer ${jwt}` });
const tokenIn = (text: string, page: 'confirm-email' | 'revert-email') => new RegExp(`https://accounts\\.example\\.test/${page}\\?token=([A-Za-z0-9_-]{43})\\n`).exec(text)![1];

/** A logged-in user asks to move to a fresh address; returns both links' tokens. */
async function requested(u?: TestUser & { jwt: string }) {
  const who = u ?? (await t.factory.loggedIn());
  const newEmail = `${unique('moved')}@example.test`;
  const res = await t.http().post('/user/me').set(bearer(who.jwt)).send({ email: newEmail });
  expect(res.status).toBe(200);
  const [confirmMail] = await t.mail.waitFor((m) => m.to.includes(newEmail));
  const [notice] = await t.mail.waitFor((m) => m.to.includes(who.email) && m.subject === 'Your Accounts email address is changing' && m.text.includes(newEmail));
  return { ...who, newEmail, res, confirmMail, notice, confirm: tokenIn(confirmMail.text, 'confirm-email'), revert: tokenIn(notice.text, 'revert-email') };
}

async function works(jwt: string): Promise<boolean> {
  return (await t.http().get('/user/me').set(bearer(jwt))).status === 200;
}

describe('POST /user/me {email}', () => {
  it('keeps the address, shows it pending, mails a confirmation link to the new one and a revert link to the old one', async () => {
    const u = await requested();
    expect(u.res.body).toMatchObject({ id: u.user.id, email: u.email, pending_email: u.newEmail });
    expect((await t.knex('users').where({ id: u.user.id }).first()).email).toBe(u.email);
    expect((await t.http().get('/user/me').set(bearer(u.jwt))).body).toMatchObject({ email: u.email, pending_email: u.newEmail });
    expect(u.confirmMail.subject).toBe('Confirm your new Accounts email address');
    expect(u.confirmMail.to).toEqual([u.newEmail]);
    expect(u.notice.to).toEqual([u.email]);
    expect(u.notice.text).not.toContain('confirm-email');
    expect(u.confirmMail.text).not.toContain('revert-email');
    for (const mail of [u.confirmMail, u.notice]) expect(mail.raw).not.toContain(u.password);
    const links = await t.knex('email_links').where({ user_id: u.user.id }).orderBy('purpose');
    expect(links.map((l) => [l.purpose, l.email])).toEqual([
      ['confirm', u.newEmail],
      ['revert', u.email],
    ]);
    const ttl = (l: { created: Date; expires: Date }) => new Date(l.expires).getTime() - new Date(l.created).getTime();
    expect(links.map(ttl)).toEqual([24 * 3600_000, 7 * 24 * 3600_000]);
    expect(links.map((l) => l.token_hash)).not.toContain(u.confirm);
    // No "account updated" mail for a change that has not happened.
    expect(t.mail.to(u.email).filter((m) => m.subject === 'Your Accounts account has been updated')).toHaveLength(0);
  });

  it('sends both mails with send_mail=0 too', async () => {
    const u = await t.factory.loggedIn();
    const newEmail = `${unique('quiet')}@example.test`;
    await t.http().post('/user/me?send_mail=0').set(bearer(u.jwt)).send({ email: newEmail }).expect(200);
    await t.mail.waitFor((m) => m.to.includes(newEmail));
    await t.mail.waitFor((m) => m.to.includes(u.email));
  });

  it('replaces a pending change: the earlier confirmation link dies', async () => {
    const first = await requested();
    const second = await requested(first);
    expect(second.res.body.pending_email).toBe(second.newEmail);
    const res = await t.http().post('/user/me/email/confirm').send({ token: first.confirm });
    expect([res.status, res.body.code]).toEqual([400, 'invalid_token']);
    await t.http().post('/user/me/email/confirm').send({ token: second.confirm }).expect(204);
    expect((await t.knex('users').where({ id: first.user.id }).first()).email).toBe(second.newEmail);
  });

  it('answers 409 for an address an active user has, changing nothing and mailing nothing', async () => {
    const taken = await t.factory.user();
    const u = await t.factory.loggedIn();
    const res = await t.http().post('/user/me').set(bearer(u.jwt)).send({ email: taken.email.toUpperCase(), first_name: 'Nope' });
    expect([res.status, res.body.code, res.body.user]).toEqual([409, 'conflict', undefined]);
    const row = await t.knex('users').where({ id: u.user.id }).first();
    expect([row.first_name, row.pending_email]).toEqual([null, null]);
    expect(await t.knex('email_links').where({ user_id: u.user.id })).toHaveLength(0);
  });
});

describe('POST /user/me/email/confirm', () => {
  it('makes the change (no authentication needed): the new address logs in, the old one no more; works once', async () => {
    const u = await requested();
    await t.http().post('/user/me/email/confirm').send({ token: u.confirm }).expect(204);
    const row = await t.knex('users').where({ id: u.user.id }).first();
    expect([row.email, row.pending_email, row.email_verified]).toEqual([u.newEmail, null, true]);
    expect((await t.http().get('/user/me').set(bearer(u.jwt))).body).toMatchObject({ email: u.newEmail, pending_email: null });
    expect((await t.http().post('/login').send({ email: u.newEmail, password: u.password })).status).toBe(200);
    expect((await t.http().post('/login').send({ email: u.email, password: u.password })).status).toBe(401);
    const again = await t.http().post('/user/me/email/confirm').send({ token: u.confirm });
    expect([again.status, again.body.code]).toEqual([400, 'invalid_token']);
  });

  it('answers 409 when the address was taken meanwhile, and the link still works once it is free', async () => {
    const u = await requested();
    const squatter = await t.factory.user({ email: u.newEmail });
    const res = await t.http().post('/user/me/email/confirm').send({ token: u.confirm });
    expect([res.status, res.body.code, res.body.user]).toEqual([409, 'conflict', undefined]);
    expect((await t.knex('users').where({ id: u.user.id }).first()).email).toBe(u.email);
    await t.http().delete(`/user/${squatter.user.id}`).set(bearer(admin.jwt)).expect(204);
    await t.http().post('/user/me/email/confirm').send({ token: u.confirm }).expect(204);
  });

  it('refuses a link past 24 hours, and pending_email is null once it has expired', async () => {
    const u = await requested();
    t.clock.advance(24 * 3600_000 + 1000);
    try {
      expect((await t.http().post('/user/me/email/confirm').send({ token: u.confirm })).body.code).toBe('invalid_token');
    } finally {
      t.clock.advance(-(24 * 3600_000 + 1000));
    }
    await t.knex('users').where({ id: u.user.id }).update({ pending_email_expires: new Date(Date.now() - 1000) });
    expect((await t.http().get('/user/me').set(bearer(u.jwt))).body.pending_email).toBeNull();
  });

  it('takes only its own kind of link, and changes the user the link is for, not the caller', async () => {
    const u = await requested();
    const other = await t.factory.loggedIn();
    for (const [route, token] of [
      ['/user/me/email/confirm', u.revert],
      ['/user/me/email/revert', u.confirm],
      ['/user/me/email/confirm', 'no-such-token'],
      ['/user/me/email/revert', 'no-such-token'],
    ]) {
      const res = await t.http().post(route).set(bearer(other.jwt)).send({ token });
      expect([route, res.status, res.body.code]).toEqual([route, 400, 'invalid_token']);
    }
    await t.http().post('/user/me/email/confirm').set(bearer(other.jwt)).send({ token: u.confirm }).expect(204);
    expect((await t.knex('users').where({ id: u.user.id }).first()).email).toBe(u.newEmail);
    expect((await t.knex('users').where({ id: other.user.id }).first()).email).toBe(other.email);
  });
});

describe('the link routes, given bad input', () => {
  it('answer 400 validation_failed to a missing, mistyped, too long or NUL token, and change nothing', async () => {
    const u = await requested();
    for (const route of ['/user/me/email/confirm', '/user/me/email/revert']) {
      for (const body of [{}, { token: 12345 }, { token: 'a'.repeat(513) }, { token: `${u.confirm}\u0000` }, { token: u.confirm, extra: 1 }]) {
        const res = await t.http().post(route).send(body);
        expect([route, res.status, res.body.code]).toEqual([route, 400, 'validation_failed']);
      }
    }
    const row = await t.knex('users').where({ id: u.user.id }).first();
    expect([row.email, row.pending_email]).toEqual([u.email, u.newEmail]);
    expect((await t.knex('email_links').where({ user_id: u.user.id }).whereNotNull('used')).length).toBe(0);
    expect(await works(u.jwt)).toBe(true);
  });
});

describe('POST /user/me/email/revert', () => {
  it('puts the old address back, ends every token and reset link, and forces a new password', async () => {
    const u = await requested();
    const api = await t.factory.apiToken(u.user);
    await t.http().post('/user/me/email/confirm').send({ token: u.confirm }).expect(204);
    // What a thief holding the session would do next: a reset link to the new address.
    await t.http().post('/password/reset').send({ email: u.newEmail }).expect(202);
    const [reset] = await t.mail.waitFor((m) => m.to.includes(u.newEmail) && m.subject === 'Reset your Accounts password');
    const resetToken = /token=([A-Za-z0-9_-]+)/.exec(reset.text)![1];

    await t.http().post('/user/me/email/revert').send({ token: u.revert }).expect(204);
    const row = await t.knex('users').where({ id: u.user.id }).first();
    expect([row.email, row.pending_email, row.force_password_change]).toEqual([u.email, null, true]);
    expect(await works(u.jwt)).toBe(false);
    expect(await works(api)).toBe(false);
    expect(await t.knex('user_tokens').where({ user_id: u.user.id })).toHaveLength(0);
    expect((await t.http().post('/password/reset/confirm').send({ token: resetToken, password: 'thief password 1' })).body.code).toBe('invalid_token');
    const login = await t.http().post('/login').send({ email: u.email, password: u.password });
    expect([login.status, login.body.password_change_required]).toEqual([200, true]);
    const again = await t.http().post('/user/me/email/revert').send({ token: u.revert });
    expect([again.status, again.body.code]).toEqual([400, 'invalid_token']);
  });

  it('cancels a change still pending: its confirmation link dies', async () => {
    const u = await requested();
    await t.http().post('/user/me/email/revert').send({ token: u.revert }).expect(204);
    const row = await t.knex('users').where({ id: u.user.id }).first();
    expect([row.email, row.pending_email]).toEqual([u.email, null]);
    expect((await t.http().post('/user/me/email/confirm').send({ token: u.confirm })).body.code).toBe('invalid_token');
    expect(await works(u.jwt)).toBe(false);
  });

  it('works for 7 days, not longer', async () => {
    const u = await requested();
    t.clock.advance(7 * 24 * 3600_000 + 1000);
    try {
      expect((await t.http().post('/user/me/email/revert').send({ token: u.revert })).body.code).toBe('invalid_token');
    } finally {
      t.clock.advance(-(7 * 24 * 3600_000 + 1000));
    }
    expect(await works(u.jwt)).toBe(true);
  });
});

describe('an admin changing an address', () => {
  it("changes someone else's at once, mails both addresses, and ends a pending change", async () => {
    const u = await requested();
    const adminSet = `${unique('byadmin')}@example.test`;
    const res = await t.http().post(`/user/${u.user.id}`).set(bearer(admin.jwt)).send({ email: adminSet });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ email: adminSet, pending_email: null });
    const [mail] = await t.mail.waitFor((m) => m.to.includes(adminSet) && m.subject === 'Your Accounts account has been updated');
    expect(mail.to.sort()).toEqual([adminSet, u.email].sort());
    expect(mail.text).toContain(`email: ${u.email} -> ${adminSet}`);
    expect((await t.http().post('/user/me/email/confirm').send({ token: u.confirm })).body.code).toBe('invalid_token');
  });

  it('changes their own only once confirmed, through REST and JSON-RPC alike', async () => {
    const self = await t.factory.loggedIn({ admin: true });
    const viaRest = `${unique('adminself')}@example.test`;
    const res = await t.http().post(`/user/${self.user.id}`).set(bearer(self.jwt)).send({ email: viaRest });
    expect(res.body).toMatchObject({ email: self.email, pending_email: viaRest });
    await t.mail.waitFor((m) => m.to.includes(viaRest) && m.subject === 'Confirm your new Accounts email address');

    const viaRpc = `${unique('adminrpc')}@example.test`;
    const apiKey = await t.factory.apiToken(self.user);
    const rpc = await t.http().post('/_admin/api').send({ id: 1, auth_token: apiKey, method: 'update_user', args: { userid: self.user.id, email: viaRpc } });
    expect(rpc.body.error).toBeNull();
    expect((await t.knex('users').where({ id: self.user.id }).first())).toMatchObject({ email: self.email, pending_email: viaRpc });
    await t.mail.waitFor((m) => m.to.includes(viaRpc) && m.subject === 'Confirm your new Accounts email address');
  });
});
