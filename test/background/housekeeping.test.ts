import { Housekeeping, LOGIN_FAILURES_REMEMBERED_MS } from '../../src/background/housekeeping';
import { createLogger } from '../../src/logger';
import { captureQueries, createTestApp, TestClock, type TestApp } from '../helpers/test-app';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ smtp: false });
  await t.container.housekeeping.stop(); // the app's own passes would race the ones under test
});
afterAll(async () => {
  await t.close();
});

describe('housekeeping', () => {
  it('forgets ended rate-limit windows and old runs of failed logins, keeping the rest', async () => {
    const clock = new TestClock();
    const now = clock.now();
    await t.knex('rate_limits').insert([
      { key: 'login:ended', hits: 3, reset_at: new Date(now.getTime() - 1000) },
      { key: 'login:current', hits: 3, reset_at: new Date(now.getTime() + 30_000) },
    ]);
    const old = new Date(now.getTime() - LOGIN_FAILURES_REMEMBERED_MS - 1000);
    await t.knex('login_throttle').insert([
      { key: 'email:old@example.test', failures: 4, last_failure: old, blocked_until: null },
      { key: 'email:old-but-blocked@example.test', failures: 40, last_failure: old, blocked_until: new Date(now.getTime() + 60_000) },
      { key: 'email:recent@example.test', failures: 4, last_failure: now, blocked_until: null },
    ]);
    const housekeeping = new Housekeeping(t.container.stores, clock, createLogger('silent'), { intervalMs: 60_000 });
    expect(await housekeeping.runOnce()).toBe(2);
    expect((await t.knex('rate_limits').select('key')).map((r) => r.key)).toEqual(['login:current']);
    expect((await t.knex('login_throttle').select('key').orderBy('key')).map((r) => r.key)).toEqual(['email:old-but-blocked@example.test', 'email:recent@example.test']);
  });

  it('analyzes the tables when analyzeEveryMs has passed (the embedded database has no autovacuum), and not before', async () => {
    const clock = new TestClock();
    const housekeeping = new Housekeeping(t.container.stores, clock, createLogger('silent'), { intervalMs: 60_000, analyzeEveryMs: 3_600_000 });
    const analyzes = async () => (await captureQueries(t.knex, () => housekeeping.runOnce())).filter((q) => /^analyze/i.test(q)).length;
    expect(await analyzes()).toBe(0);
    clock.advance(3_600_000);
    expect(await analyzes()).toBe(1);
    expect(await analyzes()).toBe(0);
  });
});
