import type { Knex } from 'knex';

/**
 * The audit chain moves off the request (issue 10's cost target): a change's transaction now
 * inserts its entry plainly, and a background pass (src/background/audit-chainer.ts) chains the
 * committed entries into `audit_chain`, one row per entry in the order chained, each hash over the
 * entry's content and the previous row's hash.
 *
 * Which entries are final is told by the transaction that wrote them: `xid` (the writer's id,
 * filled in by Postgres). Every transaction older than a snapshot's `xmin` has ended, so the
 * entries below that horizon are all the ones there will ever be there; the chainer takes them in
 * (xid, seq) order after the last one chained, and nothing can appear behind it later.
 *
 * The entries chained by the lock-based version keep their hashes (moved here, xid 0, before
 * anything written from now on). The unique index on `id` goes: ids are random UUIDs made by the
 * service, nothing looks an entry up by one, and each index is paid for on every change.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('drop function audit_append');
  await knex.raw(`
    create table audit_chain (
      pos bigint primary key,
      seq bigint not null unique,
      id uuid not null,
      xid xid8 not null,
      prev_hash text not null,
      hash text not null
    )`);
  await knex.raw(`
    insert into audit_chain (pos, seq, id, xid, prev_hash, hash)
    select row_number() over (order by seq), seq, id, '0'::xid8, prev_hash, hash from audit_log`);
  await knex.raw("alter table audit_log add column xid xid8 not null default '0'::xid8");
  await knex.raw('alter table audit_log alter column xid set default pg_current_xact_id()');
  await knex.raw('alter table audit_log drop column prev_hash, drop column hash');
  await knex.raw('alter table audit_log drop constraint audit_log_id_key');
  await knex.raw('create index audit_log_xid_idx on audit_log (xid, seq)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index audit_log_xid_idx');
  await knex.raw('alter table audit_log add constraint audit_log_id_key unique (id)');
  await knex.raw("alter table audit_log add column prev_hash text not null default '', add column hash text not null default ''");
  await knex.raw('update audit_log set prev_hash = c.prev_hash, hash = c.hash from audit_chain c where c.seq = audit_log.seq');
  await knex.raw('alter table audit_log alter column prev_hash drop default, alter column hash drop default, drop column xid');
  await knex.raw('drop table audit_chain');
  // audit_append is not brought back: an entry written after the up and before this down is in
  // no chain, and the lock-based writer is gone from the code.
}
