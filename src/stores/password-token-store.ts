import type { Knex } from 'knex';

export type PasswordTokenPurpose = 'welcome' | 'reset';

export interface PasswordTokenStore {
  insert(userId: string, tokenHash: string, purpose: PasswordTokenPurpose, created: Date, expires: Date): Promise<void>;
  /** Marks a live token used, atomically: of two concurrent calls only one gets the row. */
  consume(tokenHash: string, now: Date): Promise<{ userId: string; purpose: PasswordTokenPurpose } | undefined>;
  /** Whether a link of this purpose was made for the user since `since` (per-account throttle). */
  issuedSince(userId: string, purpose: PasswordTokenPurpose, since: Date): Promise<boolean>;
  /** Every link of the user dies (the password changed by some route, or the user was deactivated). */
  deleteForUser(userId: string): Promise<void>;
}

export class KnexPasswordTokenStore implements PasswordTokenStore {
  constructor(private readonly db: Knex) {}

  async insert(userId: string, tokenHash: string, purpose: PasswordTokenPurpose, created: Date, expires: Date): Promise<void> {
    await this.db('password_tokens').insert({ user_id: userId, token_hash: tokenHash, purpose, created, expires });
  }

  async consume(tokenHash: string, now: Date): Promise<{ userId: string; purpose: PasswordTokenPurpose } | undefined> {
    const [row] = await this.db('password_tokens')
      .where('token_hash', tokenHash)
      .whereNull('used')
      .where('expires', '>', now)
      .update({ used: now })
      .returning(['user_id', 'purpose']);
    return row ? { userId: row.user_id, purpose: row.purpose } : undefined;
  }

  async issuedSince(userId: string, purpose: PasswordTokenPurpose, since: Date): Promise<boolean> {
    return (await this.db('password_tokens').select('id').where({ user_id: userId, purpose }).where('created', '>', since).first()) !== undefined;
  }

  async deleteForUser(userId: string): Promise<void> {
    await this.db('password_tokens').where('user_id', userId).delete();
  }
}
