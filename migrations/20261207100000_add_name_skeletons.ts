import type { Knex } from 'knex';
import { nameSkeleton } from '../src/domain/name-skeleton';

/** Rows read and written at a time while the skeletons are filled in. */
const BATCH = 5000;

/**
 * Names are handles (issue 18): a name confusable with one an active user (or any group) has is
 * a duplicate. `name_skeleton` holds each name's UTS #39 skeleton (src/domain/name-skeleton.ts),
 * unique among active users (and among groups) by a partial unique index, so that of two
 * concurrent confusable names one wins.
 *
 * Names already stored are left as they are. Where existing names already collide (`admin` and a
 * Cyrillic `аdmin`, both active), the earliest made keeps the skeleton and the later ones get
 * none (null: no index entry), so nothing breaks and no one is renamed; every later write of
 * their name (a rename, a reactivation) is held to the rule. Operators find them with
 * `select id, name from users where name_skeleton is null` (the same for `user_groups`).
 *
 * `name_trusted`: whether mails may greet a user by name. Names given at self-registration are
 * not (anyone may register with any address): those of accounts not yet verified, and of those
 * the audit log says registered themselves.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.text('name_skeleton');
    t.boolean('name_trusted').notNullable().defaultTo(true);
  });
  await knex.schema.alterTable('user_groups', (t) => {
    t.text('name_skeleton');
  });
  await knex.raw(
    `update users set name_trusted = false
      where not email_verified or id in (select target_id from audit_log where action = 'user.registered' and target_id is not null)`,
  );
  for (const table of ['users', 'user_groups'] as const) {
    let after: string | undefined;
    for (;;) {
      const rows: { id: string; name: string }[] = await knex(table)
        .select('id', 'name')
        .modify((q) => after !== undefined && q.where('id', '>', after))
        .orderBy('id')
        .limit(BATCH);
      if (rows.length === 0) break;
      const values = rows.map(() => '(?::uuid, ?)').join(', ');
      await knex.raw(`update ${table} set name_skeleton = v.skeleton from (values ${values}) as v(id, skeleton) where ${table}.id = v.id`, rows.flatMap((r) => [r.id, nameSkeleton(r.name)]));
      after = rows[rows.length - 1].id;
    }
  }
  // Collisions among names already stored: the earliest made keeps its skeleton.
  await knex.raw(`
    update users set name_skeleton = null
      from (select id, row_number() over (partition by name_skeleton order by created, id) as n from users where deactivated is null) as r
     where users.id = r.id and r.n > 1`);
  await knex.raw(`
    update user_groups set name_skeleton = null
      from (select id, row_number() over (partition by name_skeleton order by created, id) as n from user_groups) as r
     where user_groups.id = r.id and r.n > 1`);
  await knex.raw('create unique index users_name_skeleton_active_key on users (name_skeleton) where deactivated is null');
  await knex.raw('create unique index user_groups_name_skeleton_key on user_groups (name_skeleton)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index user_groups_name_skeleton_key');
  await knex.raw('drop index users_name_skeleton_active_key');
  await knex.schema.alterTable('user_groups', (t) => t.dropColumn('name_skeleton'));
  await knex.schema.alterTable('users', (t) => t.dropColumns('name_skeleton', 'name_trusted'));
}
