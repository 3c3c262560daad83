import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('name').notNullable();
    t.text('email').notNullable();
    t.text('first_name');
    t.text('last_name');
    t.text('password_hash');
    t.boolean('is_admin').notNullable().defaultTo(false);
    t.boolean('force_password_change').notNullable().defaultTo(false);
    t.timestamp('created', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_login', { useTz: true });
    t.timestamp('last_seen', { useTz: true });
    t.timestamp('deactivated', { useTz: true });
  });
  // Unique among active users: email case-insensitively, name case-sensitively.
  await knex.raw('create unique index users_email_active_key on users (lower(email)) where deactivated is null');
  await knex.raw('create unique index users_name_active_key on users (name) where deactivated is null');
  // Keyset pagination by name; "C" collation so every server orders alike.
  await knex.raw('create index users_name_id_idx on users (name collate "C", id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('users');
}
