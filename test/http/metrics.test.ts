// eslint-disable-next-line @typescript-eslint/no-require-imports
const parsePrometheusTextFormat = require('parse-prometheus-text-format') as (text: string) => MetricFamily[];
import { bearer, testAppWithAdmin, type TestApp } from '../helpers/test-app';

interface MetricFamily {
  name: string;
  type: string;
  metrics: { labels?: Record<string, string>; value?: string; count?: string; buckets?: Record<string, string> }[];
}

type Scrape = MetricFamily[] & { text: string };

/** The metrics as a Prometheus text parser reads them (and the text). */
async function scrape(t: TestApp, headers: Record<string, string> = {}): Promise<Scrape> {
  // A scrape reads memory only: a generous bound, so that one waiting for the database fails rather than hangs.
  const res = await t.http().get('/metrics').set(headers).timeout(10_000).expect(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return Object.assign(parsePrometheusTextFormat(res.text), { text: res.text });
}

/**
 * A sample's value (counters, gauges; 0 when absent), or a histogram's count, read from the text:
 * parse-prometheus-text-format keeps a histogram's buckets but drops its labels and count.
 */
function value(families: Scrape, name: string, labels: Record<string, string> = {}): number {
  if (families.find((f) => f.name === name)?.type === 'HISTOGRAM') {
    const line = families.text.split('\n').find((l) => l.startsWith(`${name}_count{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
    return line ? Number(line.split(' ').pop()) : 0;
  }
  const family = families.find((f) => f.name === name);
  if (!family) throw new Error(`no metric ${name}`);
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return sample ? Number(sample.value ?? sample.count) : 0;
}

describe('GET /metrics', () => {
  const { t, admin } = testAppWithAdmin({ env: { THROTTLE_IP_PER_MINUTE: '3' } });

  it('counts and times requests by operation and status, token checks and login outcomes, as traffic comes', async () => {
    const u = { ...(await t.factory.user()), jwt: admin.jwt };
    const before = await scrape(t);
    for (let i = 0; i < 3; i++) await t.http().get('/user/me').set(bearer(u.jwt)).expect(200);
    await t.http().get('/user/me').set('Authorization', 'Bearer not-a-token').expect(401);
    await t.http().get('/no/such/route').expect(404);
    await t.http().post('/login').send({ email: u.email, password: 'wrong password!' }).expect(401);
    const after = await scrape(t);
    const rise = (name: string, labels: Record<string, string>) => value(after, name, labels) - value(before, name, labels);
    expect(rise('http_requests_total', { operation: 'getMe', status: '200' })).toBe(3);
    expect(rise('http_request_duration_seconds', { operation: 'getMe', status: '200' })).toBe(3);
    expect(rise('http_requests_total', { operation: 'getMe', status: '401' })).toBe(1);
    expect(rise('http_requests_total', { operation: 'none', status: '404' })).toBe(1);
    expect(rise('token_checks_total', { result: 'valid' })).toBe(3);
    expect(rise('token_checks_total', { result: 'refused' })).toBe(1);
    expect(rise('login_attempts_total', { outcome: 'refused' })).toBe(1);
    const durations = after.find((f) => f.name === 'http_request_duration_seconds')!;
    expect(durations.type).toBe('HISTOGRAM');
    expect(Object.keys(durations.metrics[0].buckets!)).toContain('0.01');
    expect(after.text).toMatch(/^http_request_duration_seconds_bucket\{le="0\.01",operation="getMe",status="200"\} \d+$/m);
    expect(value(after, 'db_pool_connections', { state: 'idle' }) + value(after, 'db_pool_connections', { state: 'in_use' })).toBeGreaterThan(0);
  });

  it('counts throttled requests and throttled logins', async () => {
    const before = await scrape(t);
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await t.http().post('/login').send({ email: 'nobody@example.test', password: 'wrong password!' })).status);
    const throttled = statuses.filter((s) => s === 429).length;
    expect(throttled).toBeGreaterThan(0);
    const after = await scrape(t);
    expect(value(after, 'rate_limited_total', { operation: 'login' }) - value(before, 'rate_limited_total', { operation: 'login' })).toBe(throttled);
    expect(value(after, 'login_attempts_total', { outcome: 'throttled' }) - value(before, 'login_attempts_total', { outcome: 'throttled' })).toBe(throttled);
  });

  it('shows the outbox: mail waiting and the oldest one’s age', async () => {
    await t.container.outbox.stop(); // nothing is delivered from now on
    const before = value(await scrape(t), 'mail_outbox_depth');
    await t.http().post('/user').set(bearer(admin.jwt)).send({ name: 'metrics-welcome', email: 'metrics-welcome@example.test' }).expect(201);
    await new Promise((r) => setTimeout(r, 1100));
    await t.container.databaseGauges.refresh(); // as the background does every 5 s
    const waiting = await scrape(t);
    expect(value(waiting, 'mail_outbox_depth')).toBe(before + 1);
    expect(value(waiting, 'mail_outbox_oldest_age_seconds')).toBeGreaterThanOrEqual(1);
    expect(value(waiting, 'mail_send_failures_total')).toBe(0);
  });
});

describe('without the database', () => {
  const { t, admin } = testAppWithAdmin();
  it('answers at once with the values last read from it, and their age growing', async () => {
    await t.container.outbox.stop(); // the welcome mail stays in the outbox
    await t.http().post('/user').set(bearer(admin.jwt)).send({ name: 'metrics-frozen', email: 'metrics-frozen@example.test' }).expect(201);
    await t.container.databaseGauges.refresh();
    const depth = value(await scrape(t), 'mail_outbox_depth');
    expect(depth).toBeGreaterThanOrEqual(1);
    // The outbox cannot be read until this transaction ends (on PGlite, nothing can): the
    // database is frozen for whatever reads it, as Postgres is when it stops answering.
    const frozen = await t.knex.transaction();
    let reading: Promise<void> | undefined;
    try {
      await frozen.raw('lock table mail_outbox in access exclusive mode');
      reading = t.container.databaseGauges.refresh(); // waits for the lock, as the background's read would
      t.clock.advance(60_000);
      const first = await scrape(t);
      expect(value(first, 'mail_outbox_depth')).toBe(depth);
      expect(value(first, 'mail_outbox_oldest_age_seconds')).toBeGreaterThanOrEqual(60);
      expect(value(first, 'db_gauges_age_seconds')).toBeGreaterThanOrEqual(60);
      t.clock.advance(60_000);
      const second = await scrape(t);
      expect(value(second, 'mail_outbox_depth')).toBe(depth);
      expect(value(second, 'db_gauges_age_seconds')).toBeGreaterThanOrEqual(value(first, 'db_gauges_age_seconds') + 60);
      expect(value(second, 'http_requests_total', { operation: 'getMetrics', status: '200' })).toBeGreaterThanOrEqual(2);
    } finally {
      await frozen.rollback();
      await reading;
    }
    // Read again once the database answers: the age starts over.
    await t.container.databaseGauges.refresh();
    expect(value(await scrape(t), 'db_gauges_age_seconds')).toBeLessThan(60);
  }, 60_000);
});

describe('mail failures', () => {
  const { t, admin } = testAppWithAdmin();
  it('are counted as they happen', async () => {
    await t.mail.stop(); // the SMTP server is gone
    await t.http().post('/user').set(bearer(admin.jwt)).send({ name: 'metrics-fail', email: 'metrics-fail@example.test' }).expect(201);
    let failures = 0;
    for (let i = 0; i < 100 && failures === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      failures = value(await scrape(t), 'mail_send_failures_total');
    }
    expect(failures).toBeGreaterThanOrEqual(1);
  });
});

describe('METRICS_TOKEN', () => {
  const token = 'metrics-token-0123456789abcdef';
  const { t, admin } = testAppWithAdmin({ env: { METRICS_TOKEN: token } });
  it('opens /metrics to its bearer only: no token, a wrong one or a user’s token get 401', async () => {
    for (const authorization of [undefined, `Bearer ${token}x`, `Bearer ${admin.jwt}`, token]) {
      const req = t.http().get('/metrics');
      const res = await (authorization ? req.set('Authorization', authorization) : req);
      expect([authorization, res.status, res.body.code]).toEqual([authorization, 401, 'unauthenticated']);
    }
    expect(value(await scrape(t, bearer(token)), 'http_requests_total', { operation: 'getMe' })).toBe(0);
  });
});
