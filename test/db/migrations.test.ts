import fs from 'node:fs';
import path from 'node:path';
import { migrations } from '../../migrations';
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
});
