import type { Knex } from 'knex';

/**
 * Indexes that keep a page of the user, group and member lists as cheap at a million rows as at
 * a thousand (API.md: "the cost of a page does not grow with the number of users"). Every list is
 * ordered by (name collate "C", id); a page is read either by walking an index in that order until
 * it is full (when the filters match many rows) or by fetching the few matching rows through
 * another index and sorting them. The planner picks one from the statistics, so the tables are
 * analyzed here too (PGlite has no autovacuum to do it).
 */
export async function up(knex: Knex): Promise<void> {
  // The active users in list order (the default list walks only them, however many were deactivated).
  await knex.raw('create index users_active_name_id_idx on users (name collate "C", id) where deactivated is null');
  // is_admin=1 / =0 in list order, with and without the deactivated users.
  await knex.raw('create index users_admin_name_id_idx on users (is_admin, name collate "C", id)');
  await knex.raw('create index users_active_admin_name_id_idx on users (is_admin, name collate "C", id) where deactivated is null');
  // q: the users whose lower(name) or lower(email) starts with a prefix (LIKE 'prefix%' in any collation).
  await knex.raw('create index users_lower_name_pattern_idx on users (lower(name) text_pattern_ops)');
  await knex.raw('create index users_lower_email_pattern_idx on users (lower(email) text_pattern_ops)');
  // The groups a user owns, in list order (a non-admin's group list).
  await knex.raw('create index user_groups_owner_name_id_idx on user_groups (owner_id, name collate "C", id)');
  await knex.raw('analyze users, user_groups, user_group_members, user_group_grants');
}

export async function down(knex: Knex): Promise<void> {
  for (const index of [
    'user_groups_owner_name_id_idx',
    'users_lower_email_pattern_idx',
    'users_lower_name_pattern_idx',
    'users_active_admin_name_id_idx',
    'users_admin_name_id_idx',
    'users_active_name_id_idx',
  ]) {
    await knex.raw(`drop index if exists ${index}`);
  }
}
