import crypto from 'node:crypto';
import { bearer, captureQueries, testAppWithAdmin, unique } from '../helpers/test-app';
import { onPostgres } from '../helpers/test-database';

const { t, admin } = testAppWithAdmin();

type Actor = { jwt: string };

async function createGroup(body: Record<string, unknown> = {}): Promise<{ id: string; name: string }> {
  const res = await t.http().post('/user_group').set(bearer(admin.jwt)).send({ name: unique('grp'), ...body });
  if (res.status !== 201) throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function member(group: string, email: string) {
  await t.http().put(`/user_group/${group}/member/${email}`).set(bearer(admin.jwt)).expect(201);
}

async function grantUser(group: string, email: string, permission: string) {
  await t.http().put(`/user_group/${group}/grant/user/${email}`).set(bearer(admin.jwt)).send({ permission }).expect(200);
}

async function grantGroup(group: string, source: string, permission: string) {
  await t.http().put(`/user_group/${group}/grant/user_group/${source}`).set(bearer(admin.jwt)).send({ permission }).expect(200);
}

describe('creating and reading groups', () => {
  it('lets only system admins create; 201 with Location and the detailed group', async () => {
    const owner = await t.factory.user();
    const name = unique('ops');
    const res = await t.http().post('/user_group').set(bearer(admin.jwt)).send({ name, description: 'On call', owner: owner.email });
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`/user_group/${res.body.id}`);
    expect(res.body).toEqual({
      id: expect.any(String),
      name,
      description: 'On call',
      active: true,
      owner: { id: owner.user.id, name: owner.user.name },
      created: expect.any(String),
      members_count: 0,
      members: [],
      grants: [{ type: 'user', id: owner.user.id, name: owner.user.name, permission: 'usergroup.admin', origin: 'owner' }],
    });
    const other = await t.factory.loggedIn();
    const refused = await t.http().post('/user_group').set(bearer(other.jwt)).send({ name: unique('nope') });
    expect(refused.status).toBe(403);
    const byName = await t.http().get(`/user_group/${name}`).set(bearer(admin.jwt));
    expect([byName.status, byName.body.id]).toEqual([200, res.body.id]);
  });

  it('defaults the owner to the caller and answers a duplicate name with 409', async () => {
    const g = await createGroup();
    const detail = await t.http().get(`/user_group/${g.id}`).set(bearer(admin.jwt));
    expect(detail.body.owner.id).toBe(admin.user.id);
    const dup = await t.http().post('/user_group').set(bearer(admin.jwt)).send({ name: g.name });
    expect([dup.status, dup.body.code]).toEqual([409, 'conflict']);
  });

  it('gives exactly one 201 among concurrent creations of one name', async () => {
    const name = unique('race');
    const results = await Promise.all(Array.from({ length: 10 }, () => t.http().post('/user_group').set(bearer(admin.jwt)).send({ name })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(9);
  });
});

describe('the permission matrix', () => {
  // Roles on group G, each with the exact status of every operation.
  const operations = ['read', 'members', 'add', 'remove', 'rename', 'grant', 'revoke', 'delete'] as const;
  const expected: Record<string, Record<(typeof operations)[number], number>> = {
    system_admin: { read: 200, members: 200, add: 201, remove: 204, rename: 200, grant: 200, revoke: 204, delete: 204 },
    owner: { read: 200, members: 200, add: 201, remove: 204, rename: 200, grant: 200, revoke: 204, delete: 204 },
    admin: { read: 200, members: 200, add: 201, remove: 204, rename: 200, grant: 200, revoke: 204, delete: 204 },
    write: { read: 200, members: 200, add: 201, remove: 204, rename: 403, grant: 403, revoke: 403, delete: 403 },
    read: { read: 200, members: 200, add: 403, remove: 403, rename: 403, grant: 403, revoke: 403, delete: 403 },
    none: { read: 404, members: 404, add: 404, remove: 404, rename: 404, grant: 404, revoke: 404, delete: 404 },
    member: { read: 200, members: 200, add: 403, remove: 403, rename: 403, grant: 403, revoke: 403, delete: 403 },
    stranger: { read: 404, members: 404, add: 404, remove: 404, rename: 404, grant: 404, revoke: 404, delete: 404 },
  };
  const roles: { role: string; via: 'direct' | 'group' }[] = [
    { role: 'system_admin', via: 'direct' },
    { role: 'owner', via: 'direct' },
    ...['admin', 'write', 'read', 'none'].flatMap((role) => [
      { role, via: 'direct' as const },
      { role, via: 'group' as const },
    ]),
    { role: 'member', via: 'direct' },
    { role: 'stranger', via: 'direct' },
  ];

  it.each(roles)('$role ($via) gets exactly the expected statuses', async ({ role, via }) => {
    const caller = await t.factory.loggedIn({ admin: role === 'system_admin' });
    const g = await createGroup(role === 'owner' ? { owner: caller.email } : {});
    if (['admin', 'write', 'read', 'none'].includes(role)) {
      if (via === 'direct') await grantUser(g.id, caller.email, `usergroup.${role}`);
      else {
        const s = await createGroup();
        await member(s.id, caller.email);
        await grantGroup(g.id, s.id, `usergroup.${role}`);
      }
    }
    if (role === 'member') await member(g.id, caller.email);
    const subject = await t.factory.user();
    const grantee = await t.factory.user();
    await member(g.id, subject.email);
    await grantUser(g.id, grantee.email, 'usergroup.read');
    const newcomer = await t.factory.user();
    const as = (c: Actor) => bearer(c.jwt);
    const calls: Record<(typeof operations)[number], () => Promise<{ status: number; body: { code?: string } }>> = {
      read: () => t.http().get(`/user_group/${g.id}`).set(as(caller)),
      members: () => t.http().get(`/user_group/${g.id}/member`).set(as(caller)),
      // A newcomer is named by id: only system admins may name people outside the group by email.
      add: () => t.http().put(`/user_group/${g.id}/member/${newcomer.user.id}`).set(as(caller)),
      remove: () => t.http().delete(`/user_group/${g.id}/member/${subject.email}`).set(as(caller)),
      rename: () => t.http().post(`/user_group/${g.id}`).set(as(caller)).send({ description: 'renamed' }),
      grant: () => t.http().put(`/user_group/${g.id}/grant/user/${newcomer.user.id}`).set(as(caller)).send({ permission: 'usergroup.write' }),
      revoke: () => t.http().delete(`/user_group/${g.id}/grant/user/${grantee.email}`).set(as(caller)),
      delete: () => t.http().delete(`/user_group/${g.id}`).set(as(caller)),
    };
    const got: Record<string, number> = {};
    for (const op of operations) {
      const res = await calls[op]();
      got[op] = res.status;
      if (res.status === 404) expect(res.body.code).toBe('not_found');
      if (res.status === 403) expect(res.body.code).toBe('forbidden');
    }
    expect(got).toEqual(expected[role]);
  });
});

describe('inheritance and the effective permission', () => {
  it('lets members of a granted group act, until they leave it (on the very next request)', async () => {
    const g = await createGroup();
    const s = await createGroup();
    const u = await t.factory.loggedIn();
    await member(s.id, u.email);
    await grantGroup(g.id, s.name, 'usergroup.write');
    const newcomer = await t.factory.user();
    expect((await t.http().put(`/user_group/${g.id}/member/${newcomer.user.id}`).set(bearer(u.jwt))).status).toBe(201);
    const eff = await t.http().get(`/user_group/${g.id}/effective/${u.email}`).set(bearer(u.jwt));
    expect(eff.body).toEqual({ permission: 'usergroup.write', via: { type: 'group_grant', group: { id: s.id, name: s.name } } });
    await t.http().delete(`/user_group/${s.id}/member/${u.email}`).set(bearer(admin.jwt)).expect(204);
    expect((await t.http().get(`/user_group/${g.id}`).set(bearer(u.jwt))).status).toBe(404);
  });

  it('takes the highest grant and names where it comes from', async () => {
    const g = await createGroup();
    const s = await createGroup();
    const u = await t.factory.loggedIn();
    await member(g.id, u.email);
    const eff = async () => (await t.http().get(`/user_group/${g.id}/effective/${u.user.id}`).set(bearer(admin.jwt))).body;
    expect(await eff()).toEqual({ permission: 'usergroup.read', via: { type: 'member' } });
    await grantUser(g.id, u.email, 'usergroup.none');
    expect(await eff()).toEqual({ permission: 'usergroup.read', via: { type: 'member' } });
    await grantUser(g.id, u.email, 'usergroup.write');
    expect(await eff()).toEqual({ permission: 'usergroup.write', via: { type: 'user_grant' } });
    await member(s.id, u.email);
    await grantGroup(g.id, s.id, 'usergroup.admin');
    expect(await eff()).toEqual({ permission: 'usergroup.admin', via: { type: 'group_grant', group: { id: s.id, name: s.name } } });
    const a = await t.http().get(`/user_group/${g.id}/effective/${admin.email}`).set(bearer(admin.jwt));
    expect(a.body).toEqual({ permission: 'usergroup.admin', via: { type: 'system_admin' } });
    const stranger = await t.factory.user();
    expect((await t.http().get(`/user_group/${g.id}/effective/${stranger.email}`).set(bearer(admin.jwt))).body).toEqual({ permission: 'usergroup.none', via: { type: 'none' } });
  });

  it('checks a permission in one query however many groups grant it', async () => {
    const g = await createGroup();
    const u = await t.factory.loggedIn();
    for (let i = 0; i < 5; i++) {
      const s = await createGroup();
      await member(s.id, u.email);
      await grantGroup(g.id, s.id, i === 4 ? 'usergroup.write' : 'usergroup.read');
    }
    const statements = await captureQueries(t.knex, () => t.http().get(`/user_group/${g.id}/effective/${u.email}`).set(bearer(u.jwt)).expect(200));
    expect(statements.filter((s) => s.includes('user_group_grants'))).toHaveLength(2); // the caller's check, then the target's
  });
});

describe('members', () => {
  it('answers 201 when added and 200 when already a member, even concurrently', async () => {
    const g = await createGroup();
    const u = await t.factory.user();
    const results = await Promise.all(Array.from({ length: 8 }, () => t.http().put(`/user_group/${g.id}/member/${u.email}`).set(bearer(admin.jwt))));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(7);
    expect(results.find((r) => r.status === 200)!.body).toEqual({ added: false });
    expect(await t.knex('user_group_members').where({ group_id: g.id })).toHaveLength(1);
  });

  it('pages members by name with a Link header, and answers 404 for removing a non-member', async () => {
    const g = await createGroup();
    const prefix = unique('m');
    for (let i = 0; i < 5; i++) await member(g.id, (await t.factory.user({ name: `${prefix}-${i}` })).email);
    const names: string[] = [];
    let url: string | undefined = `/user_group/${g.id}/member?limit=2`;
    while (url) {
      const res: { body: { name: string }[]; headers: Record<string, string> } = await t.http().get(url).set(bearer(admin.jwt));
      names.push(...res.body.map((x: { name: string }) => x.name));
      url = res.headers.link ? /^<([^>]+)>/.exec(res.headers.link)![1] : undefined;
    }
    expect(names).toEqual([0, 1, 2, 3, 4].map((i) => `${prefix}-${i}`));
    const detail = await t.http().get(`/user_group/${g.id}`).set(bearer(admin.jwt));
    expect(detail.body.members_count).toBe(5);
    const stranger = await t.factory.user();
    const res = await t.http().delete(`/user_group/${g.id}/member/${stranger.email}`).set(bearer(admin.jwt));
    expect([res.status, res.body.code]).toEqual([404, 'not_found']);
  });

  it('refuses unknown users with 404, deactivated ones with 410, and bad identifiers with 400', async () => {
    const g = await createGroup();
    expect((await t.http().put(`/user_group/${g.id}/member/${crypto.randomUUID()}`).set(bearer(admin.jwt))).status).toBe(404);
    const gone = await t.factory.user();
    await t.http().delete(`/user/${gone.user.id}`).set(bearer(admin.jwt)).expect(204);
    expect((await t.http().put(`/user_group/${g.id}/member/${gone.user.id}`).set(bearer(admin.jwt))).status).toBe(410);
    expect((await t.http().put(`/user_group/${g.id}/member/not-an-id`).set(bearer(admin.jwt))).status).toBe(400);
  });
});

describe('no escalation through group grants (§2.5)', () => {
  /** G holds `permission` on H; the caller holds only write on G. */
  async function setUp(permission = 'usergroup.admin', options: { active?: boolean } = {}) {
    const g = await createGroup(options.active === undefined ? {} : { active: options.active });
    const h = await createGroup();
    await grantGroup(h.id, g.id, permission);
    const writer = await t.factory.loggedIn();
    await grantUser(g.id, writer.email, 'usergroup.write');
    return { g, h, writer };
  }
  const membersOf = async (groupId: string) => (await t.knex('user_group_members').where({ group_id: groupId })).map((m: { user_id: string }) => m.user_id);
  const added = async (groupId: string) => t.knex('audit_log').where({ action: 'group.member_added', target_id: groupId });

  it('refuses a writer of G adding himself when G holds admin on H: 403, nothing changes, H stays out of his reach', async () => {
    const { g, h, writer } = await setUp();
    const res = await t.http().put(`/user_group/${g.id}/member/${writer.user.id}`).set(bearer(writer.jwt));
    expect([res.status, res.body.code]).toEqual([403, 'forbidden']);
    expect(res.body.error).not.toContain(h.name); // a group he may not read is not named
    expect(await membersOf(g.id)).toEqual([]);
    expect(await added(g.id)).toHaveLength(0);
    expect((await t.http().get(`/user_group/${h.id}`).set(bearer(writer.jwt))).status).toBe(404);
    expect((await t.http().post(`/user_group/${h.id}`).set(bearer(writer.jwt)).send({ description: 'mine now' })).status).toBe(404);
    // Nor an accomplice: anyone he adds would hold admin on H.
    const accomplice = await t.factory.user();
    expect((await t.http().put(`/user_group/${g.id}/member/${accomplice.user.id}`).set(bearer(writer.jwt))).status).toBe(403);
    expect(await membersOf(g.id)).toEqual([]);
  });

  it('needs at least each permission G confers, whatever it is; a grant of none confers nothing', async () => {
    for (const [conferred, held, status] of [
      ['usergroup.read', undefined, 403],
      ['usergroup.read', 'usergroup.read', 201],
      ['usergroup.write', 'usergroup.read', 403],
      ['usergroup.write', 'usergroup.write', 201],
      ['usergroup.admin', 'usergroup.write', 403],
      ['usergroup.none', undefined, 201],
    ] as const) {
      const { g, h, writer } = await setUp(conferred);
      if (held) await grantUser(h.id, writer.email, held);
      const res = await t.http().put(`/user_group/${g.id}/member/${writer.user.id}`).set(bearer(writer.jwt));
      expect([conferred, held, res.status]).toEqual([conferred, held, status]);
      expect(await membersOf(g.id)).toEqual(status === 201 ? [writer.user.id] : []);
    }
  });

  it('lets a caller who holds admin on H add (himself or another), and system admins always', async () => {
    const { g, h, writer } = await setUp();
    await grantUser(h.id, writer.email, 'usergroup.admin');
    const friend = await t.factory.user();
    expect((await t.http().put(`/user_group/${g.id}/member/${writer.user.id}`).set(bearer(writer.jwt))).status).toBe(201);
    expect((await t.http().put(`/user_group/${g.id}/member/${friend.user.id}`).set(bearer(writer.jwt))).status).toBe(201);
    expect((await membersOf(g.id)).sort()).toEqual([writer.user.id, friend.user.id].sort());
    const owner = await t.factory.loggedIn();
    const other = await setUp();
    await t.http().post(`/user_group/${other.h.id}`).set(bearer(admin.jwt)).send({ owner: owner.email }).expect(200);
    await grantUser(other.g.id, owner.email, 'usergroup.write');
    expect((await t.http().put(`/user_group/${other.g.id}/member/${owner.user.id}`).set(bearer(owner.jwt))).status).toBe(201); // H's owner holds admin
    const third = await setUp();
    expect((await t.http().put(`/user_group/${third.g.id}/member/${third.writer.user.id}`).set(bearer(admin.jwt))).status).toBe(201);
  });

  it('counts the grants of an inactive G too (it may be made active again)', async () => {
    const { g, writer } = await setUp('usergroup.admin', { active: false });
    expect((await t.http().put(`/user_group/${g.id}/member/${writer.user.id}`).set(bearer(writer.jwt))).status).toBe(403);
    expect(await membersOf(g.id)).toEqual([]);
  });
});

// Only a server has a second connection to hold a transaction open on while a request goes on.
if (onPostgres) {
  describe('no escalation through a grant made at the same moment', () => {
    it('makes an add wait for a grant to G under way, then refuses it', async () => {
      const g = await createGroup();
      const h = await createGroup();
      const writer = await t.factory.loggedIn();
      await grantUser(g.id, writer.email, 'usergroup.write');
      // H's admin grants G admin on H, in a transaction held open while the writer adds himself to G.
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let inside!: () => void;
      const granting = new Promise<void>((resolve) => (inside = resolve));
      const grant = t.container.transact(async (s) => {
        await s.groups.setGroupGrant(h.id, g.id, 'usergroup.admin');
        inside();
        await held;
      });
      await granting;
      let done = false;
      const add = t.http().put(`/user_group/${g.id}/member/${writer.user.id}`).set(bearer(writer.jwt)).then((res) => {
        done = true;
        return res;
      });
      // Until the add waits on the lock (or, were there none, has answered before the grant commits).
      const deadline = Date.now() + 10_000;
      const waiting = async () =>
        Number((await t.knex.raw<{ rows: { n: string }[] }>(`select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)).rows[0].n);
      while (!done && (await waiting()) === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      release();
      await grant;
      const res = await add;
      expect([res.status, res.body.code]).toEqual([403, 'forbidden']);
      expect(await t.knex('user_group_members').where({ group_id: g.id })).toHaveLength(0);
    });
  });
}

describe('what readers see of members (§2.5)', () => {
  /** A group whose members have something to hide: a system admin, a pending password change, a login. */
  async function setUp() {
    const owner = await t.factory.loggedIn();
    const g = await createGroup({ owner: owner.email });
    const sysadmin = await t.factory.user({ admin: true });
    const forced = await t.factory.user({ forcePasswordChange: true });
    const reader = await t.factory.loggedIn(); // a plain member: logged in, so last_login is set
    for (const u of [sysadmin, forced, reader]) await member(g.id, u.email);
    const writer = await t.factory.loggedIn();
    const groupAdmin = await t.factory.loggedIn();
    await grantUser(g.id, writer.email, 'usergroup.write');
    await grantUser(g.id, groupAdmin.email, 'usergroup.admin');
    const members = [sysadmin, forced, reader].map((u) => u.user).sort((a, b) => (a.name < b.name ? -1 : 1));
    return { g, owner, reader, writer, groupAdmin, members };
  }
  const secretsOf = (users: { email: string }[]) => users.map((u) => u.email);

  it('shows members to readers who are not system admins as {id, name} only: the detail, the member pages and an update’s answer', async () => {
    const { g, owner, reader, writer, groupAdmin, members } = await setUp();
    const refs = members.map((u) => ({ id: u.id, name: u.name }));
    for (const caller of [reader, writer, groupAdmin, owner]) {
      const detail = await t.http().get(`/user_group/${g.id}`).set(bearer(caller.jwt)).expect(200);
      expect(detail.body.members).toEqual(refs);
      expect(detail.body.members_count).toBe(3);
      const page = await t.http().get(`/user_group/${g.id}/member?limit=2`).set(bearer(caller.jwt)).expect(200);
      expect(page.body).toEqual(refs.slice(0, 2));
      const next = /^<([^>]+)>/.exec(page.headers.link)![1];
      expect((await t.http().get(next).set(bearer(caller.jwt)).expect(200)).body).toEqual(refs.slice(2));
      for (const text of [JSON.stringify(detail.body), JSON.stringify(page.body)]) {
        for (const secret of [...secretsOf(members), 'is_admin', 'last_login', 'force_password_change']) expect(text).not.toContain(secret);
      }
    }
    const updated = await t.http().post(`/user_group/${g.id}`).set(bearer(groupAdmin.jwt)).send({ description: 'changed' }).expect(200);
    expect(updated.body.members).toEqual(refs);
  });

  it('does not tell a reader, through the effective permission, who is in a group the reader cannot read', async () => {
    const g = await createGroup();
    const hidden = await createGroup();
    const x = await t.factory.loggedIn();
    await member(hidden.id, x.email);
    await member(g.id, x.email);
    await grantGroup(g.id, hidden.id, 'usergroup.write');
    const reader = await t.factory.loggedIn();
    await grantUser(g.id, reader.email, 'usergroup.read');
    const effective = async (caller: Actor) => (await t.http().get(`/user_group/${g.id}/effective/${x.user.id}`).set(bearer(caller.jwt)).expect(200)).body;
    // The reader sees x as a member of g, and no more: x's membership of `hidden` is not theirs to learn.
    expect(await effective(reader)).toEqual({ permission: 'usergroup.read', via: { type: 'member' } });
    // x himself, and system admins, see the whole truth.
    const whole = { permission: 'usergroup.write', via: { type: 'group_grant', group: { id: hidden.id, name: hidden.name } } };
    expect(await effective(x)).toEqual(whole);
    expect(await effective(admin)).toEqual(whole);
    // Once the reader may read `hidden` (and see its members), the reader sees it too.
    await grantUser(hidden.id, reader.email, 'usergroup.read');
    expect(await effective(reader)).toEqual(whole);
  });

  it('shows system admins full users, as before', async () => {
    const { g, members } = await setUp();
    const detail = await t.http().get(`/user_group/${g.id}`).set(bearer(admin.jwt)).expect(200);
    expect(detail.body.members.map((m: { id: string; email: string }) => [m.id, m.email])).toEqual(members.map((u) => [u.id, u.email]));
    expect(detail.body.members).toContainEqual(expect.objectContaining({ is_admin: true }));
    expect(detail.body.members).toContainEqual(expect.objectContaining({ force_password_change: true }));
    expect(detail.body.members).toContainEqual(expect.objectContaining({ last_login: expect.any(String) }));
    const page = await t.http().get(`/user_group/${g.id}/member`).set(bearer(admin.jwt)).expect(200);
    expect(page.body).toEqual(detail.body.members);
  });
});

describe('what users see', () => {
  it('lists only the groups the caller can read; admins see all', async () => {
    const visible = await createGroup();
    const hidden = await createGroup();
    const u = await t.factory.loggedIn();
    await member(visible.id, u.email);
    const mine = await t.http().get('/user_group?limit=1000').set(bearer(u.jwt));
    expect(mine.body.map((g: { id: string }) => g.id)).toEqual([visible.id]);
    const all = await t.http().get('/user_group?limit=1000').set(bearer(admin.jwt));
    expect(all.body.map((g: { id: string }) => g.id)).toEqual(expect.arrayContaining([visible.id, hidden.id]));
  });

  it('shows a user their groups with their effective permission, in UserDetailed', async () => {
    const g1 = await createGroup({ name: unique('a-') });
    const g2 = await createGroup({ name: unique('b-') });
    const u = await t.factory.loggedIn();
    expect((await t.http().get('/user/me').set(bearer(u.jwt))).body.groups).toEqual([]);
    await member(g1.id, u.email);
    await member(g2.id, u.email);
    await grantUser(g2.id, u.email, 'usergroup.write');
    const me = await t.http().get('/user/me').set(bearer(u.jwt));
    expect(me.body.groups).toEqual([
      { id: g1.id, name: g1.name, permission: 'usergroup.read' },
      { id: g2.id, name: g2.name, permission: 'usergroup.write' },
    ]);
    expect((await t.http().get(`/user/${u.user.id}`).set(bearer(admin.jwt))).body.groups).toHaveLength(2);
  });

  it('removes a deactivated user\'s memberships and grants', async () => {
    const g = await createGroup();
    const u = await t.factory.user();
    await member(g.id, u.email);
    await grantUser(g.id, u.email, 'usergroup.admin');
    await t.http().delete(`/user/${u.user.id}`).set(bearer(admin.jwt)).expect(204);
    expect(await t.knex('user_group_members').where({ user_id: u.user.id })).toHaveLength(0);
    expect(await t.knex('user_group_grants').where({ grantee_user_id: u.user.id })).toHaveLength(0);
  });

  it('deletes a group with its members and grants, including those it held on other groups', async () => {
    const g = await createGroup();
    const s = await createGroup();
    const u = await t.factory.loggedIn();
    await member(s.id, u.email);
    await grantGroup(g.id, s.id, 'usergroup.read');
    expect((await t.http().get(`/user_group/${g.id}`).set(bearer(u.jwt))).status).toBe(200);
    await t.http().delete(`/user_group/${s.name}`).set(bearer(admin.jwt)).expect(204);
    expect((await t.http().get(`/user_group/${g.id}`).set(bearer(u.jwt))).status).toBe(404);
    expect(await t.knex('user_group_grants').where({ grantee_group_id: s.id })).toHaveLength(0);
    expect(await t.knex('user_group_members').where({ group_id: s.id })).toHaveLength(0);
  });

  it('updates name, owner and active; an inactive granting group grants nothing', async () => {
    const g = await createGroup();
    const s = await createGroup();
    const u = await t.factory.loggedIn();
    await member(s.id, u.email);
    await grantGroup(g.id, s.id, 'usergroup.read');
    const newOwner = await t.factory.user();
    const name = unique('renamed');
    const res = await t.http().post(`/user_group/${g.id}`).set(bearer(admin.jwt)).send({ name, owner: newOwner.email });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name, owner: { id: newOwner.user.id } });
    await t.http().post(`/user_group/${s.id}`).set(bearer(admin.jwt)).send({ active: false }).expect(200);
    expect((await t.http().get(`/user_group/${g.id}`).set(bearer(u.jwt))).status).toBe(404);
    const dup = await t.http().post(`/user_group/${g.id}`).set(bearer(admin.jwt)).send({ name: s.name });
    expect(dup.status).toBe(409);
  });
});

describe('no enumeration through groups', () => {
  it('answers a non-admin the same for an unknown address as for a user outside the group, and never says system_admin', async () => {
    const owner = await t.factory.loggedIn();
    const g = await createGroup({ owner: owner.email });
    const reader = await t.factory.loggedIn();
    const writer = await t.factory.loggedIn();
    await grantUser(g.id, reader.email, 'usergroup.read');
    await grantUser(g.id, writer.email, 'usergroup.write');
    const insider = await t.factory.user();
    await member(g.id, insider.email);
    const outsider = await t.factory.user();
    const nobody = `${unique('nobody')}@example.test`;

    const effective = async (caller: Actor, who: string) => {
      const res = await t.http().get(`/user_group/${g.id}/effective/${who}`).set(bearer(caller.jwt));
      return [res.status, res.body.code ?? res.body];
    };
    // Unknown address and known outsider: the same answer.
    expect(await effective(reader, nobody)).toEqual([404, 'not_found']);
    expect(await effective(reader, outsider.email)).toEqual([404, 'not_found']);
    expect(await effective(reader, `email=${outsider.email.toUpperCase()}`)).toEqual([404, 'not_found']);
    // People the group shows its readers (and the caller themself) can be named by address.
    expect(await effective(reader, insider.email)).toEqual([200, { permission: 'usergroup.read', via: { type: 'member' } }]);
    expect(await effective(reader, owner.email)).toEqual([200, { permission: 'usergroup.admin', via: { type: 'owner' } }]);
    expect(await effective(reader, reader.email)).toEqual([200, { permission: 'usergroup.read', via: { type: 'user_grant' } }]);
    // A UUID nobody can guess finds anyone; a system admin's implicit admin is not shown to non-admins.
    expect(await effective(reader, outsider.user.id)).toEqual([200, { permission: 'usergroup.none', via: { type: 'none' } }]);
    expect(await effective(reader, admin.user.id)).toEqual([200, { permission: 'usergroup.none', via: { type: 'none' } }]);
    await member(g.id, admin.email);
    expect(await effective(reader, admin.email)).toEqual([200, { permission: 'usergroup.read', via: { type: 'member' } }]);
    // System admins see everything as it is.
    expect(await effective(admin, admin.email)).toEqual([200, { permission: 'usergroup.admin', via: { type: 'system_admin' } }]);
    expect(await effective(admin, outsider.email)).toEqual([200, { permission: 'usergroup.none', via: { type: 'none' } }]);
    expect(await effective(admin, nobody)).toEqual([404, 'not_found']);

    // Adding by address: the same 404 for an unknown address and for a known outsider, nothing added.
    const put = async (who: string) => {
      const res = await t.http().put(`/user_group/${g.id}/member/${who}`).set(bearer(writer.jwt));
      return [res.status, res.body.code ?? res.body];
    };
    expect(await put(nobody)).toEqual([404, 'not_found']);
    expect(await put(outsider.email)).toEqual([404, 'not_found']);
    expect(await t.knex('user_group_members').where({ group_id: g.id, user_id: outsider.user.id })).toHaveLength(0);
    expect(await put(outsider.user.id)).toEqual([201, { added: true }]);
    expect(await put(outsider.email)).toEqual([200, { added: false }]); // now a member: shown
    // Granting and handing the group on follow the same rule for its admins.
    const heir = await t.factory.user();
    const grant = await t.http().put(`/user_group/${g.id}/grant/user/${heir.email}`).set(bearer(owner.jwt)).send({ permission: 'usergroup.read' });
    expect([grant.status, grant.body.code]).toEqual([404, 'not_found']);
    const handOn = await t.http().post(`/user_group/${g.id}`).set(bearer(owner.jwt)).send({ owner: heir.email });
    expect([handOn.status, handOn.body.code]).toEqual([404, 'not_found']);
  });

  it('looks an address up in one query whether or not it has an account', async () => {
    const g = await createGroup();
    const reader = await t.factory.loggedIn();
    await grantUser(g.id, reader.email, 'usergroup.read');
    const outsider = await t.factory.user();
    const queries = async (who: string) =>
      (await captureQueries(t.knex, () => t.http().get(`/user_group/${g.id}/effective/${who}`).set(bearer(reader.jwt)).expect(404))).map((q) => q.replace(/\$\d+/g, '?'));
    expect(await queries(outsider.email)).toEqual(await queries(`${unique('nobody')}@example.test`));
  });
});

describe('concurrent deletes', () => {
  it('lets exactly one of 20 concurrent deletes of a group win; the others get 404', async () => {
    const g = await createGroup();
    const results = await Promise.all(Array.from({ length: 20 }, () => t.http().delete(`/user_group/${g.id}`).set(bearer(admin.jwt))));
    expect(results.map((r) => r.status).sort()).toEqual([204, ...Array(19).fill(404)]);
    expect(await t.knex('user_groups').where({ id: g.id })).toHaveLength(0);
  });

  it('answers writes racing a group delete with 404, never 500', async () => {
    const g = await createGroup();
    const users = await Promise.all(Array.from({ length: 10 }, () => t.factory.user()));
    const results = await Promise.all([
      t.http().delete(`/user_group/${g.id}`).set(bearer(admin.jwt)),
      ...users.map((u) => t.http().put(`/user_group/${g.id}/member/${u.user.id}`).set(bearer(admin.jwt))),
      ...users.map((u) => t.http().put(`/user_group/${g.id}/grant/user/${u.user.id}`).set(bearer(admin.jwt)).send({ permission: 'usergroup.read' })),
      t.http().post(`/user_group/${g.id}`).set(bearer(admin.jwt)).send({ description: 'late' }),
    ]);
    expect(results[0].status).toBe(204);
    for (const r of results.slice(1)) expect([200, 201, 404]).toContain(r.status);
    expect(await t.knex('user_group_members').where({ group_id: g.id })).toHaveLength(0);
  });
});
