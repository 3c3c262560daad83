import { ConflictError, ForbiddenError, LastAdminError, UserDeactivatedError, UserNotFoundError, ValidationError, WrongPasswordError } from '../domain/errors';
import { parseUserRef } from '../domain/identifiers';
import { NAME_RULE, normalizeName, RESERVED_USER_NAMES } from '../domain/rules';
import type { Clock, NewUserInput, Page, TokenKind, User, UserChanges, UserRef } from '../domain/types';
import { accountUpdatedMail, type FieldChange, type MailSettings } from '../mail/templates';
import type { Stores, Transactor } from '../stores';
import { decodeCursor, pageOf } from './cursor';
import type { EmailChanges } from './email-change';
import { userTarget, type AuditContext } from '../domain/audit';
import type { CurrentPasswordCheck } from './current-password';
import type { PasswordHasher } from './password-hasher';
import type { PasswordLinks } from './password-links';


/**
 * How the caller of an update signed in, and the current password they gave: a change of one's
 * own address with a login token needs it (API.md §2.2).
 */
export interface UpdateCredentials {
  tokenKind: TokenKind;
  currentPassword?: string;
}

export interface UserListFilters {
  limit: number;
  cursor?: string;
  q?: string;
  isAdmin?: boolean;
  includeDeactivated: boolean;
}

const FIELD_LABELS: Record<keyof UserChanges, string> = {
  name: 'name',
  email: 'email',
  firstName: 'first_name',
  lastName: 'last_name',
  isAdmin: 'is_admin',
};

export class UserService {
  constructor(
    private readonly stores: Stores,
    private readonly transact: Transactor,
    private readonly hasher: PasswordHasher,
    private readonly links: PasswordLinks,
    private readonly clock: Clock,
    private readonly mail: MailSettings,
    private readonly emailChanges: EmailChanges,
    private readonly currentPassword: CurrentPasswordCheck,
  ) {}

  /**
   * The user an admin operation names (`:user`: a UUID, an email or `email=`; with `byName`, as
   * RhodeCode names them, also an active user's name); 404 when unknown, 410 when deactivated
   * (unless allowed). Who may name whom is the operations' policy, checked before this is called
   * (domain/policy.ts), so nothing about the target leaks to a refused caller.
   */
  async target(rawRef: string, options: { allowDeactivated?: boolean; byName?: boolean } = {}): Promise<User> {
    let ref: UserRef;
    try {
      ref = parseUserRef(rawRef);
    } catch (err) {
      if (!options.byName) throw err;
      const named = await this.stores.users.findActiveByName(rawRef);
      if (!named) throw new UserNotFoundError();
      return named;
    }
    const user = await this.stores.users.findByRef(ref);
    if (!user) throw new UserNotFoundError();
    if (user.deactivated && !options.allowDeactivated) throw new UserDeactivatedError(user);
    return user;
  }

  async list(filters: UserListFilters): Promise<Page<User>> {
    const after = filters.cursor === undefined ? undefined : decodeCursor(filters.cursor);
    const rows = await this.stores.users.list({
      limit: filters.limit + 1,
      after,
      prefix: filters.q,
      isAdmin: filters.isAdmin,
      includeDeactivated: filters.includeDeactivated,
    });
    return pageOf(rows, filters.limit);
  }

  async create(actor: User, input: NewUserInput, sendMail: boolean, ctx: AuditContext): Promise<User> {
    const name = checkName(input.name);
    if (input.password !== undefined) this.hasher.checkPolicy(input.password);
    const passwordHash = input.password === undefined ? null : await this.hasher.hash(input.password);
    return this.withConflictHolder(actor, name, input.email, undefined, () =>
      this.transact(async (s) => {
        const user = await s.users.insert({
          name,
          email: input.email,
          firstName: input.firstName ?? null,
          lastName: input.lastName ?? null,
          passwordHash,
          isAdmin: input.isAdmin ?? false,
          forcePasswordChange: input.forcePasswordChange ?? true,
        });
        if (sendMail) await this.links.queueWelcome(s, user);
        s.audit.add(ctx, {
          action: 'user.created',
          target: userTarget(user),
          summary: { email: user.email, is_admin: user.isAdmin, password_set: passwordHash !== null, welcome_mail: sendMail },
        });
        return user;
      }),
    );
  }

  /**
   * `POST /user/me` and `POST /user/:user`: only fields that differ count. A user changing their
   * own address does not change it: the new one must confirm it first (EmailChanges.request, its
   * mails sent whatever `sendMail` says), and with a login token they prove who they are with
   * their current password, if they have a usable one (a stolen session alone cannot move the
   * account away); an admin changing someone else's changes it at once. Whether another account
   * has the new address is not told (EmailChanges.request).
   */
  async update(actor: User, target: User, requested: UserChanges, sendMail: boolean, ctx: AuditContext, credentials: UpdateCredentials): Promise<User> {
    // The name as it would be stored, so that a name differing only in its form is no change.
    const changes = requested.name === undefined || requested.name === target.name ? requested : { ...requested, name: checkName(requested.name) };
    const diff = changedFields(target, changes);
    if (diff.length === 0) return target;
    if (diff.includes('isAdmin') && !actor.isAdmin) throw new ForbiddenError('only admins may change is_admin');
    const newEmail = diff.includes('email') ? changes.email : undefined;
    const confirmFirst = newEmail !== undefined && actor.id === target.id;
    if (confirmFirst) await this.checkCurrentPassword(target, credentials);
    const now = confirmFirst ? diff.filter((k) => k !== 'email') : diff;
    const patch: UserChanges = Object.fromEntries(now.map((k) => [k, changes[k]]));
    return this.withConflictHolder(actor, patch.name, patch.email, target.id, () =>
      this.transact(async (s) => {
        if (patch.isAdmin === false) await assertNotLastAdmin(s, target, actor);
        let updated = now.length > 0 ? await s.users.update(target.id, patch, actor.isAdmin ? 'admin' : 'self') : target;
        if (patch.email !== undefined) await s.emailLinks.deleteForUser(target.id, ['confirm']); // set at once: a pending change ends
        if (now.length > 0) {
          const fields = Object.fromEntries(now.map((k) => [FIELD_LABELS[k], { from: target[k] ?? null, to: updated[k] ?? null }]));
          s.audit.add(ctx, { action: 'user.updated', target: userTarget(target), summary: { changes: fields } });
        }
        if (confirmFirst) updated = await this.emailChanges.request(s, updated, newEmail, ctx);
        if (sendMail && now.length > 0) {
          const lines: FieldChange[] = now.map((k) => ({ field: FIELD_LABELS[k], from: shown(target, k), to: shown(updated, k) }));
          const to = updated.email === target.email ? [updated.email] : [updated.email, target.email];
          await s.outbox.enqueue(accountUpdatedMail(this.mail, to, updated, lines));
        }
        return updated;
      }),
    );
  }

  /**
   * `403 wrong_password` unless the caller signs in with an API token (programs, exempt), has no
   * usable password (nothing to prove it with), or gave the right one. bcrypt runs off the event
   * loop, as at login.
   */
  private async checkCurrentPassword(user: User, credentials: UpdateCredentials): Promise<void> {
    if (credentials.tokenKind !== 'login') return;
    const stored = await this.stores.users.findActiveWithPassword({ id: user.id });
    if (!stored?.passwordHash) return;
    if (credentials.currentPassword === undefined) throw new WrongPasswordError('current_password is needed to change the email');
    await this.currentPassword.check(user.id, stored.passwordHash, credentials.currentPassword);
  }

  /** Deactivates: no login, no tokens, no links (password or address), no group memberships or grants; the row stays. */
  async deactivate(actor: User, target: User, ctx: AuditContext): Promise<void> {
    await this.transact(async (s) => {
      if (target.isAdmin) await assertNotLastAdmin(s, target, actor);
      // Of concurrent deactivations, one deactivates; the others find the user gone (410).
      if (!(await s.users.deactivate(target.id, this.clock.now()))) throw new UserDeactivatedError((await s.users.findById(target.id)) ?? target);
      await s.tokens.deleteForUser(target.id);
      await s.passwordTokens.deleteForUser(target.id);
      await s.emailLinks.deleteForUser(target.id);
      await s.groups.removeUserEverywhere(target.id);
      s.audit.add(ctx, { action: 'user.deactivated', target: userTarget(target), summary: { email: target.email } });
    });
  }

  /**
   * Makes a deactivated user active again with no tokens and no usable password; an already
   * active user is answered as is, and nothing changes.
   */
  async reactivate(actor: User, target: User, sendMail: boolean, ctx: AuditContext): Promise<User> {
    if (!target.deactivated) return target;
    return this.withConflictHolder(actor, target.name, target.email, target.id, () =>
      this.transact(async (s) => {
        const user = await s.users.reactivate(target.id, target.name);
        // Of concurrent reactivations, one reactivates (and mails); the others answer the user as is.
        if (!user) return (await s.users.findById(target.id)) ?? target;
        await s.tokens.deleteForUser(target.id);
        if (sendMail) await this.links.queueWelcome(s, user);
        s.audit.add(ctx, { action: 'user.reactivated', target: userTarget(user), summary: { welcome_mail: sendMail } });
        return user;
      }),
    );
  }

  /**
   * A unique violation aborts the transaction, so the conflicting user is looked up after it;
   * only an admin is told who it is (no enumeration).
   */
  private async withConflictHolder<T>(
    actor: User,
    name: string | undefined,
    email: string | undefined,
    exceptId: string | undefined,
    work: () => Promise<T>,
  ): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (!(err instanceof ConflictError) || err.extra.user || !actor.isAdmin) throw err;
      const holder = await this.stores.users.findActiveHolder(name, email, exceptId);
      throw new ConflictError(err.message, holder);
    }
  }
}

/**
 * A user name as it is stored: its NFKC form, within the name rule (domain/rules.ts: the spec
 * checks what is sent, this what is stored) and not reserved (`me`); else 400 naming the field.
 */
export function checkName(name: string): string {
  const normal = normalizeName(name);
  if (normal === undefined) {
    throw new ValidationError(`a name is ${NAME_RULE}`, [{ path: '/body/name', message: 'is not a name' }]);
  }
  if (RESERVED_USER_NAMES.has(normal)) throw new ValidationError(`the name "${normal}" is reserved`, [{ path: '/body/name', message: 'is reserved' }]);
  return normal;
}

function changedFields(user: User, changes: UserChanges): (keyof UserChanges)[] {
  return (Object.keys(FIELD_LABELS) as (keyof UserChanges)[]).filter((k) => {
    const value = changes[k];
    if (value === undefined) return false;
    return value !== user[k];
  });
}

async function assertNotLastAdmin(s: Stores, target: User, actor: User): Promise<void> {
  const admins = await s.users.lockActiveAdminIds();
  if (admins.length <= 1 && admins.includes(target.id)) {
    throw new LastAdminError(actor.isAdmin ? target : undefined);
  }
}

/**
 * A field's value as the "account updated" mail shows it. A name is shown only when it counts as
 * the user's own (see User.nameTrusted): one given at self-registration may be anyone's message.
 */
function shown(user: User, field: keyof UserChanges): string {
  const value = user[field];
  if (value === null || value === undefined) return '(none)';
  if (field === 'name' && !user.nameTrusted) return '(the name given at registration)';
  return String(value);
}
