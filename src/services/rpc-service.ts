import { AppError, ConflictError, ForbiddenError, NotFoundError, UserDeactivatedError } from '../domain/errors';
import { GROUP_PERMISSIONS, type GroupPermission, type UserGroup } from '../domain/groups';
import { isUuid, parseUserRef } from '../domain/identifiers';
import type { User } from '../domain/types';
import type { GroupService } from './group-service';
import type { PasswordService } from './password-service';
import type { UserService } from './user-service';

/**
 * RhodeCode's JSON-RPC methods for users and user groups (`POST /_admin/api`), over the same
 * services and permission checks as the REST routes. Arguments, result shapes and messages follow
 * RhodeCode's `rhodecode/api/views/user_api.py` and `user_group_api.py`.
 */

/** An expected failure: its message is the envelope's `error`. */
export class RpcError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RpcError';
  }
}

export const RPC_METHODS = [
  'create_user',
  'get_user',
  'get_users',
  'update_user',
  'delete_user',
  'create_user_group',
  'get_user_group',
  'get_user_groups',
  'update_user_group',
  'delete_user_group',
  'add_user_to_user_group',
  'remove_user_from_user_group',
  'grant_user_permission_to_user_group',
  'revoke_user_permission_from_user_group',
  'grant_user_group_permission_to_user_group',
  'revoke_user_group_permission_from_user_group',
] as const;
export type RpcMethod = (typeof RPC_METHODS)[number];

const METHOD_NAMES: ReadonlySet<string> = new Set(RPC_METHODS);

export function isRpcMethod(name: string): name is RpcMethod {
  return METHOD_NAMES.has(name);
}

/** For the token's scopes: `get_*` reads, everything else writes. */
export function rpcHttpMethod(method: RpcMethod): 'GET' | 'POST' {
  return method.startsWith('get_') ? 'GET' : 'POST';
}

/** RhodeCode's JSONRPCForbidden message. */
export const ACCESS_DENIED = 'Access was denied to this resource.';

/** "Everything" for the services' paged reads (RhodeCode does not page). */
const ALL = 1_000_000;

// The OpenAPI rules REST bodies are held to; RPC arguments skip that validator.
const NAME = /^\S(.*\S)?$/u;
const EMAIL = /^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

type Raw = Record<string, unknown>;

/** Reads a method's arguments; a missing or mistyped one is an RpcError. */
class Args {
  constructor(private readonly raw: Raw) {}

  /** null counts as not given (RhodeCode's Optional), except where a field may be null. */
  private value(name: string, required: boolean): unknown {
    const value = Object.hasOwn(this.raw, name) ? this.raw[name] : undefined;
    if ((value === undefined || value === null) && required) throw new RpcError(`Missing non optional \`${name}\` arg in JSON DATA`);
    return value ?? undefined;
  }

  string(name: string, options: { required: true; max?: number; rule?: 'name' | 'email' }): string;
  string(name: string, options?: { required?: boolean; max?: number; rule?: 'name' | 'email' }): string | undefined;
  string(name: string, options: { required?: boolean; max?: number; rule?: 'name' | 'email' } = {}): string | undefined {
    const value = this.value(name, options.required ?? false);
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw invalid(name, 'must be a string');
    if (options.max !== undefined && [...value].length > options.max) throw invalid(name, `must be at most ${options.max} characters`);
    if (options.rule === 'name' && !NAME.test(value)) throw invalid(name, 'must be 1 to 255 characters with no leading or trailing white space');
    if (options.rule === 'email' && !EMAIL.test(value)) throw invalid(name, 'must be an email address');
    return value;
  }

  /** A personal name: a string, or null to clear it. */
  nullableString(name: string, max: number): string | null | undefined {
    if (this.raw[name] === null) return null;
    return this.string(name, { max });
  }

  boolean(name: string): boolean | undefined {
    const value = this.value(name, false);
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') throw invalid(name, 'must be true or false');
    return value;
  }

  /** A user or user group: a UUID or a name (RhodeCode's "str or int"; a number is read as text). */
  ref(name: string, required: true): string;
  ref(name: string, required?: boolean): string | undefined;
  ref(name: string, required = false): string | undefined {
    const value = this.value(name, required);
    if (value === undefined) return undefined;
    if (typeof value === 'number' && Number.isFinite(value)) return String(value);
    if (typeof value !== 'string' || value.length === 0 || value.length > 320) throw invalid(name, 'must be an id or a name');
    return value;
  }

  permission(name: string): GroupPermission {
    const value = this.string(name, { required: true, max: 255 });
    if (!(GROUP_PERMISSIONS as readonly string[]).includes(value)) throw new RpcError(`permission \`${value}\` does not exist`);
    return value as GroupPermission;
  }
}

function invalid(name: string, rule: string): RpcError {
  return new RpcError(`invalid value for \`${name}\`: ${rule}`);
}

/** RhodeCode's `User.get_api_data()`, without secrets (tokens are never shown). */
export function rhodecodeUser(u: User) {
  return {
    user_id: u.id,
    username: u.name,
    firstname: u.firstName,
    lastname: u.lastName,
    email: u.email,
    emails: [u.email],
    active: u.deactivated === null,
    admin: u.isAdmin,
    force_password_change: u.forcePasswordChange,
    last_login: u.lastLogin?.toISOString() ?? null,
    last_activity: u.lastSeen?.toISOString() ?? null,
    extern_type: 'rhodecode',
    extern_name: 'rhodecode',
    ip_addresses: [] as string[],
    language: null,
  };
}

/** RhodeCode's `UserGroup.get_api_data()`: with every member. */
export function rhodecodeUserGroup(g: UserGroup, members: User[]) {
  return {
    users_group_id: g.id,
    group_name: g.name,
    group_description: g.description,
    active: g.active,
    owner: g.owner.name,
    users: members.map(rhodecodeUser),
  };
}

/** What an error names, to word RhodeCode's "`x` does not exist". */
interface Subjects {
  group?: string;
  user?: string;
  /** The conflict message, when the method knows better than the store. */
  conflict?: (err: ConflictError) => string;
}

type Handler = (actor: User, args: Args) => Promise<unknown>;

export class RpcService {
  private readonly handlers: Record<RpcMethod, Handler>;

  constructor(
    private readonly users: UserService,
    private readonly groups: GroupService,
    private readonly passwords: PasswordService,
  ) {
    this.handlers = {
      create_user: (actor, args) => this.createUser(actor, args),
      get_user: (actor, args) => this.getUser(actor, args),
      get_users: (actor) => this.getUsers(actor),
      update_user: (actor, args) => this.updateUser(actor, args),
      delete_user: (actor, args) => this.deleteUser(actor, args),
      create_user_group: (actor, args) => this.createUserGroup(actor, args),
      get_user_group: (actor, args) => this.getUserGroup(actor, args),
      get_user_groups: (actor) => this.getUserGroups(actor),
      update_user_group: (actor, args) => this.updateUserGroup(actor, args),
      delete_user_group: (actor, args) => this.deleteUserGroup(actor, args),
      add_user_to_user_group: (actor, args) => this.addMember(actor, args),
      remove_user_from_user_group: (actor, args) => this.removeMember(actor, args),
      grant_user_permission_to_user_group: (actor, args) => this.grantUser(actor, args),
      revoke_user_permission_from_user_group: (actor, args) => this.revokeUser(actor, args),
      grant_user_group_permission_to_user_group: (actor, args) => this.grantGroup(actor, args),
      revoke_user_group_permission_from_user_group: (actor, args) => this.revokeGroup(actor, args),
    };
  }

  /**
   * Runs one method for the (authenticated) actor. Expected failures are RpcErrors with
   * RhodeCode's wording; anything else is unexpected and propagates.
   */
  async call(actor: User, method: RpcMethod, args: Raw): Promise<unknown> {
    return this.handlers[method](actor, new Args(args));
  }

  // ---- users (UserService: system admins only, refused before the target is looked up) ----

  private async createUser(actor: User, args: Args) {
    const username = args.string('username', { required: true, rule: 'name', max: 255 });
    const email = args.string('email', { required: true, rule: 'email', max: 254 });
    const password = args.string('password', { max: 1024 });
    const firstName = args.nullableString('firstname', 255);
    const lastName = args.nullableString('lastname', 255);
    const active = args.boolean('active') ?? true;
    const admin = args.boolean('admin') ?? false;
    const force = args.boolean('force_password_change') ?? false;
    const conflict = (err: ConflictError) => conflictMessage(err, username, email);
    let user = await this.guard({ conflict }, () =>
      this.users.create(
        actor,
        { name: username, email, password: password || undefined, firstName, lastName, isAdmin: admin, forcePasswordChange: force },
        false,
      ),
    );
    if (!active) {
      await this.guard({}, () => this.users.deactivate(actor, user.id));
      user = await this.adminView(actor, user.id, username);
    }
    return { msg: `created new user \`${username}\``, user: rhodecodeUser(user) };
  }

  /** Without `userid`, the caller (anyone); a non-admin may name only themselves (RhodeCode). */
  private async getUser(actor: User, args: Args) {
    const userid = args.ref('userid');
    let user: User;
    if (userid === undefined || (!actor.isAdmin && namesUser(actor, userid))) user = actor;
    else if (!actor.isAdmin) throw new RpcError('userid is not the same as your user');
    else user = await this.adminView(actor, await this.userRef(actor, userid), userid);
    const memberships = await this.groups.membershipsOf(user);
    return { ...rhodecodeUser(user), groups: memberships.map((m) => ({ id: m.id, name: m.name, permission: m.permission })) };
  }

  private async getUsers(actor: User) {
    const page = await this.guard({}, () => this.users.list(actor, { limit: ALL, includeDeactivated: true }));
    return page.items.map(rhodecodeUser);
  }

  private async updateUser(actor: User, args: Args) {
    const userid = args.ref('userid', true);
    const changes = {
      name: args.string('username', { rule: 'name', max: 255 }),
      email: args.string('email', { rule: 'email', max: 254 }),
      firstName: args.nullableString('firstname', 255),
      lastName: args.nullableString('lastname', 255),
      isAdmin: args.boolean('admin'),
    };
    const active = args.boolean('active');
    const password = args.string('password', { max: 4096 });
    const ref = await this.userRef(actor, userid);
    const conflict = (err: ConflictError) => conflictMessage(err, changes.name, changes.email);
    return this.guard({ user: userid, conflict }, async () => {
      this.users.requireAdmin(actor);
      if (password !== undefined) this.passwords.checkPolicy(password); // before anything changes
      // Reactivate first (so the changes apply to an active user); deactivate last.
      const target = active === true ? await this.users.reactivate(actor, ref, false) : await this.users.getUser(actor, ref);
      let user = await this.users.update(actor, target, changes, false);
      if (password !== undefined) await this.passwords.setByAdmin(actor, user, password);
      if (active === false) {
        await this.users.deactivate(actor, user.id);
        user = await this.adminView(actor, user.id, userid);
      }
      return { msg: `updated user ID:${user.id} ${user.name}`, user: rhodecodeUser(user) };
    });
  }

  /** Deactivates, as `DELETE /user/{user}` (the row stays; RhodeCode deletes it). */
  private async deleteUser(actor: User, args: Args) {
    const userid = args.ref('userid', true);
    const ref = await this.userRef(actor, userid);
    return this.guard({ user: userid }, async () => {
      const user = await this.users.getUser(actor, ref);
      await this.users.deactivate(actor, user.id);
      return { msg: `deleted user ID:${user.id} ${user.name}`, user: null };
    });
  }

  /**
   * UserService names users by UUID or email; RhodeCode also by user name. A name is looked up
   * (active users only) after the admin check, so non-admins learn nothing.
   */
  private async userRef(actor: User, raw: string): Promise<string> {
    try {
      parseUserRef(raw);
      return raw;
    } catch {
      return this.guard({ user: raw }, async () => {
        this.users.requireAdmin(actor);
        return (await this.groups.user(actor, raw, 'loose', undefined)).id;
      });
    }
  }

  /** An admin's view of a user: a deactivated one too (RhodeCode's `active: false`). */
  private async adminView(actor: User, ref: string, shownAs: string): Promise<User> {
    return this.guard({ user: shownAs }, async () => {
      try {
        return await this.users.getUser(actor, ref);
      } catch (err) {
        if (err instanceof UserDeactivatedError && err.extra.user) return err.extra.user;
        throw err;
      }
    });
  }

  // ---- user groups (GroupService: a group one cannot read "does not exist") ----

  private async createUserGroup(actor: User, args: Args) {
    const name = args.string('group_name', { required: true, rule: 'name', max: 255 });
    const description = args.string('description', { max: 10_000 });
    const owner = args.ref('owner');
    const active = args.boolean('active');
    const group = await this.guard({ user: owner, conflict: () => `user group \`${name}\` already exist` }, () =>
      this.groups.create(actor, { name, description, owner, active }, 'loose'),
    );
    return { msg: `created new user group \`${name}\``, user_group: rhodecodeUserGroup(group, []) };
  }

  private async getUserGroup(actor: User, args: Args) {
    const usergroupid = args.ref('usergroupid', true);
    return this.guard({ group: usergroupid }, async () => {
      const details = await this.groups.details(actor, usergroupid);
      const members = details.membersCount > details.members.length ? await this.allMembers(actor, details.group) : details.members;
      return {
        ...rhodecodeUserGroup(details.group, members),
        permissions: details.grants.map((g) => ({
          name: g.name,
          permission: g.permission,
          origin: g.origin === 'owner' ? 'owner' : 'permission',
          type: g.type,
        })),
      };
    });
  }

  private async getUserGroups(actor: User) {
    const all = await this.groups.all(actor);
    const listed = await Promise.all(
      all.map(async (g) => {
        try {
          return rhodecodeUserGroup(g, await this.allMembers(actor, g));
        } catch (err) {
          if (err instanceof NotFoundError) return undefined; // deleted (or unshared) meanwhile
          throw err;
        }
      }),
    );
    return listed.filter((g) => g !== undefined);
  }

  private async updateUserGroup(actor: User, args: Args) {
    const usergroupid = args.ref('usergroupid', true);
    const name = args.string('group_name', { rule: 'name', max: 255 });
    const description = args.string('description', { max: 10_000 });
    const owner = args.ref('owner');
    const active = args.boolean('active');
    return this.guard({ group: usergroupid, user: owner, conflict: () => `user group \`${name}\` already exist` }, async () => {
      // Members first: a new owner may leave the caller unable to read the group afterwards.
      const before = await this.groups.access(actor, usergroupid, 'usergroup.admin');
      const members = await this.allMembers(actor, before);
      const group = await this.groups.update(actor, before.id, { name, description, owner, active }, 'loose');
      return { msg: `updated user group ID:${group.id} ${group.name}`, user_group: rhodecodeUserGroup(group, members) };
    });
  }

  private async deleteUserGroup(actor: User, args: Args) {
    const usergroupid = args.ref('usergroupid', true);
    const group = await this.guard({ group: usergroupid }, () => this.groups.delete(actor, usergroupid));
    return { msg: `deleted user group ID:${group.id} ${group.name}`, user_group: null };
  }

  private async addMember(actor: User, args: Args) {
    const usergroupid = args.ref('usergroupid', true);
    const userid = args.ref('userid', true);
    const { added, group, user } = await this.guard({ group: usergroupid, user: userid }, () =>
      this.groups.addMember(actor, usergroupid, userid, 'loose'),
    );
    return { success: added, msg: added ? `added member \`${user.name}\` to user group \`${group.name}\`` : 'User is already in that group' };
  }

  private async removeMember(actor: User, args: Args) {
    const usergroupid = args.ref('usergroupid', true);
    const userid = args.ref('userid', true);
    const { removed, group, user } = await this.guard({ group: usergroupid, user: userid }, () =>
      this.groups.removeMember(actor, usergroupid, userid, 'loose'),
    );
    return { success: removed, msg: removed ? `removed member \`${user.name}\` from user group \`${group.name}\`` : "User wasn't in group" };
  }

  private async grantUser(actor: User, args: Args) {
    const usergroupid = args.ref('usergroupid', true);
    const userid = args.ref('userid', true);
    const perm = args.permission('perm');
    const { group, user } = await this.guard({ group: usergroupid, user: userid }, () =>
      this.groups.grantUser(actor, usergroupid, userid, perm, 'loose'),
    );
    return { msg: `Granted perm: \`${perm}\` for user: \`${user.name}\` in user group: \`${group.name}\``, success: true };
  }

  private async revokeUser(actor: User, args: Args) {
    const usergroupid = args.ref('usergroupid', true);
    const userid = args.ref('userid', true);
    const { group, user } = await this.guard({ group: usergroupid, user: userid }, () =>
      this.groups.revokeUser(actor, usergroupid, userid, 'loose'),
    );
    return { msg: `Revoked perm for user: \`${user.name}\` in user group: \`${group.name}\``, success: true };
  }

  private async grantGroup(actor: User, args: Args) {
    const usergroupid = args.ref('usergroupid', true);
    const source = args.ref('sourceusergroupid', true);
    const perm = args.permission('perm');
    // The target is checked first so that a "does not exist" names the right group.
    const target = await this.guard({ group: usergroupid }, () => this.groups.access(actor, usergroupid, 'usergroup.admin'));
    const done = await this.guard({ group: source }, () => this.groups.grantGroup(actor, target.id, source, perm));
    return {
      msg: `Granted perm: \`${perm}\` for user group: \`${done.source.name}\` in user group: \`${done.group.name}\``,
      success: true,
    };
  }

  private async revokeGroup(actor: User, args: Args) {
    const usergroupid = args.ref('usergroupid', true);
    const source = args.ref('sourceusergroupid', true);
    const target = await this.guard({ group: usergroupid }, () => this.groups.access(actor, usergroupid, 'usergroup.admin'));
    const done = await this.guard({ group: source }, () => this.groups.revokeGroup(actor, target.id, source));
    return { msg: `Revoked perm for user group: \`${done.source.name}\` in user group: \`${done.group.name}\``, success: true };
  }

  private async allMembers(actor: User, group: UserGroup): Promise<User[]> {
    return (await this.groups.members(actor, group.id, { limit: ALL })).items;
  }

  /** Runs service calls, turning the domain's errors into RhodeCode's messages. */
  private async guard<T>(subjects: Subjects, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw translate(err, subjects);
    }
  }
}

function translate(err: unknown, subjects: Subjects): unknown {
  if (err instanceof RpcError || !(err instanceof AppError)) return err;
  if (err instanceof NotFoundError) {
    // GroupService's messages; a group looked up by UUID is shown as given.
    if (err.message === 'user group not found' && subjects.group !== undefined) return new RpcError(`user group \`${subjects.group}\` does not exist`);
    if (err.message === 'user not found' && subjects.user !== undefined) return new RpcError(`user \`${subjects.user}\` does not exist`);
    return new RpcError(err.message);
  }
  if (err instanceof ForbiddenError) {
    // RhodeCode answers a lacking grant on a user group as if the group did not exist.
    if (subjects.group !== undefined && /is required on this user group$/.test(err.message)) return new RpcError(`user group \`${subjects.group}\` does not exist`);
    return new RpcError(ACCESS_DENIED);
  }
  if (err instanceof UserDeactivatedError) return new RpcError(`user \`${subjects.user ?? err.extra.user?.name ?? ''}\` is deactivated`);
  if (err instanceof ConflictError && subjects.conflict && err.message !== 'cannot remove the last active admin') return new RpcError(subjects.conflict(err));
  if (err.status >= 500) return err;
  return new RpcError(err.message);
}

/** RhodeCode's create_user wording: which of name and email is taken (admins are told who holds it). */
function conflictMessage(err: ConflictError, name: string | undefined, email: string | undefined): string {
  const holder = err.extra.user;
  if (holder && name !== undefined && holder.name === name) return `user \`${name}\` already exist`;
  if (holder && email !== undefined && holder.email.toLowerCase() === email.toLowerCase()) return `email \`${email}\` already exist`;
  return err.message;
}

/** Whether `raw` names the caller (by id, email or name): no lookup, so nothing leaks. */
function namesUser(user: User, raw: string): boolean {
  if (isUuid(raw)) return raw.toLowerCase() === user.id;
  const email = raw.startsWith('email=') ? raw.slice('email='.length) : raw;
  return email.toLowerCase() === user.email.toLowerCase() || raw === user.name;
}
