import type { Knex } from 'knex';

/** What a link proves: a registration's address (`verify`), a new address (`confirm`), or the old one to go back to (`revert`). */
export type EmailLinkPurpose = 'verify' | 'confirm' | 'revert';

export interface NewEmailLink {
  userId: string;
  tokenHash: string;
  purpose: EmailLinkPurpose;
  /** The address the link is about (the new one for `confirm`, the old one for `revert`). */
  email: string | null;
  created: Date;
  expires: Date;
}

export interface EmailLinkStore {
  insert(link: NewEmailLink): Promise<void>;
  /** Marks a live link of that purpose used, atomically: of two concurrent calls only one gets it. */
  consume(tokenHash: string, purpose: EmailLinkPurpose, now: Date): Promise<{ userId: string; email: string | null } | undefined>;
  /** Every link of the user (of these purposes) dies. */
  deleteForUser(userId: string, purposes?: EmailLinkPurpose[]): Promise<void>;
}

export class KnexEmailLinkStore implements EmailLinkStore {
  constructor(private readonly db: Knex) {}

  async insert(link: NewEmailLink): Promise<void> {
    await this.db('email_links').insert({
      user_id: link.userId,
      token_hash: link.tokenHash,
      purpose: link.purpose,
      email: link.email,
      created: link.created,
      expires: link.expires,
    });
  }

  async consume(tokenHash: string, purpose: EmailLinkPurpose, now: Date): Promise<{ userId: string; email: string | null } | undefined> {
    const [row] = await this.db('email_links')
      .where({ token_hash: tokenHash, purpose })
      .whereNull('used')
      .where('expires', '>', now)
      .update({ used: now })
      .returning(['user_id', 'email']);
    return row ? { userId: row.user_id, email: row.email } : undefined;
  }

  async deleteForUser(userId: string, purposes?: EmailLinkPurpose[]): Promise<void> {
    const q = this.db('email_links').where('user_id', userId);
    if (purposes) q.whereIn('purpose', purposes);
    await q.delete();
  }
}
