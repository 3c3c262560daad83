import { InvalidTokenError, NotFoundError } from '../domain/errors';
import type { Clock, TokenKind, UserRef } from '../domain/types';
import { passwordChangedMail, type MailSettings } from '../mail/templates';
import type { Stores, Transactor } from '../stores';
import type { PasswordHasher } from './password-hasher';
import { hashLinkToken } from './password-links';

export class PasswordService {
  constructor(
    private readonly transact: Transactor,
    private readonly hasher: PasswordHasher,
    private readonly clock: Clock,
    private readonly mail: MailSettings,
  ) {}

  /**
   * `POST /password/reset/confirm`: a live, unused link sets the password, clears the forced
   * change, ends every login token and kills the user's other links. Of two concurrent uses of
   * one link, exactly one succeeds.
   */
  async confirmReset(token: string, password: string): Promise<void> {
    this.hasher.checkPolicy(password);
    const passwordHash = await this.hasher.hash(password);
    await this.transact(async (s) => {
      const consumed = await s.passwordTokens.consume(hashLinkToken(token), this.clock.now());
      if (!consumed) throw new InvalidTokenError();
      const user = await s.users.findById(consumed.userId);
      if (!user || user.deactivated) throw new InvalidTokenError();
      await s.users.setPassword(user.id, passwordHash, false);
      await s.tokens.deleteForUser(user.id, 'login');
      await s.passwordTokens.deleteForUser(user.id);
      if (consumed.purpose === 'reset') await s.outbox.enqueue(passwordChangedMail(this.mail, user));
    });
  }

  /**
   * Sets a password (the operator's `passwd`): clears the forced change, kills every
   * set-password link and ends the tokens `clearTokens` names.
   */
  async setPassword(ref: UserRef, password: string, clearTokens: TokenKind | 'all' | 'none' = 'login'): Promise<void> {
    this.hasher.checkPolicy(password);
    const passwordHash = await this.hasher.hash(password);
    await this.transact(async (s) => {
      const user = await activeUser(s, ref);
      await s.users.setPassword(user.id, passwordHash, false);
      await s.passwordTokens.deleteForUser(user.id);
      if (clearTokens !== 'none') await s.tokens.deleteForUser(user.id, clearTokens === 'all' ? undefined : clearTokens);
    });
  }

  /** The operator's `force-password-change`: the user's login tokens are confined until they change it. */
  async forcePasswordChange(ref: UserRef): Promise<void> {
    await this.transact(async (s) => {
      const user = await activeUser(s, ref);
      await s.users.setForcePasswordChange(user.id, true);
    });
  }
}

async function activeUser(s: Stores, ref: UserRef) {
  const user = await s.users.findByRef(ref);
  if (!user || user.deactivated) throw new NotFoundError('no active user with that id or email');
  return user;
}
