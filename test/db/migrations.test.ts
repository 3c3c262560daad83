import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { migrations } from '../../migrations';
import * as addNameSkeletons from '../../migrations/20261207100000_add_name_skeletons';
import { nameSkeleton } from '../../src/domain/name-skeleton';
import { migrateLatest, migrateRollbackAll } from '../../src/db/migrate';
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
