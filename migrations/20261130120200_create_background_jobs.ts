import type { Knex } from 'knex';

/**
 * Work done after the request that asked for it has been answered (a forgot-password request:
 * the answer must not depend on whether the address has an account), run by a background
 * runner with retries, surviving restarts. A job's row goes when it is done.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('background_jobs', (t) => {
    t.bigIncrements('id');
    t.text('kind').notNullable();
    t.jsonb('payload').notNullable();
    t.timestamp('created', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('next_attempt', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('locked_until', { useTz: true });
    t.text('last_error');
  });
  await knex.raw('create index background_jobs_next_attempt_idx on background_jobs (next_attempt)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('background_jobs');
}
