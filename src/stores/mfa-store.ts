import type { Knex } from 'knex';
import { ConflictError } from '../domain/errors';
import type { Factor, FactorType, WebauthnCredential } from '../domain/mfa';
import { isUniqueViolation } from './pg-errors';

const FACTOR_COLUMNS = [
  'id',
  'user_id',
  'type',
  'name',
  'verified',
  'created',
  'last_used',
  'totp_secret',
  'totp_last_step',
  'webauthn_credential_id',
  'webauthn_public_key',
  'webauthn_counter',
  'webauthn_transports',
  'webauthn_backup_eligible',
  'webauthn_backed_up',
  'webauthn_aaguid',
  'webauthn_user_verified',
] as const;

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
  webauthn_credential_id: string | null;
  webauthn_public_key: Uint8Array | null;
  webauthn_counter: string | number | null;
  webauthn_transports: string[] | null;
  webauthn_backup_eligible: boolean | null;
  webauthn_backed_up: boolean | null;
  webauthn_aaguid: string | null;
  webauthn_user_verified: boolean | null;
}

function toCredential(row: FactorRow): WebauthnCredential | null {
  if (row.type !== 'webauthn' || row.webauthn_credential_id === null || row.webauthn_public_key === null) return null;
  return {
    credentialId: row.webauthn_credential_id,
    // A copy, as a plain Uint8Array (pg gives a Buffer, which may be a view of a larger one).
    publicKey: Uint8Array.from(row.webauthn_public_key),
    counter: Number(row.webauthn_counter ?? 0),
    transports: row.webauthn_transports ?? [],
    backupEligible: row.webauthn_backup_eligible ?? false,
    backedUp: row.webauthn_backed_up ?? false,
    aaguid: row.webauthn_aaguid ?? '',
    userVerified: row.webauthn_user_verified ?? false,
  };
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
    webauthn: toCredential(row),
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
  /**
   * Marks a pending passkey factor verified with its credential; 'duplicate' when the credential
   * id is already stored (any user's: a credential registered twice), false when the factor was
   * verified already.
   */
  markWebauthnVerified(id: string, credential: WebauthnCredential, at: Date): Promise<boolean | 'duplicate'>;
  /** The verified passkey factor holding this credential, any user's. */
  findByCredentialId(credentialId: string): Promise<Factor | undefined>;
  /**
   * Records an accepted assertion's signature counter, in one statement, only when it went up
   * (or both it and the stored one are 0: an authenticator that keeps none): of two uses of one
   * assertion, one wins. Returns whether it was recorded.
   */
  acceptWebauthnCounter(id: string, counter: number, at: Date): Promise<boolean>;
  /** Renames one of the user's factors; undefined when there is none; ConflictError when the name is taken. */
  renameFactor(userId: string, id: string, name: string): Promise<Factor | undefined>;
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

  async markWebauthnVerified(id: string, c: WebauthnCredential, at: Date): Promise<boolean | 'duplicate'> {
    try {
      // In a savepoint (a nested transaction): a unique violation must not end the caller's transaction.
      const n = await this.db.transaction((trx) => trx('mfa_factors')
        .where({ id, verified: false, type: 'webauthn' })
        .update({
          verified: true,
          last_used: at,
          webauthn_credential_id: c.credentialId,
          webauthn_public_key: Buffer.from(c.publicKey),
          webauthn_counter: c.counter,
          webauthn_transports: c.transports,
          webauthn_backup_eligible: c.backupEligible,
          webauthn_backed_up: c.backedUp,
          webauthn_aaguid: c.aaguid,
          webauthn_user_verified: c.userVerified,
        }));
      return n > 0;
    } catch (err) {
      if (isUniqueViolation(err)) return 'duplicate';
      throw err;
    }
  }

  async findByCredentialId(credentialId: string): Promise<Factor | undefined> {
    const row = await this.db('mfa_factors').select(FACTOR_COLUMNS).where({ webauthn_credential_id: credentialId, type: 'webauthn', verified: true }).first();
    return row ? toFactor(row) : undefined;
  }

  async acceptWebauthnCounter(id: string, counter: number, at: Date): Promise<boolean> {
    const rows = await this.db('mfa_factors')
      .where({ id, verified: true, type: 'webauthn' })
      .where((w) => (counter === 0 ? w.where('webauthn_counter', 0) : w.where('webauthn_counter', '<', counter)))
      .update({ webauthn_counter: counter, last_used: at })
      .returning(['id']);
    return rows.length > 0;
  }

  async renameFactor(userId: string, id: string, name: string): Promise<Factor | undefined> {
    try {
      const [row] = await this.db('mfa_factors').where({ user_id: userId, id }).update({ name }).returning(FACTOR_COLUMNS);
      return row ? toFactor(row) : undefined;
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError('you already have a factor with that name');
      throw err;
    }
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
