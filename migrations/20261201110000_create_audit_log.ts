import type { Knex } from 'knex';

/** The advisory lock that serialises appends (one key, 'audi'). */
const APPEND_LOCK = 0x61756469;

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
  // One call per entry: takes the append lock (held until the transaction ends), then, in a
  // statement of its own (a volatile function's statements each take a fresh snapshot), reads the
  // last entry's hash, which is therefore the last one committed, and appends the entry chained to
  // it. `content` is the entry's canonical text, made by the service (domain/audit.ts).
  await knex.raw(`
    create function audit_append(
      p_id uuid, p_time timestamptz, p_action text, p_actor_id uuid, p_actor_name text,
      p_target_type text, p_target_id uuid, p_target_name text, p_ip text, p_user_agent text,
      p_request_id text, p_summary jsonb, p_content text
    ) returns void language plpgsql volatile as $fn$
    declare
      prev text;
    begin
      perform pg_advisory_xact_lock(${APPEND_LOCK});
      select hash into prev from audit_log order by seq desc limit 1;
      prev := coalesce(prev, '');
      insert into audit_log (id, time, action, actor_id, actor_name, target_type, target_id, target_name, ip, user_agent, request_id, summary, prev_hash, hash)
      values (p_id, p_time, p_action, p_actor_id, p_actor_name, p_target_type, p_target_id, p_target_name, p_ip, p_user_agent,
              p_request_id, p_summary, prev, encode(sha256(convert_to(prev || p_content, 'UTF8')), 'hex'));
    end
    $fn$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop function if exists audit_append'); // gone already after 20261201120000's down
  await knex.schema.dropTable('audit_log');
}
