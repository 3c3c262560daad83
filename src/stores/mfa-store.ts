import type { Knex } from 'knex';
import { ConflictError } from '../domain/errors';
import type { Factor, FactorType } from '../domain/mfa';
import { isUniqueViolation } from './pg-errors';

const FACTOR_COLUMNS = ['id', 'user_id', 'type', 'name', 'verified', 'created', 'last_used', 'totp_secret', 'totp_last_step'] as const;

interface FactorRow {
  id: string;
  user_id: string;
  type: FactorType;
  name: string;
  verified: boolean;
  created: Date;
  last_used: Date | null;
  totp_secret: string | null;
  totp_last_step: string | number | null; // bigint: pg gives a string
}

function toFactor(row: FactorRow): Factor {
  return {
    id: row.id,
    userId: row.user_id,
    type: row.type,
    name: row.name,
    verified: row.verified,
    created: row.created,
    lastUsed: row.last_used,
    totpSecret: row.totp_secret,
    totpLastStep: row.totp_last_step === null ? null : Number(row.totp_last_step),
  };
}

export interface NewFactorRow {
  id: string;
  userId: string;
  type: FactorType;
  name: string;
  totpSecret: string | null;
  /** The service's clock, not the database's: the 10 minutes a pending factor lives are counted by it. */
  created: Date;
}

/**
 * A user's factors and recovery codes (API.md §2.8). Type-specific columns (`totp_*` now,
 * passkeys' later) are read and written only for their type.
 */
export interface MfaStore {
  /** ConflictError when the user has a factor of that name. */
  insertFactor(factor: NewFactorRow): Promise<Factor>;
  /** The user's verified factors, and pending ones made after `pendingSince`, oldest first. */
  listFactors(userId: string, pendingSince: Date): Promise<Factor[]>;
  countFactors(userId: string, pendingSince: Date): Promise<number>;
  findFactor(userId: string, id: string): Promise<Factor | undefined>;
  /** Marks a factor verified, recording the TOTP step its code was of; false when it was verified already. */
  markVerified(id: string, step: number | null, at: Date): Promise<boolean>;
  /**
   * Records an accepted TOTP code's step, in one statement, only when it is after the last one
   * accepted: of two requests with one code (or a code of an earlier step), one wins.
   */
  acceptTotpStep(id: string, step: number, at: Date): Promise<boolean>;
  /** Deletes a factor; undefined when there is none of that user's. */
  deleteFactor(userId: string, id: string): Promise<Factor | undefined>;
  /** Deletes the user's pending factors made before `before` (their names are free again). */
  deletePendingBefore(userId: string, before: Date): Promise<void>;
  countVerified(userId: string): Promise<number>;
  /** Every factor and recovery code of the user; returns the factors that went. */
  deleteAll(userId: string): Promise<{ factors: Factor[]; codes: number }>;
  /** Housekeeping: pending factors made before `before`, up to `limit`; returns how many went. */
  prunePending(before: Date, limit: number): Promise<number>;

  /** Replaces the user's recovery codes with these hashes. */
  replaceRecoveryCodes(userId: string, hashes: string[]): Promise<void>;
  deleteRecoveryCodes(userId: string): Promise<number>;
  /**
   * Uses an unused code whose hash is one of `candidates` (the code's hash under each key), in one
   * statement: of two requests with one code, one wins. Returns whether one was used.
   */
  useRecoveryCode(userId: string, candidates: string[], at: Date): Promise<boolean>;
  countUnusedRecoveryCodes(userId: string): Promise<number>;
}

export class KnexMfaStore implements MfaStore {
  constructor(private readonly db: Knex) {}

  async insertFactor(factor: NewFactorRow): Promise<Factor> {
    try {
      const [row] = await this.db('mfa_factors')
        .insert({ id: factor.id, user_id: factor.userId, type: factor.type, name: factor.name, totp_secret: factor.totpSecret, created: factor.created })
        .returning(FACTOR_COLUMNS);
      return toFactor(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError('you already have a factor with that name');
      throw err;
    }
  }

  private live(userId: string, pendingSince: Date) {
    return this.db('mfa_factors')
      .where('user_id', userId)
      .where((w) => w.where('verified', true).orWhere('created', '>', pendingSince));
  }

  async listFactors(userId: string, pendingSince: Date): Promise<Factor[]> {
    const rows = await this.live(userId, pendingSince).select(FACTOR_COLUMNS).orderBy([{ column: 'created' }, { column: 'id' }]);
    return rows.map(toFactor);
  }

  async countFactors(userId: string, pendingSince: Date): Promise<number> {
    const row = await this.live(userId, pendingSince).count<{ count: string }>('* as count').first();
    return Number(row?.count ?? 0);
  }

  async findFactor(userId: string, id: string): Promise<Factor | undefined> {
    const row = await this.db('mfa_factors').select(FACTOR_COLUMNS).where({ user_id: userId, id }).first();
    return row ? toFactor(row) : undefined;
  }

  async markVerified(id: string, step: number | null, at: Date): Promise<boolean> {
    const n = await this.db('mfa_factors').where({ id, verified: false }).update({ verified: true, totp_last_step: step, last_used: at });
    return n > 0;
  }

  async acceptTotpStep(id: string, step: number, at: Date): Promise<boolean> {
    const rows = await this.db('mfa_factors')
      .where({ id, verified: true })
      .where((w) => w.whereNull('totp_last_step').orWhere('totp_last_step', '<', step))
      .update({ totp_last_step: step, last_used: at })
      .returning(['id']);
    return rows.length > 0;
  }

  async deleteFactor(userId: string, id: string): Promise<Factor | undefined> {
    const [row] = await this.db('mfa_factors').where({ user_id: userId, id }).delete().returning(FACTOR_COLUMNS);
    return row ? toFactor(row) : undefined;
  }

  async deletePendingBefore(userId: string, before: Date): Promise<void> {
    await this.db('mfa_factors').where({ user_id: userId, verified: false }).where('created', '<=', before).delete();
  }

  async countVerified(userId: string): Promise<number> {
    const row = await this.db('mfa_factors').count<{ count: string }>('* as count').where({ user_id: userId, verified: true }).first();
    return Number(row?.count ?? 0);
  }

  async deleteAll(userId: string): Promise<{ factors: Factor[]; codes: number }> {
    const rows = await this.db('mfa_factors').where('user_id', userId).delete().returning(FACTOR_COLUMNS);
    const codes = await this.deleteRecoveryCodes(userId);
    return { factors: rows.map(toFactor), codes };
  }

  async prunePending(before: Date, limit: number): Promise<number> {
    const doomed = this.db('mfa_factors').select('id').where('verified', false).where('created', '<=', before).limit(limit);
    return this.db('mfa_factors').whereIn('id', doomed).delete();
  }

  async replaceRecoveryCodes(userId: string, hashes: string[]): Promise<void> {
    await this.deleteRecoveryCodes(userId);
    await this.db('mfa_recovery_codes').insert(hashes.map((code_hash) => ({ user_id: userId, code_hash })));
  }

  async deleteRecoveryCodes(userId: string): Promise<number> {
    return this.db('mfa_recovery_codes').where('user_id', userId).delete();
  }

  async useRecoveryCode(userId: string, candidates: string[], at: Date): Promise<boolean> {
    // One row at most: a code is unique among a user's ten (60 random bits each).
    const rows = await this.db('mfa_recovery_codes')
      .where('user_id', userId)
      .whereNull('used')
      .whereIn('code_hash', candidates)
      .update({ used: at })
      .returning(['id']);
    return rows.length > 0;
  }

  async countUnusedRecoveryCodes(userId: string): Promise<number> {
    const row = await this.db('mfa_recovery_codes').count<{ count: string }>('* as count').where('user_id', userId).whereNull('used').first();
    return Number(row?.count ?? 0);
  }
}
