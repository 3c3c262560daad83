import type { Knex } from 'knex';

/**
 * RhodeCode's user groups: an owner, members, and grants of usergroup.none|read|write|admin on
 * a group to a user or to another group (whose members then hold it).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('user_groups', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('name').notNullable().unique({ indexName: 'user_groups_name_key' });
    t.text('description').notNullable().defaultTo('');
    t.boolean('active').notNullable().defaultTo(true);
    t.uuid('owner_id').notNullable().references('id').inTable('users');
    t.timestamp('created', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create index user_groups_name_id_idx on user_groups (name collate "C", id)');

  await knex.schema.createTable('user_group_members', (t) => {
    t.uuid('group_id').notNullable().references('id').inTable('user_groups').onDelete('CASCADE');
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.timestamp('created', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['group_id', 'user_id']);
    t.index(['user_id'], 'user_group_members_user_id_idx');
  });

  await knex.schema.createTable('user_group_grants', (t) => {
    t.uuid('group_id').notNullable().references('id').inTable('user_groups').onDelete('CASCADE');
    t.uuid('grantee_user_id').references('id').inTable('users').onDelete('CASCADE');
    t.uuid('grantee_group_id').references('id').inTable('user_groups').onDelete('CASCADE');
    t.text('permission').notNullable().checkIn(['none', 'read', 'write', 'admin'], 'user_group_grants_permission_check');
    t.timestamp('created', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(
    'alter table user_group_grants add constraint user_group_grants_one_grantee check ((grantee_user_id is null) <> (grantee_group_id is null))',
  );
  await knex.raw('create unique index user_group_grants_user_key on user_group_grants (group_id, grantee_user_id) where grantee_user_id is not null');
  await knex.raw('create unique index user_group_grants_group_key on user_group_grants (group_id, grantee_group_id) where grantee_group_id is not null');
  await knex.raw('create index user_group_grants_grantee_user_idx on user_group_grants (grantee_user_id) where grantee_user_id is not null');
  await knex.raw('create index user_group_grants_grantee_group_idx on user_group_grants (grantee_group_id) where grantee_group_id is not null');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('user_group_grants');
  await knex.schema.dropTable('user_group_members');
  await knex.schema.dropTable('user_groups');
}
