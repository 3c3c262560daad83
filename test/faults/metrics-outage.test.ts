import http from 'node:http';
import { startCluster, type Cluster } from '../helpers/pg-cluster';
import { baseEnv, call, killAllServices, login, sleep, startService, stopService, type Outcome, type Service } from './harness';

/**
 * `/metrics` during a database outage (issue 21, item 3): it answers 200 at once, from memory,
 * with the outage's own counters (the 503s) and the age of what it last read from the database.
 */

/** Far more than an answer from memory takes, far less than a wait for the database (10 s). */
const SCRAPE_LIMIT_MS = 5000;

let cluster: Cluster | undefined;
let service: Service | undefined;

beforeAll(async () => {
  cluster = await startCluster();
  service = await startService(baseEnv({ DATABASE_URL: cluster.url, DATA_DIR: `${cluster.dir}/service-data` }));
}, 120_000);

afterAll(async () => {
  await stopService(service);
  await killAllServices();
  await cluster?.destroy();
});

/** A sample's value in Prometheus text (undefined when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const line = text
    .split('\n')
    .find((l) => (l.startsWith(`${name} `) || l.startsWith(`${name}{`)) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

const scrape = (port: number, agent: http.Agent): Promise<Outcome> => call({ port, agent, method: 'GET', path: '/metrics', timeoutMs: SCRAPE_LIMIT_MS });

describe('/metrics while the database is down', () => {
  it('answers 200 at once with the outage counters and the growing age of the database gauges', async () => {
    const port = service!.port;
    const agent = new http.Agent({ keepAlive: false });
    const token = await login(port, agent);
    const before = await scrape(port, agent);
    expect([before.status, before.error]).toEqual([200, undefined]);

    await cluster!.stop('immediate');
    const down = Date.now();
    let unavailable = 0;
    for (let i = 0; i < 20 && unavailable < 3; i++) {
      const o = await call({ port, agent, token, method: 'GET', path: '/user/me' });
      if (o.status === 503) unavailable++;
      await sleep(100);
    }
    expect(unavailable).toBe(3);

    const during = await scrape(port, agent);
    expect([during.status, during.error, during.end - during.start <= SCRAPE_LIMIT_MS]).toEqual([200, undefined, true]);
    expect(sample(during.body!, 'http_requests_total', { operation: 'getMe', status: '503' })).toBeGreaterThanOrEqual(3);
    expect(sample(during.body!, 'mail_outbox_depth')).toBeDefined();
    const age = sample(during.body!, 'db_gauges_age_seconds');
    expect(age).toBeDefined();

    // The last read was before the outage: its age is at least the time since, and grows.
    await sleep(2000);
    const later = await scrape(port, agent);
    expect([later.status, later.error]).toEqual([200, undefined]);
    expect(sample(later.body!, 'db_gauges_age_seconds')).toBeGreaterThanOrEqual((later.start - down) / 1000 - 0.05);
    expect(sample(later.body!, 'db_gauges_age_seconds')).toBeGreaterThan(age!);
    expect(service!.exit).toBeUndefined();

    await cluster!.start();
  });
});
