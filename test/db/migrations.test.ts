import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { migrations } from '../../migrations';
import * as addNameSkeletons from '../../migrations/20261207100000_add_name_skeletons';
import { nameSkeleton } from '../../src/domain/name-skeleton';
import { appliedMigrations, migrateDownTo, migrateLatest, MigrationError, migrateRollbackAll } from '../../src/db/migrate';
import { openTestDatabase } from '../helpers/test-database';

describe('migrations', () => {
  it('lists every migration file, in order, named YYYYMMDDHHMMSS_verb_noun', () => {
    const files = fs
      .readdirSync(path.join(__dirname, '../../migrations'))
      .filter((f) => f !== 'index.ts' && f.endsWith('.ts'))
      .map((f) => f.replace(/\.ts$/, ''))
      .sort();
    expect(migrations.map((m) => m.name)).toEqual(files);
    for (const f of files) expect(f).toMatch(/^\d{14}_[a-z]+(_[a-z]+)+$/);
  });

  it('roll back all the way and apply again', async () => {
    const db = await openTestDatabase();
    try {
      await migrateRollbackAll(db.knex);
      const { rows } = await db.knex.raw(`select count(*) as n from information_schema.tables where table_schema = 'public' and table_name in ('users', 'user_tokens', 'password_tokens', 'mail_outbox')`);
      expect(Number(rows[0].n)).toBe(0);
      expect(await migrateLatest(db.knex)).toEqual(migrations.map((m) => m.name));
      expect(await migrateLatest(db.knex)).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it("waits while another instance holds Knex's migration lock, then finds nothing left to do", async () => {
    const db = await openTestDatabase();
    try {
      await db.knex('knex_migrations_lock').update({ is_locked: 1 }); // another instance is migrating
      const waited: string[] = [];
      const done = migrateLatest(db.knex, undefined, {
        stepMs: 20,
        onWait: (err) => {
          waited.push(err.name);
          // The other instance is done soon after.
          setTimeout(() => db.knex('knex_migrations_lock').update({ is_locked: 0 }).then(() => undefined), 200); // a builder runs when awaited
        },
      });
      expect(await done).toEqual([]);
      expect(waited).toEqual(['MigrationLocked']);
      expect(await db.knex('knex_migrations_lock').select('is_locked')).toEqual([{ is_locked: 0 }]);
    } finally {
      await db.close();
    }
  });

  it('gives up waiting for a lock nobody frees, with Knex\'s error', async () => {
    const db = await openTestDatabase();
    try {
      await db.knex('knex_migrations_lock').update({ is_locked: 1 });
      await expect(migrateLatest(db.knex, undefined, { timeoutMs: 300, stepMs: 20 })).rejects.toMatchObject({ name: 'MigrationLocked' });
    } finally {
      await db.close();
    }
  });

  it('an older build runs on a database a newer build migrated (its migrations only added); one of another line is refused', async () => {
    const db = await openTestDatabase();
    try {
      const knex = db.knex;
      // What a newer build leaves behind: a migration this build does not know, after its newest.
      await knex('knex_migrations').insert({ name: '20991231000000_add_future_things', batch: 99, migration_time: new Date() });
      const told: string[][] = [];
      expect(await migrateLatest(knex, (names) => told.push(names))).toEqual([]);
      expect(told).toEqual([['20991231000000_add_future_things']]);
      // Nothing of this build's was touched, and the unknown one stays recorded for the newer build.
      expect(await appliedMigrations(knex)).toEqual([...migrations.map((m) => m.name), '20991231000000_add_future_things']);

      // An unknown migration older than this build's newest: another line of builds migrated it.
      await knex('knex_migrations').insert({ name: '20261122150001_add_elsewhere', batch: 100, migration_time: new Date() });
      await expect(migrateLatest(knex)).rejects.toThrow(new MigrationError('the database has migrations this build does not know, older than its newest (20261122150001_add_elsewhere): it was migrated by another line of builds'));
    } finally {
      await db.close();
    }
  });

  it('upgrades from the previous release\'s schema with its data, and rolls back to it with migrateDownTo', async () => {
    const db = await openTestDatabase();
    const previous = migrations[migrations.length - 2].name;
    const newest = migrations[migrations.length - 1].name;
    const indexes = async () => (await db.knex.raw(`select indexname from pg_indexes where tablename = 'webhook_deliveries' and indexname like '%due_idx' order by indexname`)).rows.map((r: { indexname: string }) => r.indexname);
    try {
      const knex = db.knex;
      // The previous release's schema, with a user on it.
      expect(await migrateDownTo(knex, previous)).toEqual([newest]);
      expect((await appliedMigrations(knex)).at(-1)).toBe(previous);
      const [{ id }] = await knex('users').insert({ name: 'ada', email: 'ada@example.test' }).returning(['id']);
      const tables = async () => (await knex.raw(`select table_name from information_schema.tables where table_schema = 'public' order by table_name`)).rows.map((r: { table_name: string }) => r.table_name);
      const before = await tables();

      // The upgrade: the newest migration applied, the data kept.
      expect(await migrateLatest(knex)).toEqual([newest]);
      expect(await knex('users').where({ id }).first()).toMatchObject({ name: 'ada' });
      expect(await indexes()).toEqual(['webhook_deliveries_endpoint_due_idx']);

      // And back: the newest rolled back, the data still there, the schema the previous one's.
      expect(await migrateDownTo(knex, previous)).toEqual([newest]);
      expect(await indexes()).toEqual(['webhook_deliveries_due_idx']);
      expect(await tables()).toEqual(before);
      expect(await knex('users').where({ id }).first()).toMatchObject({ name: 'ada' });
      expect(await migrateDownTo(knex, previous)).toEqual([]);

      // Refused: a name this build does not know, one not applied, and a database a newer build migrated.
      await expect(migrateDownTo(knex, '20261122150001_add_elsewhere')).rejects.toThrow(MigrationError);
      await expect(migrateDownTo(knex, newest)).rejects.toThrow(`${newest} is not applied to this database`);
      await migrateLatest(knex);
      await knex('knex_migrations').insert({ name: '20991231000000_add_future_things', batch: 99, migration_time: new Date() });
      await expect(migrateDownTo(knex, previous)).rejects.toThrow('roll back with the build that made them');
      expect((await appliedMigrations(knex)).at(-1)).toBe('20991231000000_add_future_things');
    } finally {
      await db.close();
    }
  });

  it('adds name skeletons to a database whose names already collide: nothing renamed, the earliest keeps its skeleton, and the rule holds from then on', async () => {
    const db = await openTestDatabase();
    try {
      const knex = db.knex;
      await addNameSkeletons.down(knex);
      const at = (minute: number) => new Date(Date.UTC(2026, 10, 1, 0, minute));
      const user = async (name: string, minute: number, more: Record<string, unknown> = {}) => {
        const [row] = await knex('users').insert({ name, email: `${minute}@example.test`, created: at(minute), ...more }).returning(['id']);
        return row.id as string;
      };
      const admin = await user('admin', 1);
      const cyrillic = await user('\u0430dmin', 2);
      const invisible = await user('admin\u200b', 3);
      const gone = await user('\u0430dmin', 4, { deactivated: at(5) });
      const unverified = await user('grace', 6, { email_verified: false });
      const registered = await user('hopper', 7);
      await knex('audit_log').insert({ id: crypto.randomUUID(), time: at(7), action: 'user.registered', target_type: 'user', target_id: registered, target_name: 'hopper', summary: {} });
      const group = async (name: string, minute: number) => (await knex('user_groups').insert({ name, owner_id: admin, created: at(minute) }).returning(['id']))[0].id as string;
      const ops = await group('ops', 1);
      const lookalike = await group('\u043eps', 2);

      await addNameSkeletons.up(knex);

      const users = new Map((await knex('users').select('id', 'name', 'name_skeleton', 'name_trusted')).map((r) => [r.id, r]));
      expect(users.get(admin)).toMatchObject({ name: 'admin', name_skeleton: nameSkeleton('admin'), name_trusted: true });
      expect(users.get(cyrillic)).toMatchObject({ name: '\u0430dmin', name_skeleton: null });
      expect(users.get(invisible)).toMatchObject({ name: 'admin\u200b', name_skeleton: null });
      expect(users.get(gone)).toMatchObject({ name_skeleton: nameSkeleton('admin') }); // deactivated: no collision
      expect([users.get(unverified)?.name_trusted, users.get(registered)?.name_trusted]).toEqual([false, false]);
      const groups = new Map((await knex('user_groups').select('id', 'name', 'name_skeleton')).map((r) => [r.id, r]));
      expect(groups.get(ops)).toMatchObject({ name: 'ops', name_skeleton: nameSkeleton('ops') });
      expect(groups.get(lookalike)).toMatchObject({ name: '\u043eps', name_skeleton: null });

      // From now on a lookalike is refused by the database itself.
      await expect(knex('users').insert({ name: 'adrnin', name_skeleton: nameSkeleton('adrnin'), email: 'new@example.test' })).rejects.toMatchObject({ code: '23505' });
      await expect(knex('user_groups').insert({ name: '\uff4fps', name_skeleton: nameSkeleton('\uff4fps'), owner_id: admin })).rejects.toMatchObject({ code: '23505' });
      // A user who kept a colliding name gets a skeleton when reactivated (so the conflict shows).
      await expect(knex('users').where({ id: gone }).update({ deactivated: null, name_skeleton: nameSkeleton('\u0430dmin') })).rejects.toMatchObject({ code: '23505' });
    } finally {
      await db.close();
    }
  });
});
