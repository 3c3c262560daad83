import type { Knex } from 'knex';

/** Single-use set-password links (welcome and reset), stored only as SHA-256 hashes. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('password_tokens', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('token_hash').notNullable().unique({ indexName: 'password_tokens_token_hash_key' });
    t.text('purpose').notNullable().checkIn(['welcome', 'reset'], 'password_tokens_purpose_check');
    t.timestamp('created', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('expires', { useTz: true }).notNullable();
    t.timestamp('used', { useTz: true });
    t.index(['user_id'], 'password_tokens_user_id_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('password_tokens');
}
