import http from 'node:http';
import pg from 'pg';
import { startCluster, type Cluster } from '../helpers/pg-cluster';
import { baseEnv, call, dumpRun, killAllServices, login, sleep, startService, stopService, type Outcome, type Service } from './harness';
import { WebhookSink, type WebhookCopy } from './webhook-sink';

/**
 * Webhooks from two replicas on one Postgres (issue 23): a few endpoints with different
 * subscriptions, a few hundred changes sent alternately to either replica, both replicas'
 * senders running. In the normal case (nothing killed, the receiver answering in time) each
 * event reaches each endpoint that wants it once: counted by `webhook-id` per endpoint, none
 * missing, none twice, nothing an endpoint did not ask for, every copy signed; every delivery
 * claimed once (one attempt), and the replicas' metrics count each delivery once between them.
 */

const USERS = 60;
const UPDATES_PER_USER = 3;
const DEACTIVATED = 15;
/** The receiver answers each copy this late, so both replicas' senders have deliveries in flight at once. */
const RECEIVER_DELAY_MS = 25;
const ENDPOINTS = {
  '/all': ['*'],
  '/updates': ['user.updated'],
  '/lifecycle': ['user.created', 'user.deactivated'],
} as const;
type EndpointPath = keyof typeof ENDPOINTS;

let cluster: Cluster | undefined;
let replicas: Service[] = [];
let db: pg.Client | undefined;
const sink = new WebhookSink(RECEIVER_DELAY_MS);
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const failures: Outcome[] = [];
/** The changes made: one event each, `type user-name`, in order. */
const changes: string[] = [];
const hookIds: Partial<Record<EndpointPath, string>> = {};

async function expectOk(o: Outcome, status: number): Promise<Outcome> {
  if (o.status !== status) {
    failures.push(o);
    throw new Error(`${o.method} ${o.path}: expected ${status}, got ${o.status ?? o.error} ${o.body ?? ''}`);
  }
  return o;
}

async function pollUntil<T>(what: string, read: () => Promise<T> | T, done: (v: T) => boolean, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not so within ${timeoutMs} ms (last: ${JSON.stringify(value)})`);
    await sleep(200);
  }
}

/** Runs fn over 0..n-1, `limit` at a time. */
async function inParallel(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    for (let i = next++; i < n; i = next++) await fn(i);
  }));
}

/** The webhook_deliveries_total{result="delivered"} a replica's /metrics reports. */
async function deliveredMetric(replica: Service): Promise<number> {
  const o = await call({ port: replica.port, agent, method: 'GET', path: '/metrics' });
  const line = (o.body ?? '').split('\n').find((l) => /^webhook_deliveries_total\{[^}]*result="delivered"[^}]*\} /.test(l));
  return line ? Number(line.split(' ').pop()) : 0;
}

beforeAll(async () => {
  await sink.start();
  cluster = await startCluster();
  const env = (name: string) =>
    baseEnv({
      DATABASE_URL: cluster!.url,
      DATA_DIR: `${cluster!.dir}/replica-${name}`,
      DATABASE_POOL_SIZE: '4',
      WEBHOOK_ALLOW_HTTP: '1',
      WEBHOOK_ALLOW_PRIVATE: '1',
    });
  replicas = await Promise.all([startService(env('a')), startService(env('b'))]);
  db = new pg.Client({ connectionString: cluster.url });
  await db.connect();
}, 180_000);

afterAll(async () => {
  dumpRun('webhooks-two-replicas', { changes, copies: sink.copies, failures });
  await db?.end();
  await Promise.all(replicas.map((r) => stopService(r)));
  await killAllServices();
  await sink.stop();
  await cluster?.destroy();
});

describe('webhooks from two replicas on one database', () => {
  test('endpoints made on one replica, a few hundred changes made alternately on both', async () => {
    const tokens = [await login(replicas[0]!.port), await login(replicas[1]!.port)];
    const on = (i: number) => ({ port: replicas[i % 2]!.port, token: tokens[i % 2] });
    for (const [i, [path, events]] of Object.entries(ENDPOINTS).entries()) {
      const made = await expectOk(await call({ ...on(i), agent, method: 'POST', path: '/webhook', body: { url: sink.url(path), events } }), 201);
      const hook = made.json as { id: string; secret: string };
      hookIds[path as EndpointPath] = hook.id;
      sink.trust(path, hook.secret);
    }
    const ids: string[] = [];
    await inParallel(USERS, 8, async (i) => {
      const name = `hook-replica-${i}`;
      const created = await expectOk(await call({ ...on(i), agent, method: 'POST', path: '/user?send_mail=0', body: { name, email: `${name}@faults.example.test` } }), 201);
      ids[i] = (created.json as { id: string }).id;
      changes.push(`user.created ${name}`);
    });
    await inParallel(USERS * UPDATES_PER_USER, 8, async (n) => {
      const i = n % USERS;
      const name = `hook-replica-${i}`;
      const round = Math.floor(n / USERS);
      await expectOk(await call({ ...on(n), agent, method: 'POST', path: `/user/${ids[i]}?send_mail=0`, body: { first_name: `First${round}` } }), 200);
      changes.push(`user.updated ${name}`);
    });
    await inParallel(DEACTIVATED, 8, async (i) => {
      await expectOk(await call({ ...on(i + 1), agent, method: 'DELETE', path: `/user/${ids[i]}` }), 204);
      changes.push(`user.deactivated hook-replica-${i}`);
    });
    expect(changes).toHaveLength(USERS * (1 + UPDATES_PER_USER) + DEACTIVATED);
  });

  const key = (c: WebhookCopy) => `${c.type} ${(c.data.user as { name?: string } | undefined)?.name ?? '?'}`;
  const wanted = (path: EndpointPath, change: string) => (ENDPOINTS[path] as readonly string[]).some((e) => e === '*' || change.startsWith(`${e} `));

  test('each endpoint gets each event it wants once: none missing, none twice, nothing else', async () => {
    const expected = Object.fromEntries(
      (Object.keys(ENDPOINTS) as EndpointPath[]).map((path) => {
        const counts = new Map<string, number>();
        for (const c of changes.filter((ch) => wanted(path, ch))) counts.set(c, (counts.get(c) ?? 0) + 1);
        return [path, counts];
      }),
    );
    const total = Object.values(expected).reduce((n, counts) => n + [...counts.values()].reduce((a, b) => a + b, 0), 0);
    await pollUntil('the receiver has every event', () => sink.accepted().length, (n) => n >= total);
    await sleep(3000); // a copy sent twice would come right behind
    for (const path of Object.keys(ENDPOINTS) as EndpointPath[]) {
      const copies = sink.copies.filter((c) => c.path === path);
      // By webhook-id: each once.
      const byId = new Map<string, number>();
      for (const c of copies) byId.set(c.id, (byId.get(c.id) ?? 0) + 1);
      expect({ path, twice: [...byId].filter(([, n]) => n > 1) }).toEqual({ path, twice: [] });
      // By what changed: what the endpoint wants, as often as it happened (a user updated three times: three events).
      const got = new Map<string, number>();
      for (const c of copies) got.set(key(c), (got.get(key(c)) ?? 0) + 1);
      expect({ path, events: Object.fromEntries([...got].sort()) }).toEqual({ path, events: Object.fromEntries([...expected[path]!].sort()) });
    }
    expect(sink.copies.filter((c) => !c.verified || c.accepted === undefined)).toEqual([]);
    expect(sink.copies).toHaveLength(total);
  });

  test('every delivery was claimed once and is recorded delivered, and the replicas count each once between them', async () => {
    const rows = await db!.query<{ webhook_id: string; status: string; attempts: number; n: number }>(
      'select webhook_id, status, attempts, count(*)::int as n from webhook_deliveries group by webhook_id, status, attempts order by webhook_id::text',
    );
    const expectedRows = (Object.keys(ENDPOINTS) as EndpointPath[])
      .map((path) => ({ webhook_id: hookIds[path]!, status: 'delivered', attempts: 1, n: changes.filter((c) => wanted(path, c)).length }))
      .sort((a, b) => (a.webhook_id < b.webhook_id ? -1 : 1));
    expect(rows.rows).toEqual(expectedRows);
    const counted = await Promise.all(replicas.map(deliveredMetric));
    expect(counted[0]! + counted[1]!).toBe(sink.copies.length);
    // Both senders took part (else this would be one sender's test).
    expect(counted.map((n) => n > 0)).toEqual([true, true]);
  });
});
