import type { Knex } from 'knex';

/**
 * Failed logins in a row per account (or per identifier nobody holds), so that throttling holds
 * across instances and restarts (API.md §2.4b).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('login_throttle', (t) => {
    t.text('key').primary(); // user:<uuid> for an account, email:<address> or id:<uuid> for an identifier nobody holds
    t.integer('failures').notNullable();
    t.timestamp('last_failure', { useTz: true }).notNullable();
    t.timestamp('blocked_until', { useTz: true });
  });
  await knex.raw('create index login_throttle_last_failure_idx on login_throttle (last_failure)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('login_throttle');
}
