import crypto from 'node:crypto';
import { bearer, createTestApp, queuedMail, testAppWithAdmin, unique } from '../helpers/test-app';

const { t, admin } = testAppWithAdmin();

const asAdmin = () => ({ Authorization: `Bearer ${admin.jwt}` });

describe('admin routes refuse non-admins before looking at the target', () => {
  it('answers 403 to every admin route, for existing and unknown targets alike', async () => {
    const u = await t.factory.loggedIn();
    const other = await t.factory.user();
    const targets = [other.user.id, crypto.randomUUID(), 'nobody@example.test', 'garbage'];
    const calls = [
      () => t.http().get('/user').set(bearer(u.jwt)),
      () => t.http().post('/user').set(bearer(u.jwt)).send({ name: unique(), email: `${unique()}@example.test` }),
      ...targets.flatMap((id) => [
        () => t.http().get(`/user/${id}`).set(bearer(u.jwt)),
        () => t.http().post(`/user/${id}`).set(bearer(u.jwt)).send({ first_name: 'x' }),
        () => t.http().delete(`/user/${id}`).set(bearer(u.jwt)),
        () => t.http().post(`/user/${id}/reactivate`).set(bearer(u.jwt)),
      ]),
    ];
    for (const call of calls) {
      const res = await call();
      expect(res.status).toBe(403);
      expect(res.body).toEqual({ error: 'admin access required', code: 'forbidden', request_id: expect.any(String) });
    }
    const row = await t.knex('users').where({ id: other.user.id }).first();
    expect([row.first_name, row.deactivated]).toEqual([null, null]);
  });
});

describe('GET /user', () => {
  let prefix: string;
  let names: string[];
  beforeAll(async () => {
    prefix = unique('list');
    names = [];
    for (let i = 0; i < 7; i++) {
      const u = await t.factory.user({ name: `${prefix}-${i}`, admin: i === 3 });
      names.push(u.user.name);
    }
    const gone = await t.factory.user({ name: `${prefix}-gone` });
    await t.http().delete(`/user/${gone.user.id}`).set(asAdmin()).expect(204);
  });

  it('pages through active users by name with a Link header until none remain', async () => {
    const seen: string[] = [];
    let url: string | undefined = `/user?q=${prefix}&limit=3`;
    let pages = 0;
    while (url) {
      const res = await t.http().get(url).set(asAdmin());
      expect(res.status).toBe(200);
      expect(res.body.length).toBeLessThanOrEqual(3);
      seen.push(...res.body.map((u: { name: string }) => u.name));
      const link = res.headers.link as string | undefined;
      url = link ? /^<([^>]+)>; rel="next"$/.exec(link)?.[1] : undefined;
      pages++;
    }
    expect(seen).toEqual(names);
    expect(pages).toBe(3);
  });

  it('answers User items without deactivated by default', async () => {
    const res = await t.http().get(`/user?q=${prefix}-0`).set(asAdmin());
    expect(res.body).toHaveLength(1);
    expect(Object.keys(res.body[0]).sort()).toEqual(
      ['id', 'name', 'email', 'first_name', 'last_name', 'created', 'last_login', 'last_seen', 'force_password_change', 'is_admin'].sort(),
    );
  });

  it('filters by is_admin and matches q against email prefixes, case-insensitively', async () => {
    const admins = await t.http().get(`/user?q=${prefix.toUpperCase()}&is_admin=1`).set(asAdmin());
    expect(admins.body.map((u: { name: string }) => u.name)).toEqual([`${prefix}-3`]);
    const others = await t.http().get(`/user?q=${prefix}&is_admin=0`).set(asAdmin());
    expect(others.body).toHaveLength(6);
    const byEmail = await t.http().get(`/user?q=${admin.email.slice(0, 8)}`).set(asAdmin());
    expect(byEmail.body.map((u: { id: string }) => u.id)).toContain(admin.user.id);
  });

  it('treats LIKE wildcards in q literally', async () => {
    const res = await t.http().get(`/user?q=${encodeURIComponent('%')}`).set(asAdmin());
    expect(res.status).toBe(200);
    expect(res.body).toEqual([]);
  });

  it('lists deactivated users with include_deactivated=1, each with deactivated', async () => {
    const res = await t.http().get(`/user?q=${prefix}&include_deactivated=1`).set(asAdmin());
    expect(res.body).toHaveLength(8);
    const gone = res.body.find((u: { name: string }) => u.name === `${prefix}-gone`);
    expect(gone.deactivated).toMatch(/Z$/);
    expect(res.body.filter((u: { deactivated: string | null }) => u.deactivated === null)).toHaveLength(7);
  });

  it('keeps filters in the next link', async () => {
    const res = await t.http().get(`/user?q=${prefix}&limit=2&include_deactivated=1`).set(asAdmin());
    const next = new URL(`http://x${/^<([^>]+)>/.exec(res.headers.link)![1]}`);
    expect(next.searchParams.get('q')).toBe(prefix);
    expect(next.searchParams.get('include_deactivated')).toBe('1');
    expect(next.searchParams.get('limit')).toBe('2');
  });

  it('defaults to 100 a page', async () => {
    const res = await t.http().get('/user').set(asAdmin());
    expect(res.status).toBe(200);
    expect(res.body.length).toBeLessThanOrEqual(100);
  });

  it('answers a limit outside 1 to 1000 with 400, Infinity included', async () => {
    for (const limit of ['0', '1001', 'Infinity', '-Infinity', '1.5', 'ten']) {
      const res = await t.http().get(`/user?limit=${limit}`).set(asAdmin());
      expect([limit, res.status, res.body.code]).toEqual([limit, 400, 'validation_failed']);
    }
  });
});

describe('POST /user', () => {
  it('creates a user with force_password_change, answers 201 with Location, and mails a set-password link', async () => {
    const name = unique('new');
    const email = `${name}@Example.test`;
    const res = await t.http().post('/user').set(asAdmin()).send({ name, email, first_name: 'New' });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ id: expect.any(String), email, name });
    expect(res.headers.location).toBe(`/user/${res.body.id}`);
    const row = await t.knex('users').where({ id: res.body.id }).first();
    expect([row.force_password_change, row.is_admin, row.password_hash, row.first_name]).toEqual([true, false, null, 'New']);
    const [mail] = await t.mail.waitFor((m) => m.to.some((to) => to.toLowerCase() === email.toLowerCase()));
    expect(mail.subject).toBe('Welcome to Accounts');
    expect(mail.from).toBe('noreply@localhost');
    const link = /https:\/\/accounts\.example\.test\/reset-password\?token=([A-Za-z0-9_-]+)/.exec(mail.text);
    expect(link).not.toBeNull();
    const stored = await t.knex('password_tokens').where({ user_id: res.body.id });
    expect(stored).toHaveLength(1);
    expect(stored[0].token_hash).not.toContain(link![1]);
    expect(stored[0].purpose).toBe('welcome');
    expect(stored[0].expires.getTime() - Date.now()).toBeGreaterThan(6.9 * 86_400_000);
    // The link sets a password, once.
    await t.http().post('/password/reset/confirm').send({ token: link![1], password: 'a brand new password' }).expect(204);
    const login = await t.http().post('/login').send({ email, password: 'a brand new password' });
    expect(login.status).toBe(200);
    expect(login.body.password_change_required).toBeUndefined();
  });

  it('never puts the password in the mail, and the user must change it at first login', async () => {
    const name = unique('pw');
    const password = 'temporary password 1';
    await t.http().post('/user').set(asAdmin()).send({ name, email: `${name}@example.test`, password, is_admin: true }).expect(201);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(`${name}@example.test`));
    expect(mail.raw).not.toContain(password);
    const login = await t.http().post('/login').send({ email: `${name}@example.test`, password });
    expect(login.body.password_change_required).toBe(true);
    expect((await t.knex('users').where({ name }).first()).is_admin).toBe(true);
  });

  it('sends nothing with send_mail=0', async () => {
    const name = unique('quiet');
    await t.http().post('/user?send_mail=0').set(asAdmin()).send({ name, email: `${name}@example.test` }).expect(201);
    expect(await queuedMail(t.knex, `${name}@example.test`)).toEqual([]);
    expect(await t.knex('password_tokens').join('users', 'users.id', 'password_tokens.user_id').where('users.name', name)).toHaveLength(0);
  });

  it('refuses the reserved name me and a weak password, creating nothing', async () => {
    const email = `${unique()}@example.test`;
    const me = await t.http().post('/user').set(asAdmin()).send({ name: 'me', email });
    expect(me.status).toBe(400);
    expect(me.body.code).toBe('validation_failed');
    const weak = await t.http().post('/user').set(asAdmin()).send({ name: unique(), email, password: 'short' });
    expect(weak.status).toBe(400);
    expect(weak.body.code).toBe('weak_password');
    expect(await t.knex('users').where({ email })).toHaveLength(0);
  });

  it('answers a duplicate name or email (any case) with 409 and the user', async () => {
    const taken = await t.factory.user();
    for (const body of [
      { name: taken.user.name, email: `${unique()}@example.test` },
      { name: unique(), email: taken.email.toUpperCase() },
    ]) {
      const res = await t.http().post('/user').set(asAdmin()).send(body);
      expect(res.status).toBe(409);
      expect(res.body.code).toBe('conflict');
      expect(res.body.user).toMatchObject({ id: taken.user.id, email: taken.email, name: taken.user.name, deactivated: null });
    }
  });

  it('gives exactly one 201 among 20 concurrent creations of one email', async () => {
    const email = `${unique('race')}@example.test`;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => t.http().post('/user?send_mail=0').set(asAdmin()).send({ name: unique(`race${i}-`), email })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
    expect(await t.knex('users').whereRaw('lower(email) = lower(?)', [email])).toHaveLength(1);
  });
});

describe('GET /user/:user', () => {
  it('finds a user by UUID in any case, bare email in any case, and email=', async () => {
    const u = await t.factory.user();
    for (const ref of [u.user.id, u.user.id.toUpperCase(), u.email.toUpperCase(), `email=${u.email}`, encodeURIComponent(`email=${u.email}`)]) {
      const res = await t.http().get(`/user/${ref}`).set(asAdmin());
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: u.user.id, groups: [] });
    }
  });

  it('answers 404 for no such user', async () => {
    for (const ref of [crypto.randomUUID(), 'nobody@example.test']) {
      const res = await t.http().get(`/user/${ref}`).set(asAdmin());
      expect(res.status).toBe(404);
      expect(res.body.code).toBe('not_found');
    }
  });

  it('answers 410 with the user for a deactivated one', async () => {
    const u = await t.factory.user();
    await t.http().delete(`/user/${u.user.id}`).set(asAdmin()).expect(204);
    for (const ref of [u.user.id, u.email]) {
      const res = await t.http().get(`/user/${ref}`).set(asAdmin());
      expect(res.status).toBe(410);
      expect(res.body).toMatchObject({ code: 'user_deactivated', user: { id: u.user.id, deactivated: expect.stringMatching(/Z$/) } });
    }
  });

  it('prefers the active user when a deactivated one had the same email', async () => {
    const old = await t.factory.user();
    await t.http().delete(`/user/${old.user.id}`).set(asAdmin()).expect(204);
    const now = await t.factory.user({ email: old.email });
    const res = await t.http().get(`/user/${old.email}`).set(asAdmin());
    expect(res.status).toBe(200);
    expect(res.body.id).toBe(now.user.id);
  });
});

describe('POST /user/:user', () => {
  it('updates the target and mails them', async () => {
    const u = await t.factory.user();
    const res = await t.http().post(`/user/${u.email}`).set(asAdmin()).send({ is_admin: true, last_name: 'Hopper' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: u.user.id, is_admin: true, last_name: 'Hopper' });
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject.includes('updated'));
    expect(mail.text).toContain('is_admin: false -> true');
  });

  it('answers 409 with the user for a duplicate, and for removing the last active admin', async () => {
    const u = await t.factory.user();
    const taken = await t.factory.user();
    const dup = await t.http().post(`/user/${u.user.id}`).set(asAdmin()).send({ name: taken.user.name });
    expect(dup.status).toBe(409);
    expect(dup.body.user.id).toBe(taken.user.id);

    const lonely = await createTestApp();
    try {
      const a = await lonely.factory.loggedIn({ admin: true });
      const res = await lonely.http().post(`/user/${a.user.id}`).set(bearer(a.jwt)).send({ is_admin: false });
      expect(res.status).toBe(409);
      expect(res.body.user.id).toBe(a.user.id);
    } finally {
      await lonely.close();
    }
  });

  it('answers 410 for a deactivated target and changes nothing', async () => {
    const u = await t.factory.user();
    await t.http().delete(`/user/${u.user.id}`).set(asAdmin()).expect(204);
    const res = await t.http().post(`/user/${u.user.id}`).set(asAdmin()).send({ first_name: 'Zombie' });
    expect(res.status).toBe(410);
    expect((await t.knex('users').where({ id: u.user.id }).first()).first_name).toBeNull();
  });
});

describe('DELETE /user/:user', () => {
  it('deactivates: tokens refused at once, login fails, links die, the row stays', async () => {
    const u = await t.factory.loggedIn();
    const api = await t.factory.apiToken(u.user);
    await t.container.stores.passwordTokens.insert(u.user.id, crypto.randomBytes(32).toString('hex'), 'reset', new Date(), new Date(Date.now() + 3600_000));
    const res = await t.http().delete(`/user/${u.user.id}?clear_tokens=0`).set(asAdmin());
    expect(res.status).toBe(204);
    expect((await t.http().get('/me').set(bearer(u.jwt))).status).toBe(401);
    expect((await t.http().get('/me').set(bearer(api))).status).toBe(401);
    const login = await t.http().post('/login').send({ email: u.email, password: u.password });
    expect(login.status).toBe(401);
    expect(await t.knex('user_tokens').where({ user_id: u.user.id })).toHaveLength(0);
    expect(await t.knex('password_tokens').where({ user_id: u.user.id })).toHaveLength(0);
    expect((await t.knex('users').where({ id: u.user.id }).first()).deactivated).not.toBeNull();
    const again = await t.http().delete(`/user/${u.user.id}`).set(asAdmin());
    expect(again.status).toBe(410);
  });

  it('refuses to deactivate the last active admin', async () => {
    const lonely = await createTestApp();
    try {
      const a = await lonely.factory.loggedIn({ admin: true });
      const res = await lonely.http().delete(`/user/${a.user.id}`).set(bearer(a.jwt));
      expect(res.status).toBe(409);
      expect(res.body.user.id).toBe(a.user.id);
      expect((await lonely.knex('users').where({ id: a.user.id }).first()).deactivated).toBeNull();
      // Two admins deactivating each other at once: one of them stays.
      const b = await lonely.factory.loggedIn({ admin: true });
      const both = await Promise.all([
        lonely.http().delete(`/user/${b.user.id}`).set(bearer(a.jwt)),
        lonely.http().delete(`/user/${a.user.id}`).set(bearer(b.jwt)),
      ]);
      expect(both.map((r) => r.status).sort()).toEqual(expect.arrayContaining([204]));
      expect(both.every((r) => r.status === 204 || r.status === 409 || r.status === 401)).toBe(true);
      expect(await lonely.knex('users').where({ is_admin: true }).whereNull('deactivated')).toHaveLength(1);
    } finally {
      await lonely.close();
    }
  });

  it('rejects an unknown clear_tokens value', async () => {
    const u = await t.factory.user();
    expect((await t.http().delete(`/user/${u.user.id}?clear_tokens=maybe`).set(asAdmin())).status).toBe(400);
    expect((await t.knex('users').where({ id: u.user.id }).first()).deactivated).toBeNull();
  });
});

describe('POST /user/:user/reactivate', () => {
  it('makes a deactivated user active with no tokens and no usable password, and mails a link', async () => {
    const u = await t.factory.user();
    await t.http().delete(`/user/${u.user.id}`).set(asAdmin()).expect(204);
    const res = await t.http().post(`/user/${u.user.id}/reactivate`).set(asAdmin());
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: u.user.id, force_password_change: true, groups: [] });
    const row = await t.knex('users').where({ id: u.user.id }).first();
    expect([row.deactivated, row.password_hash]).toEqual([null, null]);
    expect((await t.http().post('/login').send({ email: u.email, password: u.password })).status).toBe(401);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Welcome to Accounts');
    const token = /token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
    await t.http().post('/password/reset/confirm').send({ token, password: 'back again password' }).expect(204);
    expect((await t.http().post('/login').send({ email: u.email, password: 'back again password' })).status).toBe(200);
  });

  it('answers 409 when an active user now holds the name or email', async () => {
    const u = await t.factory.user();
    await t.http().delete(`/user/${u.user.id}`).set(asAdmin()).expect(204);
    const usurper = await t.factory.user({ email: u.email.toUpperCase() });
    const res = await t.http().post(`/user/${u.user.id}/reactivate?send_mail=0`).set(asAdmin());
    expect(res.status).toBe(409);
    expect(res.body.user.id).toBe(usurper.user.id);
    expect((await t.knex('users').where({ id: u.user.id }).first()).deactivated).not.toBeNull();
  });

  it('answers an active user as is, changing nothing', async () => {
    const u = await t.factory.user();
    const res = await t.http().post(`/user/${u.user.id}/reactivate`).set(asAdmin());
    expect(res.status).toBe(200);
    expect((await t.http().post('/login').send({ email: u.email, password: u.password })).status).toBe(200);
  });

  it('answers 404 for no such user', async () => {
    expect((await t.http().post(`/user/${crypto.randomUUID()}/reactivate`).set(asAdmin())).status).toBe(404);
  });
});

describe('concurrent deactivations and reactivations', () => {
  it('lets exactly one of 20 concurrent deactivations win; the others get 410', async () => {
    for (const isAdmin of [false, true]) {
      const u = await t.factory.user({ admin: isAdmin });
      const results = await Promise.all(Array.from({ length: 20 }, () => t.http().delete(`/user/${u.user.id}`).set(asAdmin())));
      expect(results.map((r) => r.status).sort()).toEqual([204, ...Array(19).fill(410)]);
      for (const r of results.filter((x) => x.status === 410)) expect(r.body).toMatchObject({ code: 'user_deactivated', user: { id: u.user.id } });
    }
  });

  it('reactivates once among 20 concurrent reactivations: every answer 200, one welcome mail', async () => {
    const u = await t.factory.user();
    await t.http().delete(`/user/${u.user.id}`).set(asAdmin()).expect(204);
    const results = await Promise.all(Array.from({ length: 20 }, () => t.http().post(`/user/${u.user.id}/reactivate`).set(asAdmin())));
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    const queued = await t.knex('mail_outbox').whereRaw('? = any(recipients)', [u.email]);
    expect(queued).toHaveLength(1);
    expect(await t.knex('password_tokens').where({ user_id: u.user.id })).toHaveLength(1);
  });
});
