import crypto from 'node:crypto';
import { KnexWebhookStore } from '../../src/stores/webhook-store';
import { openTestDatabase } from '../helpers/test-database';

/**
 * The sender's two statements, on this run's database (PGlite, or Postgres with DATABASE_URL),
 * through the pool (prepared) and through Knex (a store bound to a transaction).
 */
describe('KnexWebhookStore: claim and markDelivered', () => {
  let db: Awaited<ReturnType<typeof openTestDatabase>>;
  beforeAll(async () => {
    db = await openTestDatabase();
  });
  afterAll(async () => {
    await db.close();
  });
  afterEach(async () => {
    await db.knex('webhook_deliveries').delete(); // a claim takes any endpoint's
  });

  const now = new Date('2026-12-07T12:00:00Z');

  async function endpointWithDeliveries(n: number): Promise<{ id: string; deliveries: string[] }> {
    const store = new KnexWebhookStore(db.knex);
    const id = crypto.randomUUID();
    await store.insert({ id, url: 'https://hooks.example.com/in', events: ['*'], description: null, enabled: true, secret: 'sealed', createdBy: null, at: now });
    const deliveries: string[] = [];
    for (let i = 0; i < n; i++) deliveries.push(await store.enqueue(id, crypto.randomUUID(), 'user.created', `{"n":${i}}`, now));
    return { id, deliveries };
  }

  it.each([
    ['the pool', () => new KnexWebhookStore(db.knex, db.pool)],
    ['Knex', () => new KnexWebhookStore(db.knex)],
  ])('through %s: claims up to the share per endpoint, then records many 2xx in one statement, each only while its claim holds it', async (_via, make) => {
    const store = make();
    const e = await endpointWithDeliveries(5);
    await db.knex('webhooks').where({ id: e.id }).update({ failing_since: now });
    const claimed = await store.claim(now, 10, 30_000, 3, new Map([[e.id, 1]]));
    expect(claimed).toHaveLength(2); // 3 per endpoint, 1 already in flight here
    expect(claimed.every((d) => d.attempts === 1 && d.url === 'https://hooks.example.com/in' && d.secret === 'sealed')).toBe(true);

    const at = new Date(now.getTime() + 1000);
    const [a, b] = claimed;
    await db.knex('webhook_deliveries').where({ id: b.id }).increment('attempts', 1); // b was claimed again elsewhere meanwhile
    const recorded = await store.markDelivered([
      { id: a.id, token: a.attempts, status: 204, at },
      { id: b.id, token: b.attempts, status: 200, at },
    ]);
    expect([...recorded]).toEqual([a.id]);
    const rows = await db.knex('webhook_deliveries').whereIn('id', [a.id, b.id]).select('id', 'status', 'last_status', 'delivered', 'locked_until');
    expect(rows.find((r) => r.id === a.id)).toMatchObject({ status: 'delivered', last_status: 204, delivered: at, locked_until: null });
    expect(rows.find((r) => r.id === b.id)).toMatchObject({ status: 'pending', last_status: null, delivered: null });
    expect((await db.knex('webhooks').where({ id: e.id }).first()).failing_since).toBeNull();
    expect(await store.markDelivered([{ id: a.id, token: a.attempts, status: 204, at }])).toEqual(new Set()); // once
  });

  it("never lets one endpoint's backlog hide another's deliveries: each endpoint offers its own oldest, up to its share", async () => {
    const store = new KnexWebhookStore(db.knex, db.pool);
    const slow = await endpointWithDeliveries(0);
    const earlier = new Date(now.getTime() - 3600_000);
    await db.knex.raw(
      `insert into webhook_deliveries (id, webhook_id, event_id, type, body, next_attempt, created)
       select gen_random_uuid(), ?, gen_random_uuid(), 'user.created', '{}', ?, ? from generate_series(1, 300)`,
      [slow.id, earlier, earlier],
    ); // older than anything else, and more than any claim looks at in due order
    const other = await endpointWithDeliveries(2);
    const claimed = await store.claim(now, 10, 30_000, 3, new Map([[slow.id, 3]])); // the slow one's share is in flight
    expect(claimed.map((d) => d.webhookId)).toEqual([other.id, other.id]);
    const both = await store.claim(now, 10, 30_000, 3, new Map());
    expect(both.map((d) => d.webhookId)).toEqual([slow.id, slow.id, slow.id]); // oldest first, the share each
  });

  it("records without waiting for the disk: the statement turns synchronous_commit off for its own transaction", async () => {
    const e = await endpointWithDeliveries(1);
    await db.knex.transaction(async (trx) => {
      const store = new KnexWebhookStore(trx);
      const [d] = await store.claim(now, 1, 30_000, 1, new Map());
      expect((await trx.raw('show synchronous_commit')).rows[0].synchronous_commit).toBe('on');
      expect(await store.markDelivered([{ id: d.id, token: d.attempts, status: 200, at: now }])).toEqual(new Set([d.id]));
      expect((await trx.raw('show synchronous_commit')).rows[0].synchronous_commit).toBe('off');
    });
    expect((await db.knex.raw('show synchronous_commit')).rows[0].synchronous_commit).toBe('on'); // the session's is as it was
    expect((await db.knex('webhook_deliveries').where({ webhook_id: e.id }).first()).status).toBe('delivered');
  });
});
