import type { Knex } from 'knex';
import { ConflictError, GroupNotFoundError } from '../domain/errors';
import { nameSkeleton } from '../domain/name-skeleton';
import { permissionOfRank, type Effective, type GroupGrant, type GroupPermission, type Membership, type UserGroup } from '../domain/groups';
import type { User } from '../domain/types';
import { isForeignKeyViolation, isUniqueViolation } from './pg-errors';
import { USER_COLUMNS, toUser } from './user-store';

/** `usergroup.read` ↔ `read` in the grants table. */
const short = (p: GroupPermission) => p.slice('usergroup.'.length);
const RANK_SQL = `case permission when 'admin' then 3 when 'write' then 2 when 'read' then 1 else 0 end`;

/**
 * Whether user :v may read the group `alias` names (owns it, is a member, holds a direct grant
 * other than none, or is a member of an active group holding one): may see its members.
 */
const readableBy = (alias: string) => `(
  ${alias}.owner_id = :v
  or exists (select 1 from user_group_members rm where rm.group_id = ${alias}.id and rm.user_id = :v)
  or exists (select 1 from user_group_grants rg where rg.group_id = ${alias}.id and rg.grantee_user_id = :v and rg.permission <> 'none')
  or exists (select 1 from user_group_grants rg
               join user_group_members rm on rm.group_id = rg.grantee_group_id and rm.user_id = :v
               join user_groups rs on rs.id = rg.grantee_group_id and rs.active
              where rg.group_id = ${alias}.id and rg.permission <> 'none'))`;

/**
 * Every way user :u holds a permission on group :g, one row each (rank, how, through which
 * group). The owner holds admin; a direct grant; a grant to an active group the user is a member
 * of (one level deep); membership itself gives read. The caller takes the highest.
 */
const SOURCES_SQL = `
  select 3 as rank, 'owner' as via, cast(null as uuid) as via_id, cast(null as text) as via_name, 1 as pri
    from user_groups where id = :g and owner_id = :u
  union all
  select ${RANK_SQL}, 'user_grant', null, null, 2
    from user_group_grants where group_id = :g and grantee_user_id = :u
  union all
  select ${RANK_SQL.replace('permission', 'gr.permission')}, 'group_grant', s.id, s.name, 3
    from user_group_grants gr
    join user_group_members m on m.group_id = gr.grantee_group_id and m.user_id = :u
    join user_groups s on s.id = gr.grantee_group_id and s.active
    where gr.group_id = :g /*viewer*/
  union all
  select 1, 'member', null, null, 4
    from user_group_members where group_id = :g and user_id = :u`;

interface GroupRow {
  id: string;
  name: string;
  description: string;
  active: boolean;
  owner_id: string;
  owner_name: string;
  created: Date;
}

const GROUP_COLUMNS = [
  'user_groups.id',
  'user_groups.name',
  'user_groups.description',
  'user_groups.active',
  'user_groups.owner_id',
  'owner.name as owner_name',
  'user_groups.created',
];

function toGroup(r: GroupRow): UserGroup {
  return { id: r.id, name: r.name, description: r.description, active: r.active, owner: { id: r.owner_id, name: r.owner_name }, created: r.created };
}

export interface GroupListQuery {
  limit: number;
  after?: { name: string; id: string };
  /** Only groups this user can read; undefined: all (system admins). */
  readableBy?: string;
}

export interface GroupStore {
  findById(id: string): Promise<UserGroup | undefined>;
  findByName(name: string): Promise<UserGroup | undefined>;
  /** ConflictError when a group has the name or one confusable with it (the same skeleton); so does update. */
  insert(group: { name: string; description: string; active: boolean; ownerId: string }): Promise<UserGroup>;
  update(id: string, patch: { name?: string; description?: string; active?: boolean; ownerId?: string }): Promise<UserGroup>;
  delete(id: string): Promise<boolean>;
  list(query: GroupListQuery): Promise<UserGroup[]>;
  members(groupId: string, limit: number, after?: { name: string; id: string }): Promise<User[]>;
  countMembers(groupId: string): Promise<number>;
  /** true when added, false when already a member. */
  addMember(groupId: string, userId: string): Promise<boolean>;
  removeMember(groupId: string, userId: string): Promise<boolean>;
  grants(groupId: string): Promise<GroupGrant[]>;
  setUserGrant(groupId: string, userId: string, permission: GroupPermission): Promise<void>;
  deleteUserGrant(groupId: string, userId: string): Promise<boolean>;
  /** Locks the granted group's membership first (see lockMembership), so an add under way there is checked against this grant. */
  setGroupGrant(groupId: string, sourceId: string, permission: GroupPermission): Promise<void>;
  deleteGroupGrant(groupId: string, sourceId: string): Promise<boolean>;
  /**
   * The user's winning permission on the group and where it comes from: one query. With
   * `viewer`, as that user may know it: grants to groups count only through groups the viewer
   * can read (membership of any other is not the viewer's to learn).
   */
  effective(groupId: string, userId: string, viewer?: string): Promise<Effective>;
  /** The groups the user is a member of, with the user's effective permission on each: one query. */
  membershipsOf(userId: string): Promise<Membership[]>;
  /**
   * Holds the group's membership still for the transaction against a grant being given to the
   * group meanwhile (setGroupGrant takes the other side of this lock): whichever comes second
   * sees what the first did. False when the group is gone.
   */
  lockMembership(groupId: string): Promise<boolean>;
  /**
   * The grants the group holds on other groups (active or not: it may be made active again)
   * that are above what the user holds on those groups now: what membership would confer beyond
   * the user's own permissions. One query.
   */
  confersBeyond(groupId: string, userId: string): Promise<{ id: string; name: string; permission: GroupPermission }[]>;
  /** A deactivated user leaves every group and loses every grant. */
  removeUserEverywhere(userId: string): Promise<void>;
  /** An active user the group shows its readers (owner, member or grantee), by email or name: one query either way. */
  findShownUser(groupId: string, ref: { email: string } | { name: string }): Promise<User | undefined>;
}

/** A group deleted under a concurrent write: its rows' foreign keys fail. */
async function orGone<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (isForeignKeyViolation(err)) throw new GroupNotFoundError();
    throw err;
  }
}

export class KnexGroupStore implements GroupStore {
  constructor(private readonly db: Knex) {}

  private base() {
    return this.db('user_groups').join('users as owner', 'owner.id', 'user_groups.owner_id').select(GROUP_COLUMNS);
  }

  async findById(id: string): Promise<UserGroup | undefined> {
    const row = await this.base().where('user_groups.id', id).first();
    return row ? toGroup(row) : undefined;
  }

  async findByName(name: string): Promise<UserGroup | undefined> {
    const row = await this.base().where('user_groups.name', name).first();
    return row ? toGroup(row) : undefined;
  }

  async insert(group: { name: string; description: string; active: boolean; ownerId: string }): Promise<UserGroup> {
    try {
      const [{ id }] = await this.db('user_groups')
        .insert({ name: group.name, name_skeleton: nameSkeleton(group.name), description: group.description, active: group.active, owner_id: group.ownerId })
        .returning(['id']);
      return (await this.findById(id))!;
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError(`a user group named ${group.name} already exists`);
      throw err;
    }
  }

  async update(id: string, patch: { name?: string; description?: string; active?: boolean; ownerId?: string }): Promise<UserGroup> {
    const row: Record<string, unknown> = {};
    if (patch.name !== undefined) Object.assign(row, { name: patch.name, name_skeleton: nameSkeleton(patch.name) });
    if (patch.description !== undefined) row.description = patch.description;
    if (patch.active !== undefined) row.active = patch.active;
    if (patch.ownerId !== undefined) row.owner_id = patch.ownerId;
    try {
      if (Object.keys(row).length) await this.db('user_groups').where('id', id).update(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError(`a user group named ${patch.name} already exists`);
      throw err;
    }
    const updated = await this.findById(id);
    if (!updated) throw new GroupNotFoundError(); // deleted meanwhile
    return updated;
  }

  async delete(id: string): Promise<boolean> {
    return (await this.db('user_groups').where('id', id).delete()) > 0;
  }

  /**
   * A page of groups in (name, id) order. A system admin's page walks the name index. A user's
   * page is the union of four pages, one per way of reading a group (owner, member, direct grant,
   * grant to an active group the user is a member of), each limited on its own, so that each can
   * be read in the cheaper of two ways: by walking the groups in name order while the user can
   * read most of them, or by fetching the few the user has and sorting them. One filter over the
   * whole name index instead would read every group to find a user's last few.
   */
  async list(query: GroupListQuery): Promise<UserGroup[]> {
    if (!query.readableBy) {
      const q = this.base();
      if (query.after) q.whereRaw('(user_groups.name collate "C", user_groups.id) > (? collate "C", ?::uuid)', [query.after.name, query.after.id]);
      const rows = await q.orderByRaw('user_groups.name collate "C", user_groups.id').limit(query.limit);
      return rows.map(toGroup);
    }
    const after = query.after ? 'and (g.name collate "C", g.id) > (cast(:afterName as text) collate "C", cast(:afterId as uuid))' : '';
    const page = `${after} order by g.name collate "C", g.id limit :limit`;
    const columns = 'g.id, g.name, g.description, g.active, g.owner_id, g.created';
    const { rows } = await this.db.raw<{ rows: GroupRow[] }>(
      `select readable.*, (select owner.name from users owner where owner.id = readable.owner_id) as owner_name
         from (
           (select ${columns} from user_groups g
             where g.owner_id = :u ${page})
           union
           (select ${columns} from user_groups g
             where exists (select 1 from user_group_members m where m.group_id = g.id and m.user_id = :u) ${page})
           union
           (select ${columns} from user_groups g
             where exists (select 1 from user_group_grants gr
                            where gr.group_id = g.id and gr.grantee_user_id = :u and gr.permission <> 'none') ${page})
           union
           (select ${columns} from user_groups g
             where exists (select 1 from user_group_grants gr
                             join user_group_members m on m.group_id = gr.grantee_group_id and m.user_id = :u
                             join user_groups s on s.id = gr.grantee_group_id and s.active
                            where gr.group_id = g.id and gr.permission <> 'none') ${page})
         ) readable
        order by readable.name collate "C", readable.id
        limit :limit`,
      { u: query.readableBy, limit: query.limit, ...(query.after ? { afterName: query.after.name, afterId: query.after.id } : {}) },
    );
    return rows.map(toGroup);
  }

  async members(groupId: string, limit: number, after?: { name: string; id: string }): Promise<User[]> {
    const q = this.db('user_group_members').join('users', 'users.id', 'user_group_members.user_id').select(USER_COLUMNS).where('user_group_members.group_id', groupId);
    if (after) q.whereRaw('(users.name collate "C", users.id) > (? collate "C", ?::uuid)', [after.name, after.id]);
    const rows = await q.orderByRaw('users.name collate "C", users.id').limit(limit);
    return rows.map(toUser);
  }

  async countMembers(groupId: string): Promise<number> {
    const row = await this.db('user_group_members').count<{ count: string }>('* as count').where('group_id', groupId).first();
    return Number(row?.count ?? 0);
  }

  async addMember(groupId: string, userId: string): Promise<boolean> {
    const rows = await orGone(this.db('user_group_members').insert({ group_id: groupId, user_id: userId }).onConflict(['group_id', 'user_id']).ignore().returning(['user_id']));
    return rows.length > 0;
  }

  async removeMember(groupId: string, userId: string): Promise<boolean> {
    return (await this.db('user_group_members').where({ group_id: groupId, user_id: userId }).delete()) > 0;
  }

  async grants(groupId: string): Promise<GroupGrant[]> {
    const { rows } = await this.db.raw<{ rows: { type: 'user' | 'user_group'; id: string; name: string; permission: string; origin: 'owner' | 'grant' }[] }>(
      `select type, id, name, permission, origin from (
         select 'user' as type, u.id, u.name, 'admin' as permission, 'owner' as origin, 0 as pri
           from user_groups g join users u on u.id = g.owner_id where g.id = :g
         union all
         select 'user', u.id, u.name, gr.permission, 'grant', 1
           from user_group_grants gr join users u on u.id = gr.grantee_user_id where gr.group_id = :g
         union all
         select 'user_group', s.id, s.name, gr.permission, 'grant', 2
           from user_group_grants gr join user_groups s on s.id = gr.grantee_group_id where gr.group_id = :g
       ) grants order by pri, name collate "C", id`,
      { g: groupId },
    );
    return rows.map((r) => ({ type: r.type, id: r.id, name: r.name, permission: `usergroup.${r.permission}` as GroupPermission, origin: r.origin }));
  }

  async setUserGrant(groupId: string, userId: string, permission: GroupPermission): Promise<void> {
    await orGone(this.db.raw(
      `insert into user_group_grants (group_id, grantee_user_id, permission) values (?, ?, ?)
       on conflict (group_id, grantee_user_id) where grantee_user_id is not null do update set permission = excluded.permission`,
      [groupId, userId, short(permission)],
    ));
  }

  async deleteUserGrant(groupId: string, userId: string): Promise<boolean> {
    return (await this.db('user_group_grants').where({ group_id: groupId, grantee_user_id: userId }).delete()) > 0;
  }

  async setGroupGrant(groupId: string, sourceId: string, permission: GroupPermission): Promise<void> {
    // Conflicts with lockMembership's share lock (and not with the foreign keys' key-share locks).
    await this.db('user_groups').select('id').where('id', sourceId).forNoKeyUpdate();
    await orGone(this.db.raw(
      `insert into user_group_grants (group_id, grantee_group_id, permission) values (?, ?, ?)
       on conflict (group_id, grantee_group_id) where grantee_group_id is not null do update set permission = excluded.permission`,
      [groupId, sourceId, short(permission)],
    ));
  }

  async deleteGroupGrant(groupId: string, sourceId: string): Promise<boolean> {
    return (await this.db('user_group_grants').where({ group_id: groupId, grantee_group_id: sourceId }).delete()) > 0;
  }

  async effective(groupId: string, userId: string, viewer?: string): Promise<Effective> {
    const sources = viewer === undefined ? SOURCES_SQL : SOURCES_SQL.replace('/*viewer*/', `and ${readableBy('s')}`);
    const { rows } = await this.db.raw<{ rows: { rank: number; via: string; via_id: string | null; via_name: string | null }[] }>(
      `select rank, via, via_id, via_name from (${sources}) sources order by rank desc, pri asc limit 1`,
      { g: groupId, u: userId, ...(viewer === undefined ? {} : { v: viewer }) },
    );
    const best = rows[0];
    if (!best || best.rank === 0) return { permission: 'usergroup.none', via: { type: 'none' } };
    const permission = permissionOfRank(best.rank);
    if (best.via === 'group_grant') return { permission, via: { type: 'group_grant', group: { id: best.via_id!, name: best.via_name! } } };
    return { permission, via: { type: best.via as 'owner' | 'user_grant' | 'member' } };
  }

  async membershipsOf(userId: string): Promise<Membership[]> {
    const { rows } = await this.db.raw<{ rows: { id: string; name: string; rank: number }[] }>(
      `select g.id, g.name, best.rank
         from user_group_members mine
         join user_groups g on g.id = mine.group_id
         cross join lateral (
           select max(rank) as rank from (${SOURCES_SQL.replace(/:g/g, 'g.id')}) sources
         ) best
        where mine.user_id = :u
        order by g.name collate "C", g.id`,
      { u: userId },
    );
    return rows.map((r) => ({ id: r.id, name: r.name, permission: permissionOfRank(Number(r.rank)) }));
  }

  async lockMembership(groupId: string): Promise<boolean> {
    return (await this.db('user_groups').select('id').where('id', groupId).forShare()).length > 0;
  }

  async confersBeyond(groupId: string, userId: string): Promise<{ id: string; name: string; permission: GroupPermission }[]> {
    const { rows } = await this.db.raw<{ rows: { id: string; name: string; permission: string }[] }>(
      `select h.id, h.name, gr.permission
         from user_group_grants gr
         join user_groups h on h.id = gr.group_id
         cross join lateral (
           select coalesce(max(rank), 0) as rank from (${SOURCES_SQL.replace(/:g/g, 'h.id')}) sources
         ) held
        where gr.grantee_group_id = :g
          and ${RANK_SQL.replace('permission', 'gr.permission')} > held.rank
        order by h.name collate "C", h.id`,
      { g: groupId, u: userId },
    );
    return rows.map((r) => ({ id: r.id, name: r.name, permission: `usergroup.${r.permission}` as GroupPermission }));
  }

  async findShownUser(groupId: string, ref: { email: string } | { name: string }): Promise<User | undefined> {
    const q = this.db('users')
      .select(USER_COLUMNS)
      .whereNull('users.deactivated')
      .where((shown) =>
        shown
          .whereIn('users.id', this.db('user_groups').select('owner_id').where('id', groupId))
          .orWhereIn('users.id', this.db('user_group_members').select('user_id').where('group_id', groupId))
          .orWhereIn('users.id', this.db('user_group_grants').select('grantee_user_id').where('group_id', groupId).whereNotNull('grantee_user_id')),
      );
    if ('email' in ref) q.whereRaw('lower(users.email) = lower(?)', [ref.email]);
    else q.where('users.name', ref.name);
    const row = await q.first();
    return row ? toUser(row) : undefined;
  }

  async removeUserEverywhere(userId: string): Promise<void> {
    await this.db('user_group_members').where('user_id', userId).delete();
    await this.db('user_group_grants').where('grantee_user_id', userId).delete();
  }
}
