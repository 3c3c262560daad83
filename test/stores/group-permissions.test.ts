import crypto from 'node:crypto';
import type { Database } from '../../src/db/database';
import { createStores, type Stores } from '../../src/stores';
import { openTestDatabase } from '../helpers/test-database';

// The group-permission query (KnexGroupStore.effective and membershipsOf), on the database
// itself: every way of holding a permission, the highest winning, and what does not count.

let db: Database;
let s: Stores;
beforeAll(async () => {
  db = await openTestDatabase();
  s = createStores(db.knex);
});
afterAll(async () => {
  await db.close();
});

const user = async (name = `u-${crypto.randomBytes(4).toString('hex')}`) =>
  s.users.insert({ name, email: `${name}@example.test`, firstName: null, lastName: null, passwordHash: null, isAdmin: false, forcePasswordChange: false });
const group = async (ownerId: string, active = true) => s.groups.insert({ name: `g-${crypto.randomBytes(4).toString('hex')}`, description: '', active, ownerId });

describe('KnexGroupStore.effective', () => {
  it('names each way of holding a permission, and the highest wins', async () => {
    const owner = await user();
    const g = await group(owner.id);
    const u = await user();
    expect(await s.groups.effective(g.id, u.id)).toEqual({ permission: 'usergroup.none', via: { type: 'none' } });
    expect(await s.groups.effective(g.id, owner.id)).toEqual({ permission: 'usergroup.admin', via: { type: 'owner' } });

    await s.groups.addMember(g.id, u.id);
    expect(await s.groups.effective(g.id, u.id)).toEqual({ permission: 'usergroup.read', via: { type: 'member' } });
    // A "none" grant does not take away what membership gives.
    await s.groups.setUserGrant(g.id, u.id, 'usergroup.none');
    expect(await s.groups.effective(g.id, u.id)).toEqual({ permission: 'usergroup.read', via: { type: 'member' } });
    await s.groups.setUserGrant(g.id, u.id, 'usergroup.write');
    expect(await s.groups.effective(g.id, u.id)).toEqual({ permission: 'usergroup.write', via: { type: 'user_grant' } });

    // A grant to a group the user is a member of, one level deep.
    const source = await group(owner.id);
    await s.groups.addMember(source.id, u.id);
    await s.groups.setGroupGrant(g.id, source.id, 'usergroup.admin');
    expect(await s.groups.effective(g.id, u.id)).toEqual({ permission: 'usergroup.admin', via: { type: 'group_grant', group: { id: source.id, name: source.name } } });
  });

  it('ignores grants through an inactive group and grants two levels deep', async () => {
    const owner = await user();
    const g = await group(owner.id);
    const u = await user();
    const inactive = await group(owner.id, false);
    await s.groups.addMember(inactive.id, u.id);
    await s.groups.setGroupGrant(g.id, inactive.id, 'usergroup.write');
    expect(await s.groups.effective(g.id, u.id)).toEqual({ permission: 'usergroup.none', via: { type: 'none' } });

    // u is in A; A holds admin on B; B holds write on g: u gets nothing on g (one level only).
    const a = await group(owner.id);
    const b = await group(owner.id);
    await s.groups.addMember(a.id, u.id);
    await s.groups.setGroupGrant(b.id, a.id, 'usergroup.admin');
    await s.groups.setGroupGrant(g.id, b.id, 'usergroup.write');
    expect(await s.groups.effective(g.id, u.id)).toEqual({ permission: 'usergroup.none', via: { type: 'none' } });
    expect((await s.groups.effective(b.id, u.id)).permission).toBe('usergroup.admin');
  });

  it('prefers the owner over an equal grant, and a direct grant over an equal group grant', async () => {
    const owner = await user();
    const g = await group(owner.id);
    await s.groups.setUserGrant(g.id, owner.id, 'usergroup.admin');
    expect((await s.groups.effective(g.id, owner.id)).via).toEqual({ type: 'owner' });
    const u = await user();
    const source = await group(owner.id);
    await s.groups.addMember(source.id, u.id);
    await s.groups.setGroupGrant(g.id, source.id, 'usergroup.write');
    await s.groups.setUserGrant(g.id, u.id, 'usergroup.write');
    expect((await s.groups.effective(g.id, u.id)).via).toEqual({ type: 'user_grant' });
  });
});

describe('KnexGroupStore.membershipsOf', () => {
  it('lists the groups a user is a member of with their effective permission on each, by name', async () => {
    const owner = await user();
    const u = await user();
    const [g1, g2, g3] = [await group(owner.id), await group(owner.id), await group(owner.id)];
    const outside = await group(owner.id);
    await s.groups.setUserGrant(outside.id, u.id, 'usergroup.admin'); // a grant without membership is not a membership
    await s.groups.addMember(g1.id, u.id);
    await s.groups.addMember(g2.id, u.id);
    await s.groups.setUserGrant(g2.id, u.id, 'usergroup.write');
    await s.groups.addMember(g3.id, u.id);
    await s.groups.setGroupGrant(g3.id, g1.id, 'usergroup.admin');
    const expected = [
      { id: g1.id, name: g1.name, permission: 'usergroup.read' },
      { id: g2.id, name: g2.name, permission: 'usergroup.write' },
      { id: g3.id, name: g3.name, permission: 'usergroup.admin' },
    ].sort((a, b) => (a.name < b.name ? -1 : 1)); // ASCII names: byte order is string order
    expect(await s.groups.membershipsOf(u.id)).toEqual(expected);
    expect(await s.groups.membershipsOf((await user()).id)).toEqual([]);
  });
});

describe('KnexGroupStore.confersBeyond', () => {
  it('lists the grants a group holds that are above what the user holds on those groups, inactive groups’ too', async () => {
    const owner = await user();
    const g = await group(owner.id);
    const u = await user();
    expect(await s.groups.confersBeyond(g.id, u.id)).toEqual([]);
    const [h1, h2, h3] = [await group(owner.id), await group(owner.id), await group(owner.id)];
    await s.groups.setGroupGrant(h1.id, g.id, 'usergroup.admin');
    await s.groups.setGroupGrant(h2.id, g.id, 'usergroup.read');
    await s.groups.setGroupGrant(h3.id, g.id, 'usergroup.none'); // confers nothing
    const beyond = async () => (await s.groups.confersBeyond(g.id, u.id)).map((x) => [x.id, x.permission]).sort();
    expect(await beyond()).toEqual([[h1.id, 'usergroup.admin'], [h2.id, 'usergroup.read']].sort());
    // Membership of h2 gives read there: enough for h2, not for h1.
    await s.groups.addMember(h2.id, u.id);
    expect(await beyond()).toEqual([[h1.id, 'usergroup.admin']]);
    // Write on h1 is still less than admin; owning h1 is enough.
    await s.groups.setUserGrant(h1.id, u.id, 'usergroup.write');
    expect(await beyond()).toEqual([[h1.id, 'usergroup.admin']]);
    await s.groups.update(h1.id, { ownerId: u.id });
    expect(await beyond()).toEqual([]);
    // An inactive group's grants count (it may be made active again).
    const idle = await group(owner.id, false);
    const h4 = await group(owner.id);
    await s.groups.setGroupGrant(h4.id, idle.id, 'usergroup.write');
    expect((await s.groups.confersBeyond(idle.id, u.id)).map((x) => x.id)).toEqual([h4.id]);
    // A member of the group already holds what it confers.
    const h5 = await group(owner.id);
    await s.groups.setGroupGrant(h5.id, g.id, 'usergroup.write');
    expect((await s.groups.confersBeyond(g.id, u.id)).map((x) => x.id)).toEqual([h5.id]);
    await s.groups.addMember(g.id, u.id);
    expect(await s.groups.confersBeyond(g.id, u.id)).toEqual([]);
  });
});
