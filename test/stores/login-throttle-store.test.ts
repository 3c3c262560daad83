import { openDatabase } from '../../src/db/database';
import { KnexLoginThrottleStore, type LoginThrottlePolicy } from '../../src/stores/login-throttle-store';
import { openTestDatabase } from '../helpers/test-database';

/**
 * KnexLoginThrottleStore.take on this run's database (PGlite, or Postgres with DATABASE_URL, where
 * two pools stand for two instances and the statements really run at once).
 */

type Db = Awaited<ReturnType<typeof openTestDatabase>>;

const policy: LoginThrottlePolicy = { failures: 10, baseDelayMs: 1000, maxDelayMs: 15 * 60_000, forgetAfterMs: 24 * 3_600_000 };

describe('KnexLoginThrottleStore.take', () => {
  let db: Db;
  let other: { close(): Promise<void> } | undefined;
  let stores: KnexLoginThrottleStore[];

  beforeAll(async () => {
    db = await openTestDatabase();
    const second = db.url ? await openDatabase({ databaseUrl: db.url, poolSize: 4 }) : undefined;
    other = second;
    stores = [new KnexLoginThrottleStore(db.knex), new KnexLoginThrottleStore(second?.knex ?? db.knex)];
  });
  afterAll(async () => {
    await other?.close();
    await db.close();
  });

  it('allows exactly `failures` of 48 concurrent attempts on two instances, numbered 1 to 10, and blocks the rest', async () => {
    const now = new Date();
    const slots = await Promise.all(Array.from({ length: 48 }, (_, i) => stores[i % 2].take('user:race', now, policy)));
    const allowed = slots.flatMap((s) => (s.allowed ? [s.failures] : []));
    expect(allowed.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(slots.filter((s) => !s.allowed)).toEqual(Array(38).fill({ allowed: false, until: new Date(now.getTime() + 1000) }));
    expect(await db.knex('login_throttle').where({ key: 'user:race' }).first()).toMatchObject({ failures: 10, blocked_until: new Date(now.getTime() + 1000) });
  });

  it('leaves a blocked key as it is; after the delay the next attempt doubles it; clear starts again', async () => {
    const t0 = new Date();
    for (let i = 1; i <= 10; i++) expect(await stores[0].take('email:x@example.test', t0, policy)).toEqual({ allowed: true, failures: i });
    const at = (ms: number) => new Date(t0.getTime() + ms);
    expect(await stores[1].take('email:x@example.test', at(999), policy)).toEqual({ allowed: false, until: at(1000) });
    expect(await db.knex('login_throttle').where({ key: 'email:x@example.test' }).first()).toMatchObject({ failures: 10, last_failure: t0 });
    expect(await stores[1].take('email:x@example.test', at(1000), policy)).toEqual({ allowed: true, failures: 11 });
    expect(await stores[0].take('email:x@example.test', at(2999), policy)).toEqual({ allowed: false, until: at(3000) });
    await stores[0].clear('email:x@example.test');
    expect(await stores[1].take('email:x@example.test', at(1001), policy)).toEqual({ allowed: true, failures: 1 });
  });
});
