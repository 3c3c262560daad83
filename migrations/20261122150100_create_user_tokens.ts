import type { Knex } from 'knex';

/** Login tokens and API tokens, one table (Conch's user_session_token). */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('user_tokens', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('kind').notNullable().checkIn(['login', 'api'], 'user_tokens_kind_check');
    t.text('name').notNullable();
    t.specificType('scopes', 'text[]').notNullable().defaultTo(knex.raw(`'{api}'::text[]`));
    t.timestamp('created', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('expires', { useTz: true }).notNullable();
    t.timestamp('last_used', { useTz: true });
    t.text('last_ipaddr');
    t.text('user_agent');
    t.unique(['user_id', 'name'], { indexName: 'user_tokens_user_id_name_key' });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('user_tokens');
}
