import ms from 'ms';
import { userTarget, type AuditContext } from '../domain/audit';
import { InvalidTokenError } from '../domain/errors';
import type { Clock, User } from '../domain/types';
import { addressTakenMail, confirmEmailLink, confirmEmailMail, emailChangingMail, revertEmailLink, revertedResetMail, type MailSettings } from '../mail/templates';
import type { Stores, Transactor } from '../stores';
import { accountKey, addressKey, mayMail } from './mail-limits';
import { hashLinkToken, newLinkToken, type PasswordLinks } from './password-links';

/** How long the new address's confirmation link lives. */
export const CONFIRM_LINK_TTL_MS = 24 * 3_600_000;
/** How long the old address's revert link lives. */
export const REVERT_LINK_TTL_MS = 7 * 24 * 3_600_000;

/**
 * A user changing their own address (API.md §2.2): the address changes only when the new one
 * confirms it by its link, and the old one is told, with a link that undoes the change (within 7
 * days), makes the password unusable, ends every token and link and mails a reset link to the
 * restored address: the defence against a stolen session, whose holder is locked out. An admin
 * changing someone else's address does it at once (UserService.update).
 */
export class EmailChanges {
  constructor(
    private readonly transact: Transactor,
    private readonly clock: Clock,
    private readonly mail: MailSettings,
    private readonly links: PasswordLinks,
  ) {}

  /**
   * Inside the caller's transaction: `newEmail` becomes the user's pending address (replacing
   * any pending one, whose link dies), the new address gets a confirmation link and the old one
   * a notice with a revert link, whatever `send_mail` says. Returns the user as now.
   *
   * No enumeration: an address another account has is answered and worked on the same (the same
   * statements, two mails queued), but its confirmation link is never mailed: the address's owner
   * gets "someone tried to move an account to this address" instead. No mail bombing: beyond
   * MAIL_LIMIT_PER_HOUR requests an hour from the account or to the address, the request is
   * recorded as ever but nothing is mailed.
   */
  async request(s: Stores, user: User, newEmail: string, ctx: AuditContext): Promise<User> {
    const now = this.clock.now();
    const holder = await s.users.findActiveHolder(undefined, newEmail, user.id);
    const mailed = await mayMail(s, [accountKey('email_change', user.id), addressKey('email_change', newEmail)], now);
    await s.emailLinks.deleteForUser(user.id, ['confirm']);
    const confirm = await this.issue(s, user.id, 'confirm', newEmail, now, CONFIRM_LINK_TTL_MS);
    const revert = await this.issue(s, user.id, 'revert', user.email, now, REVERT_LINK_TTL_MS);
    const pending = await s.users.setPendingEmail(user.id, { email: newEmail, expires: new Date(now.getTime() + CONFIRM_LINK_TTL_MS) });
    if (mailed) {
      await s.outbox.enqueue(
        holder
          ? addressTakenMail(this.mail, holder)
          : confirmEmailMail(this.mail, { name: user.name, email: newEmail }, confirmEmailLink(this.mail, confirm), ms(CONFIRM_LINK_TTL_MS, { long: true })),
      );
      await s.outbox.enqueue(emailChangingMail(this.mail, user, newEmail, revertEmailLink(this.mail, revert), ms(REVERT_LINK_TTL_MS, { long: true })));
    }
    s.audit.add(ctx, { action: 'email.change_requested', target: userTarget(user), summary: { from: user.email, to: newEmail, address_taken: holder !== undefined, mailed } });
    return pending;
  }

  /**
   * `POST /user/me/email/confirm`: a live, unused confirmation link makes the change (the new
   * address is proven). `409` if an active user has taken the address meanwhile (the link stays
   * usable); `400 invalid_token` otherwise.
   */
  async confirm(token: string, ctx: AuditContext): Promise<void> {
    await this.transact(async (s) => {
      const link = await s.emailLinks.consume(hashLinkToken(token), 'confirm', this.clock.now());
      const before = link && (await s.users.findById(link.userId));
      const user = link?.email && before ? await s.users.changeEmail(link.userId, link.email) : undefined;
      if (!user || !before) throw new InvalidTokenError();
      s.audit.add(ctx, { action: 'email.change_confirmed', target: userTarget(user), summary: { from: before.email, to: user.email } });
    });
  }

  /**
   * `POST /user/me/email/revert`: a live, unused revert link puts its address back (cancelling a
   * change still pending), makes the password unusable (whoever moved the address away may have
   * set it), ends every token and every link of the user, and mails a reset link to the restored
   * address: its owner sets a new password by it, and nobody else can sign in meanwhile.
   */
  async revert(token: string, ctx: AuditContext): Promise<void> {
    await this.transact(async (s) => {
      const link = await s.emailLinks.consume(hashLinkToken(token), 'revert', this.clock.now());
      const before = link && (await s.users.findById(link.userId));
      const user = link?.email && before ? await s.users.changeEmail(link.userId, link.email, { forcePasswordChange: true }) : undefined;
      if (!user || !before) throw new InvalidTokenError();
      s.audit.add(ctx, {
        action: 'email.change_reverted',
        target: userTarget(user),
        summary: {
          from: before.email,
          to: user.email,
          cancelled_pending: before.pendingEmail ?? null,
          tokens_ended: 'all',
          force_password_change: true,
          password_unusable: true,
          reset_link_mailed: true,
        },
      });
      await s.users.setPassword(user.id, null, true);
      await s.tokens.deleteForUser(user.id);
      await s.passwordTokens.deleteForUser(user.id); // a reset link may have gone to the address being undone
      await s.emailLinks.deleteForUser(user.id);
      // After the links died: this one is the only way back in.
      const reset = await this.links.issue(s, user, 'reset');
      await s.outbox.enqueue(revertedResetMail(this.mail, user, reset.link, reset.validFor));
    });
  }

  private async issue(s: Stores, userId: string, purpose: 'confirm' | 'revert', email: string, now: Date, ttlMs: number): Promise<string> {
    const token = newLinkToken();
    await s.emailLinks.insert({ userId, tokenHash: hashLinkToken(token), purpose, email, created: now, expires: new Date(now.getTime() + ttlMs) });
    return token;
  }
}
