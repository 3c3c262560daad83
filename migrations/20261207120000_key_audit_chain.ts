import type { Knex } from 'knex';

/**
 * The audit chain becomes keyed (issue 18): each link is an HMAC with a key derived from
 * `AUDIT_KEY`, kept outside the database, over its position, the previous link, the newest time of
 * the entries before it (`prev_max_time`: retention may cut the start only where that is older
 * than the retention age) and its entry. `key_id` names the configured key that made it, so links
 * made before a rotation still verify.
 *
 * The unkeyed links go: anyone who could write the table could recompute them, so they proved
 * nothing, and the service re-chains every entry kept, in the same order, with the key on its
 * first pass (check an old log with `GET /audit/verify` before upgrading if it matters). An
 * instance of the previous version still running meanwhile fails its chaining passes (`key_id` is
 * required) until it is replaced; the entries it writes are chained by the new ones.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('delete from audit_chain');
  await knex.raw('alter table audit_chain add column key_id text not null, add column prev_max_time timestamptz');
}

export async function down(knex: Knex): Promise<void> {
  // The keyed links mean nothing to the previous version: it re-chains the entries its own way.
  await knex.raw('delete from audit_chain');
  await knex.raw('alter table audit_chain drop column key_id, drop column prev_max_time');
}
