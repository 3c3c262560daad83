import { openTestDatabase } from '../helpers/test-database';
import { KnexUserStore } from '../../src/stores/user-store';
import { FIND_LIVE, FIND_LIVE_COLUMNS, findLiveRow, KnexTokenStore } from '../../src/stores/token-store';

/**
 * The token query of every authenticated request reads one JSON array; FIND_LIVE_COLUMNS says
 * which field each place fills. Checked here: the statement and the mapping follow that one list,
 * and on this run's database (PGlite, or Postgres with DATABASE_URL) every field gets its own value.
 */

describe('FIND_LIVE_COLUMNS', () => {
  it('is the order of the statement’s array', () => {
    const array = /json_build_array\(([\s\S]*)\) as v\s/.exec(FIND_LIVE.text)?.[1];
    expect(array).toBe(FIND_LIVE_COLUMNS.map(([, sql]) => sql).join(', '));
  });

  it('maps the value at each place to the field it names there, each field once', () => {
    const fields = FIND_LIVE_COLUMNS.map(([field]) => field);
    expect(new Set(fields).size).toBe(fields.length);
    const row = findLiveRow(fields.map((field, i) => `${i}:${field}`)) as unknown as Record<string, unknown>;
    expect(Object.entries(row)).toEqual(fields.map((field, i) => [field, `${i}:${field}`]));
  });
});

describe('KnexTokenStore.findLive', () => {
  let db: Awaited<ReturnType<typeof openTestDatabase>>;
  beforeAll(async () => {
    db = await openTestDatabase();
  });
  afterAll(async () => {
    await db.close();
  });

  it('reads each field of the token and its user from its own column, through the pool and through Knex', async () => {
    const users = new KnexUserStore(db.knex);
    const user = await users.insert({
      name: 'field-check',
      email: 'field.check@example.test',
      firstName: 'First',
      lastName: 'Last',
      passwordHash: null,
      isAdmin: true,
      forcePasswordChange: true,
    });
    const now = new Date();
    await users.recordLogin(user.id, new Date('2026-01-02T03:04:05.678Z'));
    await users.setPendingEmail(user.id, { email: 'pending@example.test', expires: new Date(now.getTime() + 3_600_000) });
    await users.setMfaEnabled(user.id, true);
    await db.knex('users').where('id', user.id).update({ email_verified: false, name_trusted: false });
    const lastUsed = new Date('2026-03-04T05:06:07.891Z');
    const token = await new KnexTokenStore(db.knex).insert({
      userId: user.id,
      kind: 'api',
      name: 'field-check-token',
      scopes: ['api:read'],
      expires: new Date(now.getTime() + 3_600_000),
      userAgent: null,
      aal: 'aal2',
      used: { at: lastUsed, ip: null },
    });
    const stored = (await users.findById(user.id))!;

    for (const store of [new KnexTokenStore(db.knex, db.pool), new KnexTokenStore(db.knex)]) {
      const found = await store.findLive(token.id, user.id, now);
      expect(found).toEqual({
        token: { id: token.id, kind: 'api', scopes: ['api:read'], lastUsed, aal: 'aal2' },
        user: {
          id: user.id,
          name: 'field-check',
          email: 'field.check@example.test',
          firstName: 'First',
          lastName: 'Last',
          isAdmin: true,
          forcePasswordChange: true,
          created: stored.created,
          lastLogin: new Date('2026-01-02T03:04:05.678Z'),
          lastSeen: stored.lastSeen,
          deactivated: null,
          emailVerified: false,
          nameTrusted: false,
          pendingEmail: 'pending@example.test',
          mfaEnabled: true,
        },
        inGroups: false,
      });
      expect(found!.user.created.toISOString()).toBe(stored.created.toISOString());
    }
  });
});
