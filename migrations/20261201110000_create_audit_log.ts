import type { Knex } from 'knex';

/**
 * The audit log (API.md §2.4b): one row per state change, written in the transaction of the
 * change. `seq` is the order rows were written in (appends are serialised by a transaction-level
 * advisory lock), and each row's `hash` covers its content and the previous row's hash, so an
 * altered, removed or inserted row breaks the chain. No foreign keys: the log outlives what it
 * names. Indexes serve its pages, newest first, alone and by actor, target or action.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table audit_log (
      seq bigint generated always as identity primary key,
      id uuid not null unique,
      time timestamptz not null,
      action text not null,
      actor_id uuid,
      actor_name text,
      target_type text,
      target_id uuid,
      target_name text,
      ip text,
      user_agent text,
      request_id text,
      summary jsonb not null,
      prev_hash text not null,
      hash text not null
    )`);
  await knex.raw('create index audit_log_time_idx on audit_log (time, seq)');
  await knex.raw('create index audit_log_actor_time_idx on audit_log (actor_id, time, seq)');
  await knex.raw('create index audit_log_target_time_idx on audit_log (target_id, time, seq)');
  await knex.raw('create index audit_log_action_time_idx on audit_log (action, time, seq)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('audit_log');
}
