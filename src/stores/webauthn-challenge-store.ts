import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { ChallengePurpose } from '../domain/mfa';

/** A challenge as stored: its SHA-256 (hex), never the challenge itself. */
export function challengeHash(challenge: string): string {
  return crypto.createHash('sha256').update(challenge, 'utf8').digest('hex');
}

export interface IssuedChallenge {
  /** base64url, as the options carry it. */
  challenge: string;
  purpose: ChallengePurpose;
  /** The user the ceremony is for; null for a sign-in without password (no user named). */
  userId: string | null;
  /** registration: the pending factor the credential is for. */
  factorId: string | null;
  expires: Date;
}

/**
 * WebAuthn challenges of ceremonies under way (API.md §2.8), in the database so that any instance
 * can finish a ceremony another began. Single use: `consume` deletes in one statement.
 */
export interface WebauthnChallengeStore {
  issue(challenge: IssuedChallenge): Promise<void>;
  /**
   * Spends a challenge, in one statement: true when it was issued for this purpose, this user
   * (null: none) and, when given, this factor, and had not expired at `now`. Of two concurrent
   * uses, one wins; a used, expired, foreign or never-issued challenge gives false.
   */
  consume(challenge: string, purpose: ChallengePurpose, userId: string | null, now: Date, factorId?: string): Promise<boolean>;
  /** Housekeeping: challenges expired at `now`, up to `limit`; returns how many went. */
  pruneExpired(now: Date, limit: number): Promise<number>;
}

export class KnexWebauthnChallengeStore implements WebauthnChallengeStore {
  constructor(private readonly db: Knex) {}

  async issue(c: IssuedChallenge): Promise<void> {
    await this.db('webauthn_challenges').insert({ challenge_hash: challengeHash(c.challenge), purpose: c.purpose, user_id: c.userId, factor_id: c.factorId, expires: c.expires });
  }

  async consume(challenge: string, purpose: ChallengePurpose, userId: string | null, now: Date, factorId?: string): Promise<boolean> {
    const { rows } = await this.db.raw(
      `delete from webauthn_challenges
        where challenge_hash = ? and purpose = ? and user_id is not distinct from ?::uuid and expires > ?
          and (?::uuid is null or factor_id = ?::uuid)
        returning challenge_hash`,
      [challengeHash(challenge), purpose, userId, now, factorId ?? null, factorId ?? null],
    );
    return rows.length > 0;
  }

  async pruneExpired(now: Date, limit: number): Promise<number> {
    const doomed = this.db('webauthn_challenges').select('challenge_hash').where('expires', '<=', now).limit(limit);
    return this.db('webauthn_challenges').whereIn('challenge_hash', doomed).delete();
  }
}
