import type { Knex } from 'knex';

/**
 * Signed webhooks (issue 23, API.md §2.9).
 *
 * - `webhooks`: the endpoints system admins register. `secret` and `previous_secret` are sealed
 *   (AES-256-GCM, a key derived from MFA_KEY, bound to the row); the previous one signs beside
 *   the current one until `previous_secret_until` (a rotation). `failing_since`: the first failed
 *   attempt since the last delivered one (an endpoint failing for 5 days is disabled).
 * - `webhook_deliveries`: one row per (event, endpoint), made by the fan-out from the audit chain
 *   (or by a test event). `body` is the JSON sent, byte for byte the same at every attempt and
 *   replay. `attempts` is the fencing token of the claim that holds it (as mail_outbox's);
 *   `locked_until` its lease. Unique (webhook_id, event_id): a fan-out never inserts twice.
 * - `webhook_cursor`: the audit chain position the fan-out has reached. Set to the chain's head
 *   now: history is not replayed to endpoints registered later.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('webhooks', (t) => {
    t.uuid('id').primary();
    t.text('url').notNullable();
    t.specificType('events', 'text[]').notNullable();
    t.text('description');
    t.boolean('enabled').notNullable().defaultTo(true);
    t.text('secret').notNullable();
    t.text('previous_secret');
    t.timestamp('previous_secret_until', { useTz: true });
    t.timestamp('created', { useTz: true }).notNullable();
    t.timestamp('updated', { useTz: true }).notNullable();
    t.text('disabled_reason');
    t.timestamp('failing_since', { useTz: true });
    t.uuid('created_by');
    t.index(['created', 'id'], 'webhooks_created_idx');
  });
  await knex.schema.createTable('webhook_deliveries', (t) => {
    t.uuid('id').primary();
    t.uuid('webhook_id').notNullable().references('id').inTable('webhooks').onDelete('CASCADE');
    t.uuid('event_id').notNullable();
    t.text('type').notNullable();
    t.text('body').notNullable();
    t.text('status').notNullable().defaultTo('pending').checkIn(['pending', 'delivered', 'failed'], 'webhook_deliveries_status_check');
    t.integer('attempts').notNullable().defaultTo(0);
    t.integer('last_status');
    t.text('last_error');
    t.timestamp('next_attempt', { useTz: true }).notNullable();
    t.timestamp('locked_until', { useTz: true });
    t.timestamp('created', { useTz: true }).notNullable();
    t.timestamp('delivered', { useTz: true });
    t.unique(['webhook_id', 'event_id'], { indexName: 'webhook_deliveries_event_key' });
  });
  await knex.raw("create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt) where status = 'pending'");
  await knex.raw('create index webhook_deliveries_log_idx on webhook_deliveries (webhook_id, created desc, id desc)');
  await knex.schema.createTable('webhook_cursor', (t) => {
    t.integer('id').primary().checkIn(['1'], 'webhook_cursor_one_row');
    t.bigInteger('pos').notNullable();
  });
  await knex.raw('insert into webhook_cursor (id, pos) select 1, coalesce(max(pos), 0) from audit_chain');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('webhook_cursor');
  await knex.schema.dropTable('webhook_deliveries');
  await knex.schema.dropTable('webhooks');
}
