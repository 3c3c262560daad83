import type { Knex } from 'knex';

/**
 * The sender's claim takes each enabled endpoint's oldest due deliveries, up to its share (see
 * src/stores/webhook-store.ts), so that one endpoint's backlog never hides another's deliveries.
 * This index finds an endpoint's pending deliveries in due order without reading its delivered
 * ones or another endpoint's; it replaces the index in due order across endpoints, which nothing
 * else reads (with both, the planner took the old one and read past a long backlog).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("create index webhook_deliveries_endpoint_due_idx on webhook_deliveries (webhook_id, next_attempt) where status = 'pending'");
  await knex.raw('drop index webhook_deliveries_due_idx');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt) where status = 'pending'");
  await knex.raw('drop index webhook_deliveries_endpoint_due_idx');
}
