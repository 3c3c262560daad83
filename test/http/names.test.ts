import { bearer, countRows, jobsDone, testAppWithAdmin, unique } from '../helpers/test-app';

// Names are handles, not messages (issue 18): every path that sets a user or group name holds it
// to one rule (visible characters, stored in NFKC form) and refuses a name that looks like one an
// active user (or a group) has; mails name their recipient only by a name the user or an admin
// set, and never in a mail to an address not yet proven.

const { t, admin } = testAppWithAdmin({ env: { ALLOW_REGISTRATION: '1' } });
let adminApiToken: string;
beforeAll(async () => {
  adminApiToken = await t.factory.apiToken(admin.user);
});

const PASSWORD = 'names are handles 1';

/** A fresh name starting with `a` (its lookalikes below replace or follow that letter). */
const handle = () => unique('admin');
/** Names that break the rule though they look like `name`: refused with 400. */
const invisible = (name: string) => [`${name}\u200b`, `${name.slice(0, 2)}\u00ad${name.slice(2)}`, `\u2067${name}`, `${name}\ufe0f`];
/** Names that keep the rule and look like `name` (Cyrillic а; fullwidth, which NFKC makes `name`): 409. */
const confusable = (name: string) => [`\u0430${name.slice(1)}`, fullwidth(name)];
const fullwidth = (s: string) => [...s].map((c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0)).join('');

async function expectNameRefused(res: { status: number; body: { code?: string; details?: { path: string }[] } }): Promise<void> {
  expect([res.status, res.body.code]).toEqual([400, 'validation_failed']);
  expect(res.body.details?.map((d) => d.path)).toEqual(['/body/name']);
}

async function rpc(method: string, args: Record<string, unknown>): Promise<{ result: unknown; error: string | null }> {
  const res = await t.http().post('/_admin/api').send({ id: 1, auth_token: adminApiToken, method, args });
  expect(res.status).toBe(200);
  return res.body;
}

describe('POST /user (admin)', () => {
  it('refuses invisible and format characters (400), and a name confusable with an active user’s (409, naming the holder); creates nothing', async () => {
    const holder = await t.factory.user({ name: handle() });
    const users = await countRows(t.knex, 'users');
    for (const name of invisible(holder.user.name)) {
      await expectNameRefused(await t.http().post('/user').set(bearer(admin.jwt)).send({ name, email: `${unique()}@example.test` }));
    }
    for (const name of confusable(holder.user.name)) {
      const res = await t.http().post('/user').set(bearer(admin.jwt)).send({ name, email: `${unique()}@example.test` });
      expect([res.status, res.body.code, res.body.user?.id]).toEqual([409, 'conflict', holder.user.id]);
    }
    expect(await countRows(t.knex, 'users')).toBe(users);
  });

  it('stores the NFKC form of a new name and answers it', async () => {
    const name = handle();
    const res = await t.http().post('/user').set(bearer(admin.jwt)).send({ name: fullwidth(name), email: `${unique()}@example.test` });
    expect([res.status, res.body.name]).toEqual([201, name]);
    expect((await t.knex('users').where({ id: res.body.id }).first()).name).toBe(name);
  });

  it('makes one user of concurrent creations with confusable names: one 201, the others 409, no 5xx', async () => {
    const name = handle();
    const names = [name, `\u0430${name.slice(1)}`, fullwidth(name), `${name.slice(0, 1)}${name.slice(1).replace('m', 'rn')}`, `\u{1d41a}${name.slice(1)}`];
    const answers = await Promise.all(names.map((n) => t.http().post('/user').set(bearer(admin.jwt)).send({ name: n, email: `${unique()}@example.test` })));
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409, 409, 409, 409]);
  });
});

describe('POST /user/me and POST /user/:user', () => {
  it('refuses a user renaming themself to an invisible variant (400) or a lookalike (409, no user member) of an active user’s name', async () => {
    const holder = await t.factory.user({ name: handle() });
    const me = await t.factory.loggedIn();
    for (const name of invisible(holder.user.name)) await expectNameRefused(await t.http().post('/user/me').set(bearer(me.jwt)).send({ name }));
    for (const name of confusable(holder.user.name)) {
      const res = await t.http().post('/user/me').set(bearer(me.jwt)).send({ name });
      expect([res.status, res.body.code, res.body.user]).toEqual([409, 'conflict', undefined]);
    }
    expect((await t.knex('users').where({ id: me.user.id }).first()).name).toBe(me.user.name);
  });

  it('refuses an admin renaming someone to a lookalike (409 naming the holder)', async () => {
    const holder = await t.factory.user({ name: handle() });
    const other = await t.factory.user();
    for (const name of confusable(holder.user.name)) {
      const res = await t.http().post(`/user/${other.user.id}`).set(bearer(admin.jwt)).send({ name });
      expect([res.status, res.body.user?.id]).toEqual([409, holder.user.id]);
    }
    for (const name of invisible(holder.user.name)) await expectNameRefused(await t.http().post(`/user/${other.user.id}`).set(bearer(admin.jwt)).send({ name }));
    expect((await t.knex('users').where({ id: other.user.id }).first()).name).toBe(other.user.name);
  });

  it('counts a name that differs only in its form as no change: 200, nothing written, no mail', async () => {
    const me = await t.factory.loggedIn({ name: handle() });
    const outbox = await countRows(t.knex, 'mail_outbox');
    const res = await t.http().post('/user/me').set(bearer(me.jwt)).send({ name: fullwidth(me.user.name) });
    expect([res.status, res.body.name]).toEqual([200, me.user.name]);
    expect(await countRows(t.knex, 'mail_outbox')).toBe(outbox);
  });

  it('refuses to reactivate a user whose name an active user now has a lookalike of (409)', async () => {
    const old = await t.factory.user({ name: handle() });
    await t.http().delete(`/user/${old.user.id}`).set(bearer(admin.jwt)).expect(204);
    const lookalike = await t.http().post('/user').set(bearer(admin.jwt)).send({ name: `\u0430${old.user.name.slice(1)}`, email: `${unique()}@example.test` });
    expect(lookalike.status).toBe(201);
    const res = await t.http().post(`/user/${old.user.id}/reactivate`).set(bearer(admin.jwt));
    expect([res.status, res.body.code, res.body.user?.id]).toEqual([409, 'conflict', lookalike.body.id]);
    expect((await t.knex('users').where({ id: old.user.id }).first()).deactivated).not.toBeNull();
  });
});

describe('POST /register', () => {
  it('answers an invisible variant 400 and a lookalike of an active user’s name 409 (no user member), queueing nothing', async () => {
    const holder = await t.factory.user({ name: handle() });
    const jobs = await countRows(t.knex, 'background_jobs');
    for (const name of invisible(holder.user.name)) {
      await expectNameRefused(await t.http().post('/register').send({ name, email: `${unique()}@example.test`, password: PASSWORD }));
    }
    for (const name of confusable(holder.user.name)) {
      const res = await t.http().post('/register').send({ name, email: `${unique()}@example.test`, password: PASSWORD });
      expect([res.status, res.body.code, res.body.user]).toEqual([409, 'conflict', undefined]);
    }
    expect(await countRows(t.knex, 'background_jobs')).toBe(jobs);
  });

  it('makes one account of two concurrent registrations with confusable names', async () => {
    const name = handle();
    const who = [name, `\u0430${name.slice(1)}`].map((n) => ({ name: n, email: `${unique('reg')}@example.test`, password: PASSWORD }));
    const answers = await Promise.all(who.map((w) => t.http().post('/register').send(w)));
    for (const a of answers) expect([202, 409]).toContain(a.status);
    await jobsDone(t.knex);
    const made = await t.knex('users').whereIn('email', who.map((w) => w.email));
    expect(made).toHaveLength(1);
  });
});

describe('JSON-RPC create_user and update_user', () => {
  it('refuses invisible variants and lookalikes in RhodeCode’s words, and changes nothing', async () => {
    const holder = await t.factory.user({ name: handle() });
    const other = await t.factory.user();
    const users = await countRows(t.knex, 'users');
    for (const username of invisible(holder.user.name)) {
      expect((await rpc('create_user', { username, email: `${unique()}@example.test` })).error).toMatch(/^invalid value for `username`: must be 1 to 255 visible characters/);
      expect((await rpc('update_user', { userid: other.user.id, username })).error).toMatch(/^invalid value for `username`: must be 1 to 255 visible characters/);
    }
    for (const username of confusable(holder.user.name)) {
      expect((await rpc('create_user', { username, email: `${unique()}@example.test` })).error).toBe(`user \`${username}\` already exist`);
      expect((await rpc('update_user', { userid: other.user.id, username })).error).toBe(`user \`${username}\` already exist`);
    }
    expect(await countRows(t.knex, 'users')).toBe(users);
    expect((await t.knex('users').where({ id: other.user.id }).first()).name).toBe(other.user.name);
  });

  it('stores the NFKC form', async () => {
    const name = handle();
    const created = (await rpc('create_user', { username: fullwidth(name), email: `${unique()}@example.test` })).result as { msg: string; user: { username: string } };
    expect([created.msg, created.user.username]).toEqual([`created new user \`${name}\``, name]);
  });
});

describe('user groups', () => {
  it('hold group names to the same rule: invisible variants 400, lookalikes of a group’s name 409 (REST and JSON-RPC)', async () => {
    const name = unique('ops');
    await t.http().post('/user_group').set(bearer(admin.jwt)).send({ name }).expect(201);
    const groups = await countRows(t.knex, 'user_groups');
    for (const bad of [`${name}\u200b`, `${name.slice(0, 1)}\u00ad${name.slice(1)}`]) await expectNameRefused(await t.http().post('/user_group').set(bearer(admin.jwt)).send({ name: bad }));
    for (const look of [`\u043e${name.slice(1)}`, fullwidth(name)]) {
      const res = await t.http().post('/user_group').set(bearer(admin.jwt)).send({ name: look });
      expect([res.status, res.body.code]).toEqual([409, 'conflict']);
      expect((await rpc('create_user_group', { group_name: look })).error).toBe(`user group \`${look}\` already exist`);
    }
    const other = await t.http().post('/user_group').set(bearer(admin.jwt)).send({ name: unique('dev') }).expect(201);
    const rename = await t.http().post(`/user_group/${other.body.id}`).set(bearer(admin.jwt)).send({ name: `\u043e${name.slice(1)}` });
    expect(rename.status).toBe(409);
    expect(await countRows(t.knex, 'user_groups')).toBe(groups + 1);
  });
});

describe('mails greet by a name only when the user or an admin set it, never to an address not yet proven', () => {
  const HOSTILE = 'evil.example';
  const hostileName = () => `Support: your account is locked. Restore it at https://${HOSTILE}/${unique('r')}`;
  const withSubject = (email: string, subject: string) => (m: { to: string[]; subject: string }) => m.to.includes(email) && m.subject.startsWith(subject);

  it('keeps a registration’s name out of every mail: verification, “already registered”, and resets before and after verification', async () => {
    const victim = `${unique('victim')}@example.test`;
    await t.http().post('/register').send({ name: hostileName(), email: victim, password: PASSWORD }).expect(202);
    const [verify] = await t.mail.waitFor(withSubject(victim, 'Verify'));
    // A second registration of the address: the "already" mail is about the first, still unverified.
    await t.http().post('/register').send({ name: unique('again'), email: victim, password: PASSWORD }).expect(202);
    await t.mail.waitFor(withSubject(victim, 'You already have'));
    await t.http().post('/password/reset').send({ email: victim }).expect(202);
    await t.mail.waitFor(withSubject(victim, 'Reset'));
    // The address's owner follows the link: the address is proven, but the name is still the registrant's.
    const token = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(verify.text)![1];
    await t.http().post('/register/verify').send({ token }).expect(204);
    t.clock.advance(61_000); // past the reset mail's once-a-minute limit
    await t.http().post('/password/reset').send({ email: victim }).expect(202);
    await t.mail.waitFor(withSubject(victim, 'Reset'), 2);

    const mails = t.mail.to(victim);
    expect(mails.map((m) => m.subject).sort()).toEqual([
      'Reset your Accounts password',
      'Reset your Accounts password',
      'Verify your Accounts email address',
      'You already have an Accounts account',
    ]);
    for (const m of mails) {
      expect(m.text.startsWith('Hello,\n')).toBe(true);
      expect(m.raw).not.toContain(HOSTILE);
      expect(m.text).not.toContain(HOSTILE);
    }
    expect(await t.knex('mail_outbox').whereRaw('body_text like ?', [`%${HOSTILE}%`])).toEqual([]);
  });

  it('greets by the name once the verified user sets one (the old one not shown), and by a name an admin set', async () => {
    const email = `${unique('owner')}@example.test`;
    await t.http().post('/register').send({ name: hostileName(), email, password: PASSWORD }).expect(202);
    const [verify] = await t.mail.waitFor(withSubject(email, 'Verify'));
    await t.http().post('/register/verify').send({ token: /verify-email\?token=([A-Za-z0-9_-]+)/.exec(verify.text)![1] }).expect(204);
    const jwt = await t.factory.login({ email, password: PASSWORD });
    const own = unique('grace');
    await t.http().post('/user/me').set(bearer(jwt)).send({ name: own }).expect(200);
    const [updated] = await t.mail.waitFor(withSubject(email, 'Your Accounts account has been updated'));
    expect(updated.text.startsWith(`Hello ${own},\n`)).toBe(true);
    expect(updated.text).toContain(`name: (the name given at registration) -> ${own}`);
    expect(updated.raw).not.toContain(HOSTILE);

    const made = unique('ada');
    const madeEmail = `${made}@example.test`;
    await t.http().post('/user').set(bearer(admin.jwt)).send({ name: made, email: madeEmail }).expect(201);
    const [welcome] = await t.mail.waitFor(withSubject(madeEmail, 'Welcome'));
    expect(welcome.text.startsWith(`Hello ${made},\n`)).toBe(true);
  });

  it('greets an admin-named user by name at their address, and says “Hello,” to a new address not yet proven', async () => {
    const u = await t.factory.loggedIn({ name: unique('ada') });
    const next = `${unique('next')}@example.test`;
    await t.http().post('/user/me').set(bearer(u.jwt)).send({ email: next, current_password: u.password }).expect(200);
    const [confirm] = await t.mail.waitFor(withSubject(next, 'Confirm'));
    const [notice] = await t.mail.waitFor(withSubject(u.email, 'Your Accounts email address is changing'));
    expect(confirm.text.startsWith('Hello,\n')).toBe(true);
    expect(confirm.raw).not.toContain(u.user.name);
    expect(notice.text.startsWith(`Hello ${u.user.name},\n`)).toBe(true);
  });
});
