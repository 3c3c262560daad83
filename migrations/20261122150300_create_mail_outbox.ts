import type { Knex } from 'knex';

/** Mail written in the same transaction as the change that caused it; sent after commit. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('mail_outbox', (t) => {
    t.bigIncrements('id');
    t.specificType('recipients', 'text[]').notNullable();
    t.text('subject').notNullable();
    t.text('body_text'); // cleared once sent: it may hold a single-use link
    t.timestamp('created', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('next_attempt', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('locked_until', { useTz: true });
    t.timestamp('sent', { useTz: true });
    t.text('last_error');
  });
  await knex.raw('create index mail_outbox_pending_idx on mail_outbox (next_attempt) where sent is null');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('mail_outbox');
}
