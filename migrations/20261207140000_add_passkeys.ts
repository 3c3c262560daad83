import type { Knex } from 'knex';

/**
 * Passkeys (issue 20, API.md §2.8).
 *
 * - `mfa_factors` gains a `webauthn` factor's credential: its id (base64url, unique across all
 *   users, so a credential registered twice is refused), public key (COSE), signature counter,
 *   transports, backup eligibility and state, AAGUID, and whether the user was verified at
 *   registration (informative). Read and written only for `type = 'webauthn'`.
 * - `webauthn_challenges`: the challenges of ceremonies under way, single use and valid 5
 *   minutes, kept in the database so that any instance can finish a ceremony another began.
 *   Stored only as needed to check them: the SHA-256 of the challenge (hex), the purpose
 *   (`registration`, `mfa`: the second step of a login, `passkey`: a sign-in without password),
 *   the user (none for `passkey`) and the factor (`registration`). Housekeeping drops expired ones.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('mfa_factors', (t) => {
    t.text('webauthn_credential_id');
    t.binary('webauthn_public_key');
    t.bigInteger('webauthn_counter');
    t.specificType('webauthn_transports', 'text[]');
    t.boolean('webauthn_backup_eligible');
    t.boolean('webauthn_backed_up');
    t.text('webauthn_aaguid');
    t.boolean('webauthn_user_verified');
  });
  await knex.raw('create unique index mfa_factors_webauthn_credential_id_key on mfa_factors (webauthn_credential_id) where webauthn_credential_id is not null');
  await knex.schema.createTable('webauthn_challenges', (t) => {
    t.text('challenge_hash').primary();
    t.text('purpose').notNullable().checkIn(['registration', 'mfa', 'passkey'], 'webauthn_challenges_purpose_check');
    t.uuid('user_id').references('id').inTable('users').onDelete('CASCADE');
    t.uuid('factor_id').references('id').inTable('mfa_factors').onDelete('CASCADE');
    t.timestamp('expires', { useTz: true }).notNullable();
    t.index(['expires'], 'webauthn_challenges_expires_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('webauthn_challenges');
  await knex.raw('drop index if exists mfa_factors_webauthn_credential_id_key');
  await knex.schema.alterTable('mfa_factors', (t) => {
    for (const column of ['webauthn_credential_id', 'webauthn_public_key', 'webauthn_counter', 'webauthn_transports', 'webauthn_backup_eligible', 'webauthn_backed_up', 'webauthn_aaguid', 'webauthn_user_verified']) {
      t.dropColumn(column);
    }
  });
}
