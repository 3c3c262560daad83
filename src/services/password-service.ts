import { InvalidTokenError, UserNotFoundError, ValidationError } from '../domain/errors';
import { userTarget, type AuditContext, type RequestMeta } from '../domain/audit';
import type { Caller, Clock, User, UserRef } from '../domain/types';
import { passwordChangedMail, type MailSettings } from '../mail/templates';
import type { Stores, Transactor } from '../stores';
import { addressKey, mayMail } from './mail-limits';
import type { CurrentPasswordCheck } from './current-password';
import type { PasswordHasher } from './password-hasher';
import { hashLinkToken, type PasswordLinks } from './password-links';

/** Which tokens a password change ends: none, the login tokens (the default), or all. */
export type ClearTokens = 'none' | 'login_only' | 'all';

/** At most one forgot-password mail a minute per account. */
const RESET_REQUEST_INTERVAL_MS = 60_000;

/** The background job that answers a forgot-password request. */
export const RESET_JOB = 'password_reset';

async function endTokens(s: Stores, userId: string, clear: ClearTokens): Promise<void> {
  if (clear !== 'none') await s.tokens.deleteForUser(userId, clear === 'all' ? undefined : 'login');
}

export class PasswordService {
  constructor(
    private readonly stores: Stores,
    private readonly transact: Transactor,
    private readonly hasher: PasswordHasher,
    private readonly links: PasswordLinks,
    private readonly clock: Clock,
    private readonly mail: MailSettings,
    private readonly currentPassword: CurrentPasswordCheck,
  ) {}

  /**
   * `POST /user/me/password`: the current password is checked, unless the caller holds a login
   * token confined by a forced change and has no usable password left (an admin reset made it
   * unusable). A forced change never waives a password that still works: a session confined by
   * one (after an admin reset, a revert, or the operator's order) may be a thief's. Clears the
   * forced change, kills every reset link, ends the tokens `clear` names, and sends a notice with
   * no secret in it.
   */
  async changeOwn(caller: Caller, password: string, currentPassword: string | undefined, clear: ClearTokens, ctx: AuditContext): Promise<void> {
    const forced = caller.token.kind === 'login' && caller.user.forcePasswordChange;
    const user = await this.stores.users.findActiveWithPassword({ id: caller.user.id });
    if (!forced || user?.passwordHash) {
      if (currentPassword === undefined) {
        throw new ValidationError('current_password is required', [{ path: '/body/current_password', message: 'is required' }]);
      }
      await this.currentPassword.check(caller.user.id, user?.passwordHash ?? null, currentPassword);
    }
    this.hasher.checkPolicy(password);
    const passwordHash = await this.hasher.hash(password);
    await this.transact(async (s) => {
      await s.users.setPassword(caller.user.id, passwordHash, false);
      await s.passwordTokens.deleteForUser(caller.user.id);
      await endTokens(s, caller.user.id, clear);
      await s.outbox.enqueue(passwordChangedMail(this.mail, caller.user));
      s.audit.add(ctx, { action: 'password.changed', target: userTarget(caller.user), summary: { by: 'self', tokens_ended: clear, was_forced: forced } });
    });
  }

  /**
   * `DELETE /user/:user/password`: the password stops working at once, the user must change it,
   * the named tokens end, and (with mail on) a single-use reset link is mailed.
   */
  async adminReset(target: User, clear: ClearTokens, sendMail: boolean, ctx: AuditContext): Promise<void> {
    await this.transact(async (s) => {
      await s.users.setPassword(target.id, null, true);
      await s.passwordTokens.deleteForUser(target.id);
      await endTokens(s, target.id, clear);
      if (sendMail) await this.links.queueReset(s, target);
      s.audit.add(ctx, { action: 'password.admin_reset', target: userTarget(target), summary: { tokens_ended: clear, link_mailed: sendMail } });
    });
  }

  /**
   * `POST /password/reset`: queues the request and returns. Whether the address has an account is
   * found out later, by the background job (`sendResetLink`), so the request does the very same
   * work (one insert) either way and its answer's timing tells nothing.
   */
  async requestReset(email: string, meta: RequestMeta): Promise<void> {
    await this.transact((s) => s.jobs.enqueue(RESET_JOB, { email, meta: { ip: meta.ip, userAgent: meta.userAgent, requestId: meta.requestId } }));
  }

  /**
   * The reset job: mails a reset link to an active user with that address, at most once a minute
   * per account and MAIL_LIMIT_PER_HOUR times an hour per address asked for; nothing for an
   * address without an account. The minute's mail is taken in one statement whose row stays
   * locked until this commits, so the jobs of several requests running at once (on several
   * instances) mail once, not once each.
   */
  async sendResetLink(email: string, meta: RequestMeta): Promise<void> {
    const user = await this.stores.users.findActiveWithPassword({ email });
    if (!user) return;
    const now = this.clock.now();
    const since = new Date(now.getTime() - RESET_REQUEST_INTERVAL_MS);
    await this.transact(async (s) => {
      const { hits } = await s.rateLimits.hit(`reset-mail:${user.id}`, RESET_REQUEST_INTERVAL_MS, now);
      if (hits > 1 || (await s.passwordTokens.issuedSince(user.id, 'reset', since))) return;
      if (!(await mayMail(s, [addressKey('password_reset', email)], now))) return;
      await this.links.queueReset(s, user);
      s.audit.add({ actor: null, ...meta }, { action: 'password.reset_requested', target: userTarget(user), summary: { email: user.email } });
    });
  }

  /**
   * `POST /password/reset/confirm`: a live, unused link sets the password, clears the forced
   * change, ends every login token and kills the user's other links. Of two concurrent uses of
   * one link, exactly one succeeds.
   */
  async confirmReset(token: string, password: string, ctx: AuditContext): Promise<void> {
    this.hasher.checkPolicy(password);
    const passwordHash = await this.hasher.hash(password);
    await this.transact(async (s) => {
      const consumed = await s.passwordTokens.consume(hashLinkToken(token), this.clock.now());
      if (!consumed) throw new InvalidTokenError();
      const user = await s.users.findById(consumed.userId);
      if (!user || user.deactivated) throw new InvalidTokenError();
      await s.users.setPassword(user.id, passwordHash, false);
      // The link was mailed to the address: using it proves the address (a registration never
      // verified, perhaps made by someone else, becomes the address owner's).
      await s.users.markEmailVerified(user.id);
      await s.passwordTokens.deleteForUser(user.id);
      await endTokens(s, user.id, 'login_only');
      if (consumed.purpose === 'reset') await s.outbox.enqueue(passwordChangedMail(this.mail, user));
      s.audit.add(ctx, { action: 'password.reset_used', target: userTarget(user), summary: { link: consumed.purpose, tokens_ended: 'login_only' } });
    });
  }

  /** Throws WeakPasswordError unless the password fits the policy (to check before a use case that sets one changes anything). */
  checkPolicy(password: string): void {
    this.hasher.checkPolicy(password);
  }

  /**
   * A system admin sets another user's password (RhodeCode's `update_user` with `password`): the
   * policy applies, every reset link dies, the user's login tokens end, the forced-change flag
   * stays as it was, and the user gets the "password changed" notice (no secret in it).
   */
  async setByAdmin(target: User, password: string, ctx: AuditContext): Promise<void> {
    this.hasher.checkPolicy(password);
    const passwordHash = await this.hasher.hash(password);
    await this.transact(async (s) => {
      await s.users.setPassword(target.id, passwordHash, target.forcePasswordChange);
      await s.passwordTokens.deleteForUser(target.id);
      await endTokens(s, target.id, 'login_only');
      await s.outbox.enqueue(passwordChangedMail(this.mail, target));
      s.audit.add(ctx, { action: 'password.changed', target: userTarget(target), summary: { by: 'admin', tokens_ended: 'login_only' } });
    });
  }

  /**
   * Sets a password (the operator's `passwd`): clears the forced change, kills every
   * set-password link and ends the tokens `clearTokens` names.
   */
  async setPassword(ref: UserRef, password: string, ctx: AuditContext, clear: ClearTokens = 'login_only'): Promise<void> {
    this.hasher.checkPolicy(password);
    const passwordHash = await this.hasher.hash(password);
    await this.transact(async (s) => {
      const user = await activeUser(s, ref);
      await s.users.setPassword(user.id, passwordHash, false);
      await s.passwordTokens.deleteForUser(user.id);
      await endTokens(s, user.id, clear);
      s.audit.add(ctx, { action: 'password.changed', target: userTarget(user), summary: { by: 'operator', tokens_ended: clear } });
    });
  }

  /** The operator's `force-password-change`: the user's login tokens are confined until they change it. */
  async forcePasswordChange(ref: UserRef, ctx: AuditContext): Promise<void> {
    await this.transact(async (s) => {
      const user = await activeUser(s, ref);
      await s.users.setForcePasswordChange(user.id, true);
      s.audit.add(ctx, { action: 'user.updated', target: userTarget(user), summary: { changes: { force_password_change: { from: user.forcePasswordChange, to: true } } } });
    });
  }
}

async function activeUser(s: Stores, ref: UserRef) {
  const user = await s.users.findByRef(ref);
  if (!user || user.deactivated) throw new UserNotFoundError();
  return user;
}
