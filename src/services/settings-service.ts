import { userTarget, type AuditContext } from '../domain/audit';
import { NotFoundError, ValidationError } from '../domain/errors';
import type { Settings, User } from '../domain/types';
import type { Stores, Transactor } from '../stores';

export const MAX_SETTINGS = 256;
export const MAX_SETTING_BYTES = 16 * 1024;
export const MAX_KEY_CHARS = 128;

function checkKey(key: string, path: string): void {
  const chars = [...key].length;
  if (chars < 1 || chars > MAX_KEY_CHARS || key.includes('/')) {
    throw new ValidationError(`setting keys are 1 to ${MAX_KEY_CHARS} characters without '/'`, [{ path, message: 'is not a valid key' }]);
  }
}

function checkValue(key: string, value: unknown): void {
  if (value === null || value === undefined) {
    throw new ValidationError('setting values cannot be null', [{ path: `/body/${key}`, message: 'must not be null' }]);
  }
  if (Buffer.byteLength(JSON.stringify(value), 'utf8') > MAX_SETTING_BYTES) {
    throw new ValidationError(`a setting value is at most ${MAX_SETTING_BYTES} bytes of JSON`, [{ path: `/body/${key}`, message: 'is too large' }]);
  }
}

/** Per-user settings (the routes pick the owner: the caller, or an admin's target). */
export class SettingsService {
  constructor(
    private readonly stores: Stores,
    private readonly transact: Transactor,
  ) {}

  all(user: User): Promise<Settings> {
    return this.stores.settings.all(user.id);
  }

  async get(user: User, key: string): Promise<unknown> {
    const found = await this.stores.settings.get(user.id, key);
    if (!found) throw new NotFoundError(`no setting ${key}`);
    return found.value;
  }

  /** Replaces the whole set. */
  async replace(user: User, settings: Settings, ctx: AuditContext): Promise<void> {
    const entries = Object.entries(settings);
    if (entries.length === 0) throw new ValidationError('give at least one setting', [{ path: '/body', message: 'must not be empty' }]);
    if (entries.length > MAX_SETTINGS) throw new ValidationError(`at most ${MAX_SETTINGS} settings`, [{ path: '/body', message: 'has too many keys' }]);
    for (const [key, value] of entries) {
      checkKey(key, `/body/${key}`);
      checkValue(key, value);
    }
    await this.transact(async (s) => {
      await s.settings.lockUser(user.id);
      await s.settings.replaceAll(user.id, settings);
      s.audit.add(ctx, { action: 'settings.changed', target: userTarget(user), summary: { op: 'replace', keys: Object.keys(settings).sort() } });
    });
  }

  /** Sets one key; the body must be exactly `{ "<key>": value }`. */
  async set(user: User, key: string, body: Settings, ctx: AuditContext): Promise<void> {
    checkKey(key, '/path/key');
    const names = Object.keys(body);
    if (names.length !== 1 || names[0] !== key) {
      throw new ValidationError(`the body must have exactly one property, named ${key}`, [{ path: '/body', message: 'does not match the key in the URL' }]);
    }
    checkValue(key, body[key]);
    await this.transact(async (s: Stores) => {
      await s.settings.lockUser(user.id);
      if (!(await s.settings.get(user.id, key)) && (await s.settings.count(user.id)) >= MAX_SETTINGS) {
        throw new ValidationError(`at most ${MAX_SETTINGS} settings`, [{ path: '/body', message: 'one setting too many' }]);
      }
      await s.settings.set(user.id, key, body[key]);
      s.audit.add(ctx, { action: 'settings.changed', target: userTarget(user), summary: { op: 'set', keys: [key] } });
    });
  }

  async delete(user: User, key: string, ctx: AuditContext): Promise<void> {
    await this.transact(async (s) => {
      if (!(await s.settings.delete(user.id, key))) throw new NotFoundError(`no setting ${key}`);
      s.audit.add(ctx, { action: 'settings.changed', target: userTarget(user), summary: { op: 'delete', keys: [key] } });
    });
  }
}
