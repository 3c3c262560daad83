import type { Knex } from 'knex';

/** Requests per client IP and route in the current window (express-rate-limit's store), shared by every instance. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rate_limits', (t) => {
    t.text('key').primary(); // <route>:<client IP>
    t.integer('hits').notNullable();
    t.timestamp('reset_at', { useTz: true }).notNullable();
  });
  await knex.raw('create index rate_limits_reset_at_idx on rate_limits (reset_at)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('rate_limits');
}
