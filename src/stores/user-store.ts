import type { Knex } from 'knex';
import type { Pool } from 'pg';
import { runPrepared, type PreparedStatement } from '../db/prepared';
import { ConflictError } from '../domain/errors';
import { nameSkeleton } from '../domain/name-skeleton';
import type { User, UserChanges, UserRef, UserWithPassword } from '../domain/types';
import { isUniqueViolation } from './pg-errors';

export const USER_COLUMNS = [
  'users.id',
  'users.name',
  'users.email',
  'users.first_name',
  'users.last_name',
  'users.is_admin',
  'users.force_password_change',
  'users.created',
  'users.last_login',
  'users.last_seen',
  'users.deactivated',
  'users.email_verified',
  'users.name_trusted',
  'users.mfa_enabled',
] as const;

/**
 * The columns of a single user shown in full (`UserDetailed`): the list columns and the address
 * awaiting confirmation. List pages read `USER_COLUMNS` only.
 */
export const USER_DETAIL_COLUMNS = [...USER_COLUMNS, 'users.pending_email', 'users.pending_email_expires'] as const;
const RETURNING_DETAIL = USER_DETAIL_COLUMNS.map((c) => c.replace('users.', ''));

export interface UserRow {
  id: string;
  name: string;
  email: string;
  first_name: string | null;
  last_name: string | null;
  is_admin: boolean;
  force_password_change: boolean;
  created: Date;
  last_login: Date | null;
  last_seen: Date | null;
  deactivated: Date | null;
  password_hash?: string | null;
  email_verified: boolean;
  name_trusted: boolean;
  mfa_enabled: boolean;
  pending_email?: string | null;
  pending_email_expires?: Date | null;
}

export function toUser(row: UserRow): User {
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    firstName: row.first_name,
    lastName: row.last_name,
    isAdmin: row.is_admin,
    forcePasswordChange: row.force_password_change,
    created: row.created,
    lastLogin: row.last_login,
    lastSeen: row.last_seen,
    deactivated: row.deactivated,
    emailVerified: row.email_verified,
    nameTrusted: row.name_trusted,
    pendingEmail: pendingEmailOf(row),
    mfaEnabled: row.mfa_enabled,
  };
}

/**
 * The address awaiting confirmation while its link lives (the database's rows keep it until
 * replaced, confirmed or reverted); undefined when the row was read without it (a list page).
 */
function pendingEmailOf(row: UserRow): string | null | undefined {
  if (row.pending_email === undefined) return undefined;
  if (row.pending_email_expires === undefined) return row.pending_email; // the query has applied the expiry (the token check)
  return row.pending_email && row.pending_email_expires && row.pending_email_expires.getTime() > Date.now() ? row.pending_email : null;
}

export interface UserListQuery {
  limit: number;
  after?: { name: string; id: string };
  prefix?: string;
  isAdmin?: boolean;
  includeDeactivated: boolean;
}

export interface NewUserRow {
  name: string;
  email: string;
  firstName: string | null;
  lastName: string | null;
  passwordHash: string | null;
  isAdmin: boolean;
  forcePasswordChange: boolean;
}

export interface UserStore {
  findById(id: string): Promise<User | undefined>;
  /** An active user by id or email; otherwise the latest deactivated one, so routes can say 410. */
  findByRef(ref: UserRef): Promise<User | undefined>;
  findActiveWithPassword(ref: UserRef): Promise<UserWithPassword | undefined>;
  findActiveByName(name: string): Promise<User | undefined>;
  /**
   * An active user holding this name, or one confusable with it (the same skeleton), or this
   * email (a conflict's `user` member; a registration's taken name).
   */
  findActiveHolder(name: string | undefined, email: string | undefined, exceptId?: string): Promise<User | undefined>;
  insert(user: NewUserRow): Promise<User>;
  /**
   * A self-registered user, address not yet verified; undefined (nothing inserted, no error) when
   * an active user holds the name or the address, concurrent registrations included.
   */
  insertUnverified(user: Pick<NewUserRow, 'name' | 'email' | 'passwordHash'>): Promise<User | undefined>;
  /** The address awaiting confirmation (null: none); returns the user as now. */
  setPendingEmail(id: string, pending: { email: string; expires: Date } | null): Promise<User>;
  /**
   * Sets an active user's address (proven: verified), ending any pending change; optionally
   * forces a password change. undefined when the user is not active; ConflictError when an
   * active user holds the address.
   */
  changeEmail(id: string, email: string, options?: { forcePasswordChange?: boolean }): Promise<User | undefined>;
  /** The address is proven; false when the user is not active. */
  markEmailVerified(id: string): Promise<boolean>;
  /**
   * Removes up to `limit` registrations never verified and made before `before` (active, owning
   * no group); returns how many went.
   */
  removeUnverified(before: Date, limit: number): Promise<number>;
  /**
   * A new name counts as the user's own (`nameTrusted`) when an admin sets it (`nameBy: 'admin'`),
   * or when the user does on an account whose address is verified.
   */
  update(id: string, changes: UserChanges, nameBy?: 'admin' | 'self'): Promise<User>;
  setPassword(id: string, passwordHash: string | null, forcePasswordChange: boolean): Promise<void>;
  setForcePasswordChange(id: string, force: boolean): Promise<void>;
  /** Replaces a hash with one of the same password at another cost, unless the password changed meanwhile. */
  replacePasswordHash(id: string, old: string, fresh: string): Promise<void>;
  recordLogin(id: string, at: Date): Promise<void>;
  /** false when the user was already deactivated (a concurrent deactivation won). */
  deactivate(id: string, at: Date): Promise<boolean>;
  /**
   * undefined when the user was already active (a concurrent reactivation won). `name` is the
   * user's (a deactivated user's cannot change): its skeleton is written again, since a name
   * kept from before the skeletons has none.
   */
  reactivate(id: string, name: string): Promise<User | undefined>;
  /** Locks the active admins' rows until the transaction ends, then counts them. */
  lockActiveAdminIds(): Promise<string[]>;
  /**
   * An active user, its row locked until the transaction ends (so that concurrent changes to
   * its factors run one after the other); undefined when not active.
   */
  lockActive(id: string): Promise<User | undefined>;
  setMfaEnabled(id: string, enabled: boolean): Promise<void>;
  countActiveAdmins(): Promise<number>;
  list(query: UserListQuery): Promise<User[]>;
}

type ListValue = 'isAdmin' | 'pattern' | 'afterName' | 'afterId' | 'limit';
interface ListShape {
  statement: PreparedStatement;
  values: ListValue[];
}
/** Stand-ins for a list query's values while its shape is rendered. */
const LIST_VALUE = { isAdmin: '\u0000isAdmin', pattern: '\u0000pattern', afterName: '\u0000afterName', afterId: '\u0000afterId' } as const;
const LIST_LIMIT = 987_654_321;

/** The least LIMIT a prefix search is planned with (see KnexUserStore.list). */
export const PREFIX_PLAN_LIMIT = 100;

function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export class KnexUserStore implements UserStore {
  constructor(
    private readonly db: Knex,
    private readonly pool?: Pool,
  ) {}

  async findById(id: string): Promise<User | undefined> {
    const row = await this.db('users').select(USER_DETAIL_COLUMNS).where('id', id).first();
    return row ? toUser(row) : undefined;
  }

  async findByRef(ref: UserRef): Promise<User | undefined> {
    if ('id' in ref) return this.findById(ref.id);
    const row = await this.db('users')
      .select(USER_DETAIL_COLUMNS)
      .whereRaw('lower(email) = lower(?)', [ref.email])
      .orderByRaw('deactivated is not null, deactivated desc')
      .first();
    return row ? toUser(row) : undefined;
  }

  async findActiveWithPassword(ref: UserRef): Promise<UserWithPassword | undefined> {
    const q = this.db('users').select([...USER_COLUMNS, 'users.password_hash']).whereNull('deactivated');
    if ('id' in ref) q.where('id', ref.id);
    else q.whereRaw('lower(email) = lower(?)', [ref.email]);
    const row: UserRow | undefined = await q.first();
    return row ? { ...toUser(row), passwordHash: row.password_hash ?? null } : undefined;
  }

  async findActiveByName(name: string): Promise<User | undefined> {
    const row = await this.db('users').select(USER_COLUMNS).where('name', name).whereNull('deactivated').first();
    return row ? toUser(row) : undefined;
  }

  async findActiveHolder(name: string | undefined, email: string | undefined, exceptId?: string): Promise<User | undefined> {
    const q = this.db('users')
      .select(USER_COLUMNS)
      .whereNull('deactivated')
      .where((w) => {
        // By name too: a name kept from before the skeletons has none (see the migration).
        if (name !== undefined) w.orWhere('name_skeleton', nameSkeleton(name)).orWhere('name', name);
        if (email !== undefined) w.orWhereRaw('lower(email) = lower(?)', [email]);
      });
    if (exceptId) q.whereNot('id', exceptId);
    const row = await q.first();
    return row ? toUser(row) : undefined;
  }

  async insert(user: NewUserRow): Promise<User> {
    try {
      const [row] = await this.db('users')
        .insert({
          name: user.name,
          name_skeleton: nameSkeleton(user.name),
          email: user.email,
          first_name: user.firstName,
          last_name: user.lastName,
          password_hash: user.passwordHash,
          is_admin: user.isAdmin,
          force_password_change: user.forcePasswordChange,
        })
        .returning(USER_COLUMNS.map((c) => c.replace('users.', '')));
      return toUser(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError('a user with that name or email already exists');
      throw err;
    }
  }

  async insertUnverified(user: Pick<NewUserRow, 'name' | 'email' | 'passwordHash'>): Promise<User | undefined> {
    // No conflict target: any unique index (active name, its skeleton, active address) makes it a no-op,
    // after waiting for a concurrent insert of the same to commit or roll back.
    const [row] = await this.db('users')
      .insert({
        name: user.name,
        name_skeleton: nameSkeleton(user.name),
        name_trusted: false,
        email: user.email,
        password_hash: user.passwordHash,
        is_admin: false,
        force_password_change: false,
        email_verified: false,
      })
      .onConflict()
      .ignore()
      .returning(USER_COLUMNS.map((c) => c.replace('users.', '')));
    return row ? toUser(row) : undefined;
  }

  async markEmailVerified(id: string): Promise<boolean> {
    return (await this.db('users').where('id', id).whereNull('deactivated').update({ email_verified: true })) > 0;
  }

  async setPendingEmail(id: string, pending: { email: string; expires: Date } | null): Promise<User> {
    const [row] = await this.db('users')
      .where('id', id)
      .update({ pending_email: pending?.email ?? null, pending_email_expires: pending?.expires ?? null })
      .returning(RETURNING_DETAIL);
    return toUser(row);
  }

  async changeEmail(id: string, email: string, options: { forcePasswordChange?: boolean } = {}): Promise<User | undefined> {
    try {
      const [row] = await this.db('users')
        .where('id', id)
        .whereNull('deactivated')
        .update({
          email,
          email_verified: true,
          pending_email: null,
          pending_email_expires: null,
          ...(options.forcePasswordChange && { force_password_change: true }),
        })
        .returning(RETURNING_DETAIL);
      return row ? toUser(row) : undefined;
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError('an active user now has that email');
      throw err;
    }
  }

  async removeUnverified(before: Date, limit: number): Promise<number> {
    const stale = this.db('users')
      .select('id')
      .where('email_verified', false)
      .whereNull('deactivated')
      .where('created', '<', before)
      .whereNotExists((q) => q.select(this.db.raw('1')).from('user_groups').whereRaw('user_groups.owner_id = users.id'))
      .limit(limit);
    return this.db('users').whereIn('id', stale).delete();
  }

  async update(id: string, changes: UserChanges, nameBy: 'admin' | 'self' = 'admin'): Promise<User> {
    const patch: Record<string, unknown> = {};
    if (changes.name !== undefined) {
      patch.name = changes.name;
      patch.name_skeleton = nameSkeleton(changes.name);
      patch.name_trusted = nameBy === 'admin' ? true : this.db.raw('email_verified');
    }
    if (changes.email !== undefined) patch.email = changes.email;
    if (changes.firstName !== undefined) patch.first_name = changes.firstName;
    if (changes.lastName !== undefined) patch.last_name = changes.lastName;
    if (changes.isAdmin !== undefined) patch.is_admin = changes.isAdmin;
    if (changes.email !== undefined) Object.assign(patch, { pending_email: null, pending_email_expires: null }); // set at once: nothing pends
    try {
      const [row] = await this.db('users').where('id', id).update(patch).returning(RETURNING_DETAIL);
      return toUser(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError('a user with that name or email already exists');
      throw err;
    }
  }

  async setPassword(id: string, passwordHash: string | null, forcePasswordChange: boolean): Promise<void> {
    await this.db('users').where('id', id).update({ password_hash: passwordHash, force_password_change: forcePasswordChange });
  }

  async replacePasswordHash(id: string, old: string, fresh: string): Promise<void> {
    await this.db('users').where({ id, password_hash: old }).update({ password_hash: fresh });
  }

  async setForcePasswordChange(id: string, force: boolean): Promise<void> {
    await this.db('users').where('id', id).update({ force_password_change: force });
  }

  async recordLogin(id: string, at: Date): Promise<void> {
    await this.db('users').where('id', id).update({ last_login: at, last_seen: at });
  }

  async deactivate(id: string, at: Date): Promise<boolean> {
    return (await this.db('users').where('id', id).whereNull('deactivated').update({ deactivated: at })) > 0;
  }

  async reactivate(id: string, name: string): Promise<User | undefined> {
    try {
      const [row] = await this.db('users')
        .where('id', id)
        .whereNotNull('deactivated')
        .update({ deactivated: null, password_hash: null, force_password_change: true, name_skeleton: nameSkeleton(name) })
        .returning(RETURNING_DETAIL);
      return row ? toUser(row) : undefined;
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError('an active user now has that name or email');
      throw err;
    }
  }

  async lockActiveAdminIds(): Promise<string[]> {
    const rows: { id: string }[] = await this.db('users')
      .select('id')
      .where('is_admin', true)
      .whereNull('deactivated')
      .forUpdate();
    return rows.map((r) => r.id);
  }

  async lockActive(id: string): Promise<User | undefined> {
    const row = await this.db('users').select(USER_COLUMNS).where('id', id).whereNull('deactivated').forUpdate().first();
    return row ? toUser(row) : undefined;
  }

  async setMfaEnabled(id: string, enabled: boolean): Promise<void> {
    await this.db('users').where('id', id).update({ mfa_enabled: enabled });
  }

  async countActiveAdmins(): Promise<number> {
    const row = await this.db('users').count<{ count: string }>('* as count').where('is_admin', true).whereNull('deactivated').first();
    return Number(row?.count ?? 0);
  }

  /**
   * A page in (name collate "C", id) order. Its cost does not grow with the number of users as
   * long as the planner can choose, from the statistics, between two ways of reading it (see
   * migrations/20261130220000_create_list_indexes.ts): walking an index already in list order
   * until the page is full (all active users, `include_deactivated`, `is_admin` either way, or a
   * `q` that most users match), or, for a `q` that few users match, fetching the matches through
   * the lower(name) and lower(email) pattern indexes (a BitmapOr of the two LIKE prefix ranges)
   * and sorting them. A `q` matching a sizeable share of the users that all sit late in the name
   * order is the case neither way bounds (see bench/README.md).
   *
   * Each shape of the query (which filters are given) is rendered by Knex once, so no query is
   * built per request, and runs as a named prepared statement (Postgres plans it once per
   * connection) unless it searches a prefix; the values are read from the query in the order the
   * shape needs.
   */
  async list(query: UserListQuery): Promise<User[]> {
    const shape = this.listShape(query);
    const values: Record<ListValue, unknown> = {
      isAdmin: query.isAdmin,
      pattern: query.prefix ? `${escapeLike(query.prefix.toLowerCase())}%` : undefined,
      afterName: query.after?.name,
      afterId: query.after?.id,
      // A prefix search asks for at least PREFIX_PLAN_LIMIT rows (the page is cut here): with a
      // small limit the planner, costing a walk in list order as "stop after a few matches",
      // could pick that walk for a prefix whose few matches sort last, and read the whole table.
      limit: query.prefix ? Math.max(query.limit, PREFIX_PLAN_LIMIT) : query.limit,
    };
    // A prefix search is planned afresh each time (unnamed, through Knex's connection): a prepared
    // statement's generic plan cannot see the prefix, so it could not use the prefix indexes.
    const rows = await runPrepared<UserRow>(this.db, query.prefix ? undefined : this.pool, shape.statement, shape.values.map((v) => values[v]));
    return (rows.length > query.limit ? rows.slice(0, query.limit) : rows).map(toUser);
  }

  /**
   * The statement of a query's shape, named by it (the same text each time). Rendered afresh each
   * time: keeping them cost a module-level map and saved Knex's 13 µs, under 2% of a page's 800 µs
   * (2026-12-07).
   */
  private listShape(query: UserListQuery): ListShape {
    const key = `${query.includeDeactivated ? 'all' : 'active'}_${query.isAdmin === undefined ? 'any' : 'admin'}${query.prefix ? '_q' : ''}${query.after ? '_after' : ''}`;
    // Rendered with each value's name in its place, then mapped back to the names.
    const q = this.db('users').select(USER_COLUMNS);
    if (!query.includeDeactivated) q.whereNull('deactivated');
    if (query.isAdmin !== undefined) q.where('is_admin', LIST_VALUE.isAdmin);
    if (query.prefix) {
      q.where((w) => w.whereRaw('lower(name) like ?', [LIST_VALUE.pattern]).orWhereRaw('lower(email) like ?', [LIST_VALUE.pattern]));
    }
    if (query.after) {
      q.whereRaw('(name collate "C", id) > (? collate "C", ?::uuid)', [LIST_VALUE.afterName, LIST_VALUE.afterId]);
    }
    const native = q.orderByRaw('name collate "C", id').limit(LIST_LIMIT).toSQL().toNative();
    const names = native.bindings.map((b) => (b === LIST_LIMIT ? 'limit' : (Object.keys(LIST_VALUE) as (keyof typeof LIST_VALUE)[]).find((k) => LIST_VALUE[k] === b)));
    if (names.some((n) => n === undefined)) throw new Error(`user list ${key}: unexpected bindings ${native.bindings.join()}`);
    return { statement: { name: `user_list_${key}`, text: native.sql }, values: names as ListValue[] };
  }

}
