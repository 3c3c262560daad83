import type { GroupPermission, UserGroup } from '../../src/domain/groups';
import type { User } from '../../src/domain/types';
import { KnexGroupStore, type GroupListQuery } from '../../src/stores/group-store';
import { KnexUserStore } from '../../src/stores/user-store';
import { onPostgres, openTestDatabase } from '../helpers/test-database';
import { byNameC, explainLast, indexesUsed, isAfter, mostRowsRead } from './plans';

/**
 * KnexGroupStore.list and .members on this run's database: who sees which groups, in what
 * order, page after page, and that a page reads only a page's worth of rows however many groups
 * and members there are.
 */

type Db = Awaited<ReturnType<typeof openTestDatabase>>;

async function makeUser(users: KnexUserStore, name: string): Promise<User> {
  return users.insert({ name, email: `${name.replace(/\W/g, '') || 'x'}.${Math.random().toString(36).slice(2)}@example.test`, firstName: null, lastName: null, passwordHash: null, isAdmin: false, forcePasswordChange: false });
}

describe('KnexGroupStore.list and members', () => {
  let db: Db;
  let groups: KnexGroupStore;
  let users: KnexUserStore;
  let owner: User;
  let reader: User;
  let outsider: User;
  let all: UserGroup[];
  const readable = new Map<string, string>(); // group id -> why the reader sees it

  beforeAll(async () => {
    db = await openTestDatabase();
    groups = new KnexGroupStore(db.knex);
    users = new KnexUserStore(db.knex);
    owner = await makeUser(users, 'owner');
    reader = await makeUser(users, 'reader');
    outsider = await makeUser(users, 'outsider');
    const group = (name: string, options: { owner?: User; active?: boolean } = {}) =>
      groups.insert({ name, description: '', active: options.active ?? true, ownerId: (options.owner ?? owner).id });
    // Names whose "C" order differs from a linguistic one.
    const sources = { active: await group('Source active'), inactive: await group('source inactive', { active: false }) };
    await groups.addMember(sources.active.id, reader.id);
    await groups.addMember(sources.inactive.id, reader.id);
    const grant = (g: UserGroup, p: GroupPermission) => groups.setUserGrant(g.id, reader.id, p);
    const viaGroup = (g: UserGroup, source: UserGroup, p: GroupPermission) => groups.setGroupGrant(g.id, source.id, p);
    const cases: [string, string | null, (g: UserGroup) => Promise<unknown>][] = [
      ['Zeta owned', 'owner', async () => undefined],
      ['alpha member', 'member', (g) => groups.addMember(g.id, reader.id)],
      ['Alpha read', 'user_grant', (g) => grant(g, 'usergroup.read')],
      ['ALPHA write', 'user_grant', (g) => grant(g, 'usergroup.write')],
      ['_under none', null, (g) => grant(g, 'usergroup.none')],
      ['%pct via group', 'group_grant', (g) => viaGroup(g, sources.active, 'usergroup.read')],
      ['ébène via group admin', 'group_grant', (g) => viaGroup(g, sources.active, 'usergroup.admin')],
      ['Ébène via inactive group', null, (g) => viaGroup(g, sources.inactive, 'usergroup.admin')],
      ['zz via group none', null, (g) => viaGroup(g, sources.active, 'usergroup.none')],
      ['zz unrelated', null, async () => undefined],
      ['zz member twice', 'member', async (g) => { await groups.addMember(g.id, reader.id); await grant(g, 'usergroup.read'); }],
      ['中文 inactive member', 'member', (g) => groups.addMember(g.id, reader.id)],
    ];
    for (const [name, why, set] of cases) {
      const g = await group(name, { owner: why === 'owner' ? reader : owner, active: !name.includes('inactive member') });
      await set(g);
      if (why) readable.set(g.id, why);
    }
    readable.set(sources.active.id, 'member');
    readable.set(sources.inactive.id, 'member');
    all = await groups.list({ limit: 1000 });
  });
  afterAll(async () => {
    await db.close();
  });

  async function pages(q: Omit<GroupListQuery, 'after'>): Promise<UserGroup[]> {
    const out: UserGroup[] = [];
    let after: GroupListQuery['after'];
    for (;;) {
      const page = await groups.list({ ...q, after });
      out.push(...page);
      if (page.length < q.limit) return out;
      after = { name: page[page.length - 1].name, id: page[page.length - 1].id };
    }
  }

  it('lists every group to a system admin in "C" order, page after page', async () => {
    expect(all.length).toBe(14);
    expect(all.map((g) => g.id)).toEqual([...all].sort(byNameC).map((g) => g.id));
    expect(all.map((g) => g.name).slice(0, 4)).toEqual(['%pct via group', 'ALPHA write', 'Alpha read', 'Source active']);
    expect(all[all.length - 1].name).toBe('中文 inactive member');
    for (const limit of [1, 2, 5]) expect((await pages({ limit })).map((g) => g.id)).toEqual(all.map((g) => g.id));
  });

  it('lists to a user exactly the groups they can read (as the effective permission says), page after page', async () => {
    const expected = all.filter((g) => readable.has(g.id));
    for (const g of all) {
      const effective = await groups.effective(g.id, reader.id);
      expect([g.name, effective.permission !== 'usergroup.none']).toEqual([g.name, readable.has(g.id)]);
    }
    for (const limit of [1, 2, 3, 100]) {
      const seen = await pages({ limit, readableBy: reader.id });
      expect(seen.map((g) => g.name)).toEqual(expected.map((g) => g.name));
      expect(seen).toEqual(expected); // owner's name and every other field as the admin list has them
    }
    // After a cursor in the middle, whatever the cursor's name sorts next to.
    for (const at of all) {
      const after = { name: at.name, id: at.id };
      const page = await groups.list({ limit: 100, readableBy: reader.id, after });
      expect(page.map((g) => g.id)).toEqual(expected.filter((g) => isAfter(g, after)).map((g) => g.id));
    }
    expect(await groups.list({ limit: 100, readableBy: outsider.id })).toEqual([]);
  });

  it('pages members by name in "C" order', async () => {
    const g = await groups.insert({ name: 'members', description: '', active: true, ownerId: owner.id });
    const names = ['zed', 'Zed', 'alice', 'ALICE', 'Ébène', 'ébène', 'bob_', 'bob%', '中文'];
    const members: User[] = [];
    for (const name of names) {
      const u = await makeUser(users, name);
      await groups.addMember(g.id, u.id);
      members.push(u);
    }
    members.sort(byNameC);
    expect(members.map((u) => u.name)).toEqual(['ALICE', 'Zed', 'alice', 'bob%', 'bob_', 'zed', 'Ébène', 'ébène', '中文']);
    for (const limit of [1, 2, 4, 100]) {
      const seen: User[] = [];
      let after: { name: string; id: string } | undefined;
      for (;;) {
        const page = await groups.members(g.id, limit, after);
        seen.push(...page);
        if (page.length < limit) break;
        after = { name: page[page.length - 1].name, id: page[page.length - 1].id };
      }
      expect(seen.map((u) => u.id)).toEqual(members.map((u) => u.id));
    }
  });
});

describe('KnexGroupStore.list and members at a size where the planner cares', () => {
  let db: Db;
  let groups: KnexGroupStore;
  let ownerOfAll: User;
  let memberOfAll: User;
  let memberOfFew: User;
  let granted: User;
  let everyone: string;
  let few: string;
  const MANY = 20_000;

  beforeAll(async () => {
    db = await openTestDatabase();
    groups = new KnexGroupStore(db.knex);
    const users = new KnexUserStore(db.knex);
    ownerOfAll = await makeUser(users, 'owner of all');
    memberOfAll = await makeUser(users, 'member of all');
    memberOfFew = await makeUser(users, 'member of few');
    granted = await makeUser(users, 'granted few');
    await db.knex.raw(
      `insert into users (name, email) select 'filler ' || substr(md5(i::text), 1, 8) || ' ' || i, 'f' || i || '@filler.test' from generate_series(1, ?::int) i`,
      [MANY],
    );
    // Many groups before the few that the users who are not the owner can read (their names sort last).
    await db.knex.raw(
      `insert into user_groups (name, owner_id) select 'group ' || substr(md5(i::text), 1, 8) || ' ' || i, ? from generate_series(1, ?::int) i`,
      [ownerOfAll.id, MANY],
    );
    await db.knex.raw(`insert into user_group_members (group_id, user_id) select id, ? from user_groups`, [memberOfAll.id]);
    const source = await groups.insert({ name: 'source', description: '', active: true, ownerId: ownerOfAll.id });
    for (const name of ['zz one', 'zz two', 'zz three']) {
      const g = await groups.insert({ name, description: '', active: true, ownerId: ownerOfAll.id });
      await groups.addMember(g.id, memberOfFew.id);
      await groups.setUserGrant(g.id, granted.id, 'usergroup.read');
      await groups.setGroupGrant(g.id, source.id, 'usergroup.read');
    }
    await groups.addMember(source.id, granted.id);
    // A group everybody is in, and one with three members whose names sort last.
    everyone = (await groups.insert({ name: 'everyone', description: '', active: true, ownerId: ownerOfAll.id })).id;
    await db.knex.raw(`insert into user_group_members (group_id, user_id) select ?, id from users`, [everyone]);
    few = (await groups.insert({ name: 'few', description: '', active: true, ownerId: ownerOfAll.id })).id;
    for (const name of ['zz late a', 'zz late b', 'ZZ late c']) await groups.addMember(few, (await makeUser(users, name)).id);
    await db.knex.raw('analyze users, user_groups, user_group_members, user_group_grants');
  }, 60_000);
  afterAll(async () => {
    await db.close();
  });

  const after = { name: 'group 8', id: '00000000-0000-0000-0000-000000000000' };
  const cases: [string, () => Promise<unknown[]>, number][] = [
    ['all groups, as a system admin', () => groups.list({ limit: 101 }), 101],
    ['all groups after a cursor, as a system admin', () => groups.list({ limit: 101, after }), 101],
    ['the groups their owner reads', () => groups.list({ limit: 101, readableBy: ownerOfAll.id }), 101],
    ['the groups their owner reads, after a cursor', () => groups.list({ limit: 101, readableBy: ownerOfAll.id, after }), 101],
    ['the groups a member of all reads', () => groups.list({ limit: 101, readableBy: memberOfAll.id }), 101],
    ['the few groups a member reads (sorting last)', () => groups.list({ limit: 101, readableBy: memberOfFew.id }), 4],
    ['the few groups a grantee reads', () => groups.list({ limit: 101, readableBy: granted.id }), 5],
    ['the members of a group of everyone', () => groups.members(everyone, 101), 101],
    ['the members of a group of everyone, after a cursor', () => groups.members(everyone, 101, { name: 'filler 8', id: after.id }), 101],
    ['the few members of a group (sorting last)', () => groups.members(few, 101), 3],
  ];

  it.each(cases)('reads %s without walking every group or user', async (_what, run, count) => {
    expect(await run()).toHaveLength(count);
    const plan = await explainLast(db.knex, run);
    if (mostRowsRead(plan) >= 500) console.log(JSON.stringify(plan)); // which step read them
    expect(mostRowsRead(plan)).toBeLessThan(500);
    if (onPostgres) expect(indexesUsed(plan).length).toBeGreaterThan(0);
  });
});
