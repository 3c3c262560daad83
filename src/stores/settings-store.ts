import type { Knex } from 'knex';
import type { Settings } from '../domain/types';

export interface SettingsStore {
  all(userId: string): Promise<Settings>;
  get(userId: string, key: string): Promise<{ value: unknown } | undefined>;
  count(userId: string): Promise<number>;
  replaceAll(userId: string, settings: Settings): Promise<void>;
  set(userId: string, key: string, value: unknown): Promise<void>;
  delete(userId: string, key: string): Promise<boolean>;
  /** Serialises one user's settings writes (the 256-key limit holds under concurrency). */
  lockUser(userId: string): Promise<void>;
}

export class KnexSettingsStore implements SettingsStore {
  constructor(private readonly db: Knex) {}

  async all(userId: string): Promise<Settings> {
    const rows: { key: string; value: unknown }[] = await this.db('user_settings').select('key', 'value').where('user_id', userId).orderBy('key');
    return Object.fromEntries(rows.map((r) => [r.key, r.value]));
  }

  async get(userId: string, key: string): Promise<{ value: unknown } | undefined> {
    const row = await this.db('user_settings').select('value').where({ user_id: userId, key }).first();
    return row ? { value: row.value } : undefined;
  }

  async count(userId: string): Promise<number> {
    const row = await this.db('user_settings').count<{ count: string }>('* as count').where('user_id', userId).first();
    return Number(row?.count ?? 0);
  }

  async replaceAll(userId: string, settings: Settings): Promise<void> {
    await this.db('user_settings').where('user_id', userId).delete();
    const rows = Object.entries(settings).map(([key, value]) => ({ user_id: userId, key, value: JSON.stringify(value) }));
    if (rows.length) await this.db('user_settings').insert(rows);
  }

  async set(userId: string, key: string, value: unknown): Promise<void> {
    await this.db('user_settings')
      .insert({ user_id: userId, key, value: JSON.stringify(value) })
      .onConflict(['user_id', 'key'])
      .merge({ value: JSON.stringify(value), updated: this.db.fn.now() });
  }

  async delete(userId: string, key: string): Promise<boolean> {
    return (await this.db('user_settings').where({ user_id: userId, key }).delete()) > 0;
  }

  async lockUser(userId: string): Promise<void> {
    await this.db('users').select('id').where('id', userId).forUpdate();
  }
}
