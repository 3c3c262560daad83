import type { Knex } from 'knex';

/**
 * Self-service addresses (API.md §2.4b, §2.2): whether a user's address is proven
 * (`email_verified`: false only for a self-registered account not yet verified; everyone else,
 * the users before this migration included, counts as verified), the address a user asked to
 * change to (`pending_email`, until `pending_email_expires`), and the single-use links that
 * prove one, stored only as SHA-256 hashes: `verify` (a registration), `confirm` (a new address,
 * in `email`) and `revert` (the old address, in `email`).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.boolean('email_verified').notNullable().defaultTo(true);
    // An address change asked for by the user, until its link is used or expires (API.md §2.2).
    t.text('pending_email');
    t.timestamp('pending_email_expires', { useTz: true });
  });
  // The service removes registrations never verified: this finds the old ones without a scan.
  await knex.raw('create index users_unverified_created_idx on users (created) where not email_verified');
  await knex.schema.createTable('email_links', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('token_hash').notNullable().unique({ indexName: 'email_links_token_hash_key' });
    t.text('purpose').notNullable().checkIn(['verify', 'confirm', 'revert'], 'email_links_purpose_check');
    t.text('email');
    t.timestamp('created', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('expires', { useTz: true }).notNullable();
    t.timestamp('used', { useTz: true });
    t.index(['user_id'], 'email_links_user_id_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('email_links');
  await knex.schema.alterTable('users', (t) => {
    t.dropColumns('email_verified', 'pending_email', 'pending_email_expires');
  });
}
