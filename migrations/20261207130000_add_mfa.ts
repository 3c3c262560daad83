import type { Knex } from 'knex';

/**
 * Two-factor sign-in (issue 19, API.md §2.8).
 *
 * - `users.mfa_enabled`: true exactly while the user has a verified factor (kept by the
 *   transactions that verify, remove and reset factors, under the user row's lock), so the hot
 *   path's one token query learns it with the user.
 * - `user_tokens.aal`: the assurance level of a login token (`aal2`: password and a factor).
 *   API tokens stay `aal1`: MFA does not confine them.
 * - `mfa_factors`: a user's factors. `totp_secret` is the TOTP secret encrypted with a key
 *   derived from MFA_KEY (`<keyId>:<iv>:<ciphertext+tag>`, AES-256-GCM bound to the row), never
 *   the secret itself; `totp_last_step` the last 30 s step accepted, so a code is accepted once.
 *   Passkeys (`webauthn`) add their columns by a migration of their own.
 * - `mfa_recovery_codes`: single-use codes, stored as keyed hashes (`<keyId>:<hmac hex>`).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.boolean('mfa_enabled').notNullable().defaultTo(false);
  });
  await knex.schema.alterTable('user_tokens', (t) => {
    t.text('aal').notNullable().defaultTo('aal1').checkIn(['aal1', 'aal2'], 'user_tokens_aal_check');
  });
  await knex.schema.createTable('mfa_factors', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('type').notNullable().checkIn(['totp', 'webauthn'], 'mfa_factors_type_check');
    t.text('name').notNullable();
    t.boolean('verified').notNullable().defaultTo(false);
    t.timestamp('created', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_used', { useTz: true });
    t.text('totp_secret');
    t.bigInteger('totp_last_step');
    t.unique(['user_id', 'name'], { indexName: 'mfa_factors_user_id_name_key' });
  });
  // Housekeeping drops factors left unconfirmed: this finds them without a scan.
  await knex.raw('create index mfa_factors_pending_created_idx on mfa_factors (created) where not verified');
  await knex.schema.createTable('mfa_recovery_codes', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('code_hash').notNullable();
    t.timestamp('used', { useTz: true });
    t.timestamp('created', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['user_id'], 'mfa_recovery_codes_user_id_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('mfa_recovery_codes');
  await knex.schema.dropTable('mfa_factors');
  await knex.schema.alterTable('user_tokens', (t) => {
    t.dropColumn('aal'); // its check goes with it
  });
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('mfa_enabled');
  });
}
