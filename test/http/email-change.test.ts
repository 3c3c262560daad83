import { bearer, captureQueries, createTestApp, queuedMail, testAppWithAdmin, unique, type TestUser } from '../helpers/test-app';

const { t, admin } = testAppWithAdmin();

const tokenIn = (text: string, page: 'confirm-email' | 'revert-email') => new RegExp(`https://accounts\\.example\\.test/${page}\\?token=([A-Za-z0-9_-]{43})\\n`).exec(text)![1];

/** A logged-in user asks to move to a fresh address; returns both links' tokens. */
async function requested(u?: TestUser & { jwt: string }) {
  const who = u ?? (await t.factory.loggedIn());
  const newEmail = `${unique('moved')}@example.test`;
  const res = await t.http().post('/user/me').set(bearer(who.jwt)).send({ email: newEmail, current_password: who.password });
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
    expect((await queuedMail(t.knex, u.email)).filter((m) => m.subject === 'Your Accounts account has been updated')).toEqual([]);
  });

  it('sends both mails with send_mail=0 too', async () => {
    const u = await t.factory.loggedIn();
    const newEmail = `${unique('quiet')}@example.test`;
    await t.http().post('/user/me?send_mail=0').set(bearer(u.jwt)).send({ email: newEmail, current_password: u.password }).expect(200);
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

});

describe('POST /user/me {email}: the current password', () => {
  it('is needed with a login token: missing or wrong is 403 wrong_password, and nothing changes (no pending address, link, mail or audit entry)', async () => {
    const u = await t.factory.loggedIn();
    const newEmail = `${unique('stolen')}@example.test`;
    for (const body of [{ email: newEmail }, { email: newEmail, current_password: 'not the password' }, { email: newEmail, current_password: '' }, { email: newEmail, first_name: 'Thief' }]) {
      const res = await t.http().post('/user/me').set(bearer(u.jwt)).send(body);
      expect([JSON.stringify(body), res.status, res.body.code]).toEqual([JSON.stringify(body), 403, 'wrong_password']);
    }
    const row = await t.knex('users').where({ id: u.user.id }).first();
    expect([row.email, row.pending_email, row.first_name]).toEqual([u.email, null, null]);
    expect(await t.knex('email_links').where({ user_id: u.user.id })).toHaveLength(0);
    expect(await t.knex('audit_log').where({ target_id: u.user.id }).whereIn('action', ['email.change_requested', 'user.updated'])).toHaveLength(0);
    expect(await queuedMail(t.knex, newEmail)).toEqual([]);
    expect(await queuedMail(t.knex, u.email)).toEqual([]);
    expect(await works(u.jwt)).toBe(true);
  });

  it('is not needed from an API token, nor for other fields, nor from a user who has no usable password', async () => {
    const u = await t.factory.user();
    const api = await t.factory.apiToken(u.user);
    const byApi = `${unique('byapi')}@example.test`;
    const res = await t.http().post('/user/me').set(bearer(api)).send({ email: byApi });
    expect([res.status, res.body.pending_email]).toEqual([200, byApi]);
    await t.mail.waitFor((m) => m.to.includes(byApi) && m.subject === 'Confirm your new Accounts email address');

    const v = await t.factory.loggedIn();
    await t.http().post('/user/me').set(bearer(v.jwt)).send({ first_name: 'Ada' }).expect(200);
    await t.knex('users').where({ id: v.user.id }).update({ password_hash: null }); // say, an admin reset that kept the sessions
    const noPassword = `${unique('nopw')}@example.test`;
    expect((await t.http().post('/user/me').set(bearer(v.jwt)).send({ email: noPassword })).body.pending_email).toBe(noPassword);
  });

  it('is needed from an admin naming themself through POST /user/:user, not for someone else', async () => {
    const self = await t.factory.loggedIn({ admin: true });
    const other = await t.factory.user();
    const mine = `${unique('adminself')}@example.test`;
    const refused = await t.http().post(`/user/${self.user.id}`).set(bearer(self.jwt)).send({ email: mine });
    expect([refused.status, refused.body.code]).toEqual([403, 'wrong_password']);
    expect((await t.knex('users').where({ id: self.user.id }).first()).pending_email).toBeNull();
    const theirs = `${unique('theirs')}@example.test`;
    const res = await t.http().post(`/user/${other.user.id}`).set(bearer(self.jwt)).send({ email: theirs });
    expect([res.status, res.body.email]).toEqual([200, theirs]);
  });

  it('counts on the login throttle: a stolen session cannot guess it; after the account failures run out even the right one is 429 until the delay, then it works', async () => {
    const own = await createTestApp({ env: { THROTTLE_ACCOUNT_FAILURES: '3' } });
    try {
      const u = await own.factory.loggedIn();
      const newEmail = `${unique('guessed')}@example.test`;
      for (let i = 0; i < 3; i++) {
        const res = await own.http().post('/user/me').set(bearer(u.jwt)).send({ email: newEmail, current_password: `guess ${i}` });
        expect([res.status, res.body.code]).toEqual([403, 'wrong_password']);
      }
      const refused = await own.http().post('/user/me').set(bearer(u.jwt)).send({ email: newEmail, current_password: u.password });
      expect([refused.status, refused.body.code, refused.headers['retry-after']]).toEqual([429, 'rate_limited', '1']);
      expect((await own.knex('users').where({ id: u.user.id }).first()).pending_email).toBeNull();
      expect(await own.knex('email_links').where({ user_id: u.user.id })).toHaveLength(0);
      // The same count as /login's: the right password is refused there too until the delay.
      expect((await own.http().post('/login').send({ email: u.email, password: u.password })).status).toBe(429);
      own.clock.advance(1_000);
      const res = await own.http().post('/user/me').set(bearer(u.jwt)).send({ email: newEmail, current_password: u.password });
      expect([res.status, res.body.pending_email]).toEqual([200, newEmail]);
      expect(await own.knex('login_throttle').where({ key: `user:${u.user.id}` })).toHaveLength(0);
    } finally {
      await own.close();
    }
  });

  it('alone is not a change: 400', async () => {
    const u = await t.factory.loggedIn();
    const res = await t.http().post('/user/me').set(bearer(u.jwt)).send({ current_password: u.password });
    expect([res.status, res.body.code]).toEqual([400, 'validation_failed']);
  });
});

describe('POST /user/me {email} for an address another account has', () => {
  it('is answered as for a free one, after the same statements; the owner gets a notice and no link, the old address its notice as ever', async () => {
    const holder = await t.factory.user();
    const a = await t.factory.loggedIn();
    const b = await t.factory.loggedIn();
    const free = `${unique('free')}@example.test`;
    const taken = holder.email.toUpperCase();
    let freeRes: any;
    let takenRes: any;
    const freeSql = await captureQueries(t.knex, async () => {
      freeRes = await t.http().post('/user/me').set(bearer(a.jwt)).send({ email: free, current_password: a.password });
    });
    const takenSql = await captureQueries(t.knex, async () => {
      takenRes = await t.http().post('/user/me').set(bearer(b.jwt)).send({ email: taken, current_password: b.password });
    });
    expect(takenSql).toEqual(freeSql);
    expect([freeRes.status, takenRes.status]).toEqual([200, 200]);
    expect([freeRes.body.pending_email, takenRes.body.pending_email]).toEqual([free, taken]);
    // Alike but for what names the two callers and their addresses.
    const personal = { id: 0, name: 0, email: 0, created: 0, last_login: 0, last_seen: 0, pending_email: 0 };
    expect({ ...takenRes.body, ...personal }).toEqual({ ...freeRes.body, ...personal });

    const [notice] = await t.mail.waitFor((m) => m.to.includes(holder.email));
    expect(notice.subject).toBe('Someone tried to move an Accounts account to your address');
    expect(notice.text).not.toMatch(/token=/);
    expect(notice.text).not.toContain(b.email);
    await t.mail.waitFor((m) => m.to.includes(b.email) && m.subject === 'Your Accounts email address is changing');
    await t.mail.waitFor((m) => m.to.includes(free) && m.subject === 'Confirm your new Accounts email address');
    expect((await queuedMail(t.knex, holder.email)).map((m) => m.subject)).toEqual(['Someone tried to move an Accounts account to your address']);
    expect(t.mail.to(holder.email).some((m) => m.text.includes('confirm-email'))).toBe(false);
    expect((await t.knex('users').where({ id: b.user.id }).first()).email).toBe(b.email);
  });
});

describe('POST /user/me {email}: mail limits', () => {
  it('mails at most 3 requests an hour from one account: beyond, the same answer, the change recorded, nothing mailed; an hour later it mails again', async () => {
    const u = await t.factory.loggedIn();
    const asked: string[] = [];
    for (let i = 0; i < 5; i++) {
      const to = `${unique('bomb')}@example.test`;
      asked.push(to);
      const res = await t.http().post('/user/me').set(bearer(u.jwt)).send({ email: to, current_password: u.password });
      expect([res.status, res.body.pending_email]).toEqual([200, to]);
    }
    expect(await Promise.all(asked.map(async (a) => (await queuedMail(t.knex, a)).length))).toEqual([1, 1, 1, 0, 0]);
    expect((await queuedMail(t.knex, u.email)).length).toBe(3);
    const requests = await t.knex('audit_log').where({ target_id: u.user.id, action: 'email.change_requested' }).orderBy('seq');
    expect(requests.map((r) => r.summary.mailed)).toEqual([true, true, true, false, false]);

    t.clock.advance(3600_000 + 1000);
    try {
      const later = `${unique('later')}@example.test`;
      await t.http().post('/user/me').set(bearer(u.jwt)).send({ email: later, current_password: u.password }).expect(200);
      await t.mail.waitFor((m) => m.to.includes(later) && m.subject === 'Confirm your new Accounts email address');
    } finally {
      t.clock.advance(-(3600_000 + 1000));
    }
  });

  it('mails one address at most 3 times an hour, whoever asks and whether it is free or taken; the counters name no address', async () => {
    const target = `${unique('target')}@example.test`;
    for (let i = 0; i < 4; i++) {
      const u = await t.factory.loggedIn();
      await t.http().post('/user/me').set(bearer(u.jwt)).send({ email: target, current_password: u.password }).expect(200);
    }
    const holder = await t.factory.user();
    for (let i = 0; i < 4; i++) {
      const u = await t.factory.loggedIn();
      await t.http().post('/user/me').set(bearer(u.jwt)).send({ email: holder.email, current_password: u.password }).expect(200);
    }
    expect((await queuedMail(t.knex, target)).map((m) => m.subject)).toEqual(Array(3).fill('Confirm your new Accounts email address'));
    expect((await queuedMail(t.knex, holder.email)).map((m) => m.subject)).toEqual(Array(3).fill('Someone tried to move an Accounts account to your address'));
    const keys = (await t.knex('rate_limits').select('key')).map((r) => r.key as string);
    expect(keys.some((k) => k.startsWith('mail:email_change:to:'))).toBe(true);
    expect(keys.filter((k) => k.toLowerCase().includes(target.split('@')[0]) || k.toLowerCase().includes(holder.email.split('@')[0]))).toEqual([]);
  });
});

describe('POST /user/me {email}, concurrently', () => {
  it('answers every request, and leaves one live confirmation link: the pending address\'s', async () => {
    const u = await t.factory.loggedIn();
    const asked = Array.from({ length: 8 }, () => `${unique('race')}@example.test`);
    const answers = await Promise.all(asked.map((email) => t.http().post('/user/me').set(bearer(u.jwt)).send({ email, current_password: u.password })));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    const row = await t.knex('users').where({ id: u.user.id }).first();
    const live = await t.knex('email_links').where({ user_id: u.user.id, purpose: 'confirm' }).whereNull('used');
    expect(live.map((l) => l.email)).toEqual([row.pending_email]);
    expect((await queuedMail(t.knex, u.email)).length).toBe(3); // the account's limit held across them
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
  it('puts the old address back, makes the password unusable, ends every token and link, and mails a reset link to that address', async () => {
    const u = await requested();
    const api = await t.factory.apiToken(u.user);
    await t.http().post('/user/me/email/confirm').send({ token: u.confirm }).expect(204);
    // What a thief holding the session would do next: a reset link to the new address.
    await t.http().post('/password/reset').send({ email: u.newEmail }).expect(202);
    const [reset] = await t.mail.waitFor((m) => m.to.includes(u.newEmail) && m.subject === 'Reset your Accounts password');
    const resetToken = /token=([A-Za-z0-9_-]+)/.exec(reset.text)![1];

    await t.http().post('/user/me/email/revert').send({ token: u.revert }).expect(204);
    const row = await t.knex('users').where({ id: u.user.id }).first();
    expect([row.email, row.pending_email, row.force_password_change, row.password_hash]).toEqual([u.email, null, true, null]);
    expect(await works(u.jwt)).toBe(false);
    expect(await works(api)).toBe(false);
    expect(await t.knex('user_tokens').where({ user_id: u.user.id })).toHaveLength(0);
    expect((await t.http().post('/password/reset/confirm').send({ token: resetToken, password: 'thief password 1' })).body.code).toBe('invalid_token');
    expect((await t.http().post('/login').send({ email: u.email, password: u.password })).status).toBe(401);
    const again = await t.http().post('/user/me/email/revert').send({ token: u.revert });
    expect([again.status, again.body.code]).toEqual([400, 'invalid_token']);

    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Reset your Accounts password');
    expect(mail.to).toEqual([u.email]);
    const link = /https:\/\/accounts\.example\.test\/reset-password\?token=([A-Za-z0-9_-]{43})\n/.exec(mail.text)![1];
    expect(await t.knex('password_tokens').where({ user_id: u.user.id, used: null })).toHaveLength(1);
    await t.http().post('/password/reset/confirm').send({ token: link, password: 'owner password 1' }).expect(204);
    const login = await t.http().post('/login').send({ email: u.email, password: 'owner password 1' });
    expect([login.status, login.body.password_change_required]).toEqual([200, undefined]);
    const entry = await t.knex('audit_log').where({ target_id: u.user.id, action: 'email.change_reverted' }).first();
    expect(entry.summary).toMatchObject({ from: u.newEmail, to: u.email, tokens_ended: 'all', password_unusable: true, reset_link_mailed: true });
  });

  it('locks out whoever stole a session and moved the address: their password and tokens stop working, the owner gets in by the mailed link', async () => {
    const victim = await t.factory.loggedIn({ password: 'victim password 1' });
    const stolen = victim.jwt; // the thief holds the victim's session, not the password
    const thiefBox = `${unique('thief')}@example.test`;

    // A login token alone cannot move the address; an API token minted with it can (API tokens are exempt).
    expect((await t.http().post('/user/me').set(bearer(stolen)).send({ email: thiefBox })).body.code).toBe('wrong_password');
    const minted = await t.http().post('/user/me/token').set(bearer(stolen)).send({ name: 'thief' }).expect(201);
    const thiefApi = minted.body.token as string;
    await t.http().post('/user/me').set(bearer(thiefApi)).send({ email: thiefBox }).expect(200);
    const [confirmMail] = await t.mail.waitFor((m) => m.to.includes(thiefBox));
    await t.http().post('/user/me/email/confirm').send({ token: tokenIn(confirmMail.text, 'confirm-email') }).expect(204);
    await t.http().post('/password/reset').send({ email: thiefBox }).expect(202);
    const [resetMail] = await t.mail.waitFor((m) => m.to.includes(thiefBox) && m.subject === 'Reset your Accounts password');
    await t.http().post('/password/reset/confirm').send({ token: /token=([A-Za-z0-9_-]+)/.exec(resetMail.text)![1], password: 'thief password 1' }).expect(204);
    const thiefLogin = await t.http().post('/login').send({ email: thiefBox, password: 'thief password 1' });
    expect([thiefLogin.status, thiefLogin.body.password_change_required]).toEqual([200, undefined]);
    const thiefSession = thiefLogin.body.jwt_token as string;
    const thiefApi2 = (await t.http().post('/user/me/token').set(bearer(thiefSession)).send({ name: 'thief 2' }).expect(201)).body.token as string;

    // The victim follows the revert link mailed to their address.
    const [notice] = await t.mail.waitFor((m) => m.to.includes(victim.email) && m.subject === 'Your Accounts email address is changing');
    await t.http().post('/user/me/email/revert').send({ token: tokenIn(notice.text, 'revert-email') }).expect(204);

    for (const password of ['thief password 1', 'victim password 1']) {
      for (const email of [victim.email, thiefBox]) {
        expect([email, password, (await t.http().post('/login').send({ email, password })).status]).toEqual([email, password, 401]);
      }
    }
    for (const jwt of [stolen, thiefApi, thiefSession, thiefApi2]) expect(await works(jwt)).toBe(false);
    // A forced-change login is out of reach too: there is no password left to log in with.
    expect((await t.knex('users').where({ id: victim.user.id }).first()).password_hash).toBeNull();

    const [ownerReset] = await t.mail.waitFor((m) => m.to.includes(victim.email) && m.subject === 'Reset your Accounts password');
    expect(t.mail.to(thiefBox).filter((m) => m.subject === 'Reset your Accounts password')).toHaveLength(1); // only the thief's own, now dead
    await t.http()
      .post('/password/reset/confirm')
      .send({ token: /token=([A-Za-z0-9_-]+)/.exec(ownerReset.text)![1], password: 'victim password 2' })
      .expect(204);
    const back = await t.http().post('/login').send({ email: victim.email, password: 'victim password 2' });
    expect([back.status, back.body.password_change_required]).toEqual([200, undefined]);
    expect((await t.http().get('/user/me').set(bearer(back.body.jwt_token))).body).toMatchObject({ id: victim.user.id, email: victim.email, pending_email: null });
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
    const res = await t.http().post(`/user/${self.user.id}`).set(bearer(self.jwt)).send({ email: viaRest, current_password: self.password });
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
