import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Pool } from 'pg';
import { runPrepared, type PreparedStatement } from '../db/prepared';
import type { AuditAction } from '../domain/audit';
import { AUDIT_EVENT_TYPES, eventPayload, wants } from '../domain/webhook-events';

/** An endpoint as stored (its secrets sealed: see WebhookService). */
export interface Webhook {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  enabled: boolean;
  created: Date;
  updated: Date;
  disabledReason: string | null;
  failingSince: Date | null;
}

export interface WebhookSecrets {
  secret: string;
  previousSecret: string | null;
  previousSecretUntil: Date | null;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface Delivery {
  id: string;
  webhookId: string;
  eventId: string;
  type: string;
  status: DeliveryStatus;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  nextAttempt: Date;
  created: Date;
  delivered: Date | null;
}

/** A delivery a sender claimed, with what sending it needs: the endpoint's URL and sealed secrets, and the body. */
export interface ClaimedDelivery extends Delivery, WebhookSecrets {
  url: string;
  body: string;
}

/** A 2xx to record: the delivery, the claim's fencing token, the answer's status and when it came. */
export interface DeliveredOutcome {
  id: string;
  token: number;
  status: number;
  at: Date;
}

export interface WebhookChanges {
  url?: string;
  events?: string[];
  description?: string | null;
  enabled?: boolean;
}

/** A keyset position: (created, id). */
export interface TimeKey {
  time: Date;
  id: string;
}

export interface WebhookStore {
  insert(row: { id: string; url: string; events: string[]; description: string | null; enabled: boolean; secret: string; createdBy: string | null; at: Date }): Promise<Webhook>;
  /** Oldest first, after `after`. */
  list(limit: number, after?: TimeKey): Promise<Webhook[]>;
  find(id: string): Promise<Webhook | undefined>;
  /** The row, locked until the transaction ends. */
  lock(id: string): Promise<Webhook | undefined>;
  /** Enabling clears `disabled_reason` and `failing_since`. */
  update(id: string, changes: WebhookChanges, at: Date): Promise<Webhook>;
  remove(id: string): Promise<boolean>;
  /** A new current secret; the old one signs too until `previousUntil`. */
  rotate(id: string, secret: string, previousUntil: Date, at: Date): Promise<void>;
  /** A delivery of `body` to one endpoint, due now (a `webhook.test` event). */
  enqueue(webhookId: string, eventId: string, type: string, body: string, at: Date): Promise<string>;
  /** Newest first, before `before`. */
  deliveries(webhookId: string, limit: number, options: { before?: TimeKey; status?: DeliveryStatus }): Promise<Delivery[]>;
  /** Makes a delivery of this endpoint pending and due at `at`, keeping its event and body; false when it is not this endpoint's. */
  retry(webhookId: string, deliveryId: string, at: Date): Promise<boolean>;
  /**
   * One fan-out pass (its own transaction, serialised across processes): the audit chain's links
   * after the cursor (up to `limit`), a delivery per (entry that is an event, enabled endpoint
   * that wants it and existed at the entry's time), and the cursor moved past them.
   */
  fanOut(limit: number, now: Date): Promise<{ read: number; queued: number }>;
  /**
   * Leases up to `limit` due deliveries of enabled endpoints for `leaseMs` (their `attempts` go
   * up by one: the claim's fencing token), at most `perEndpoint` per endpoint counting the ones
   * in flight here (`inFlight`, by endpoint id).
   */
  claim(now: Date, limit: number, leaseMs: number, perEndpoint: number, inFlight: ReadonlyMap<string, number>): Promise<ClaimedDelivery[]>;
  /**
   * Records 2xx answers, each if its claim `token` still holds the delivery, in one statement
   * (their endpoints' failing_since cleared). Returns the ids recorded.
   */
  markDelivered(outcomes: readonly DeliveredOutcome[]): Promise<Set<string>>;
  /** Records a failed attempt: pending again at `nextAttempt`, or `failed` (null); the endpoint's failing_since set if unset. Returns it (undefined: the claim was lost). */
  markFailed(id: string, token: number, result: { status: number | null; error: string; nextAttempt: Date | null }, at: Date): Promise<{ failingSince: Date } | undefined>;
  /** Disables an enabled endpoint with a reason; false when it was not enabled. */
  disable(id: string, reason: string, at: Date): Promise<boolean>;
  /** The addresses of the active system admins. */
  adminAddresses(): Promise<string[]>;
  /** Pending deliveries: how many, and the oldest one's age in seconds at `now`, by endpoint. */
  backlog(now: Date): Promise<{ depth: number; oldestByWebhook: Record<string, number> }>;
}

interface WebhookRow {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  enabled: boolean;
  created: Date;
  updated: Date;
  disabled_reason: string | null;
  failing_since: Date | null;
}

interface DeliveryRow {
  id: string;
  webhook_id: string;
  event_id: string;
  type: string;
  status: DeliveryStatus;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  next_attempt: Date;
  created: Date;
  delivered: Date | null;
}

const WEBHOOK_COLUMNS = ['id', 'url', 'events', 'description', 'enabled', 'created', 'updated', 'disabled_reason', 'failing_since'];
const DELIVERY_COLUMNS = ['id', 'webhook_id', 'event_id', 'type', 'status', 'attempts', 'last_status', 'last_error', 'next_attempt', 'created', 'delivered'];

/** The advisory lock that serialises fan-out passes across processes ('whfo'). */
const FAN_OUT_LOCK = 0x7768666f;

function toWebhook(r: WebhookRow): Webhook {
  return {
    id: r.id,
    url: r.url,
    events: r.events,
    description: r.description,
    enabled: r.enabled,
    created: new Date(r.created),
    updated: new Date(r.updated),
    disabledReason: r.disabled_reason,
    failingSince: r.failing_since && new Date(r.failing_since),
  };
}

function toDelivery(r: DeliveryRow): Delivery {
  return {
    id: r.id,
    webhookId: r.webhook_id,
    eventId: r.event_id,
    type: r.type,
    status: r.status,
    attempts: r.attempts,
    lastStatus: r.last_status,
    lastError: r.last_error,
    nextAttempt: new Date(r.next_attempt),
    created: new Date(r.created),
    delivered: r.delivered && new Date(r.delivered),
  };
}

type ClaimRow = DeliveryRow & { body: string; url: string; secret: string; previous_secret: string | null; previous_secret_until: Date | null };

/**
 * The sender's claim (prepared: planning it cost more than running it). Values: now, how many,
 * the deliveries in flight here by endpoint (jsonb), the share per endpoint, the lease's end.
 * Each enabled endpoint offers its oldest due deliveries, up to its share less those in flight
 * here (webhook_deliveries_endpoint_due_idx), and the oldest of those are taken: one endpoint's
 * backlog, however long, never hides another endpoint's deliveries (a slow endpoint holds up
 * only its own). Only the rows offered are locked (`skip locked`: another claim's are passed
 * over, and one it took meanwhile is seen again with its lease and left out).
 */
export const CLAIM: PreparedStatement = {
  name: 'webhook_claim',
  text: `with chosen as (
      select d.id from webhooks w
       cross join lateral (
         select d.id, d.next_attempt from webhook_deliveries d
          where d.webhook_id = w.id and d.status = 'pending' and d.next_attempt <= $1::timestamptz
            and (d.locked_until is null or d.locked_until <= $1::timestamptz)
          order by d.next_attempt
          limit greatest(0, $4::int - coalesce(($3::jsonb ->> w.id::text)::int, 0))
          for update skip locked) d
       where w.enabled
       order by d.next_attempt limit $2::int),
    claimed as (
      update webhook_deliveries d set locked_until = $5::timestamptz, attempts = d.attempts + 1
        from chosen where d.id = chosen.id
      returning d.*)
    select c.id, c.webhook_id, c.event_id, c.type, c.status, c.attempts, c.last_status, c.last_error, c.next_attempt, c.created, c.delivered, c.body,
           w.url, w.secret, w.previous_secret, w.previous_secret_until
      from claimed c join webhooks w on w.id = c.webhook_id`,
};

/**
 * 2xx answers recorded, all that ended meanwhile in one statement (one round trip, its own
 * transaction); each only while its claim's token holds it. Its commit does not wait for the
 * disk (synchronous_commit off for this transaction): a record lost with a crash of Postgres
 * means the delivery is sent again after its lease, with the same webhook-id, which a receiver
 * must bear anyway (at least once, API.md §2.9). Value: the outcomes as a jsonb array.
 */
export const DELIVERED: PreparedStatement = {
  name: 'webhook_delivered',
  text: `with o as (select * from jsonb_to_recordset($1::jsonb) as o(id uuid, token int, status int, at timestamptz)),
    d as (
      update webhook_deliveries w set status = 'delivered', delivered = o.at, last_status = o.status, last_error = null, locked_until = null
        from o where w.id = o.id and w.attempts = o.token and w.status = 'pending'
      returning w.id, w.webhook_id),
    ok as (update webhooks set failing_since = null where id in (select webhook_id from d) and failing_since is not null)
    select d.id, set_config('synchronous_commit', 'off', true) from d`,
};

export class KnexWebhookStore implements WebhookStore {
  constructor(
    private readonly db: Knex,
    private readonly pool?: Pool,
  ) {}

  async insert(row: { id: string; url: string; events: string[]; description: string | null; enabled: boolean; secret: string; createdBy: string | null; at: Date }): Promise<Webhook> {
    const [r] = await this.db('webhooks')
      .insert({ id: row.id, url: row.url, events: row.events, description: row.description, enabled: row.enabled, secret: row.secret, created: row.at, updated: row.at, created_by: row.createdBy })
      .returning(WEBHOOK_COLUMNS);
    return toWebhook(r);
  }

  async list(limit: number, after?: TimeKey): Promise<Webhook[]> {
    const q = this.db('webhooks').select(WEBHOOK_COLUMNS).orderBy([{ column: 'created' }, { column: 'id' }]).limit(limit);
    if (after) q.whereRaw('(created, id) > (?, ?)', [after.time, after.id]);
    return (await q).map(toWebhook);
  }

  async find(id: string): Promise<Webhook | undefined> {
    const r = await this.db('webhooks').select(WEBHOOK_COLUMNS).where({ id }).first();
    return r && toWebhook(r);
  }

  async lock(id: string): Promise<Webhook | undefined> {
    const r = await this.db('webhooks').select(WEBHOOK_COLUMNS).where({ id }).forUpdate().first();
    return r && toWebhook(r);
  }

  async update(id: string, changes: WebhookChanges, at: Date): Promise<Webhook> {
    const patch: Record<string, unknown> = { updated: at };
    if (changes.url !== undefined) patch.url = changes.url;
    if (changes.events !== undefined) patch.events = changes.events;
    if (changes.description !== undefined) patch.description = changes.description;
    if (changes.enabled !== undefined) {
      patch.enabled = changes.enabled;
      if (changes.enabled) Object.assign(patch, { disabled_reason: null, failing_since: null });
    }
    const [r] = await this.db('webhooks').where({ id }).update(patch).returning(WEBHOOK_COLUMNS);
    return toWebhook(r);
  }

  async remove(id: string): Promise<boolean> {
    return (await this.db('webhooks').where({ id }).delete()) > 0;
  }

  async rotate(id: string, secret: string, previousUntil: Date, at: Date): Promise<void> {
    await this.db('webhooks')
      .where({ id })
      .update({ previous_secret: this.db.ref('secret'), previous_secret_until: previousUntil, secret, updated: at });
  }

  async enqueue(webhookId: string, eventId: string, type: string, body: string, at: Date): Promise<string> {
    const id = crypto.randomUUID();
    await this.db('webhook_deliveries').insert({ id, webhook_id: webhookId, event_id: eventId, type, body, next_attempt: at, created: at });
    return id;
  }

  async deliveries(webhookId: string, limit: number, options: { before?: TimeKey; status?: DeliveryStatus }): Promise<Delivery[]> {
    const q = this.db('webhook_deliveries')
      .select(DELIVERY_COLUMNS)
      .where({ webhook_id: webhookId })
      .orderBy([{ column: 'created', order: 'desc' }, { column: 'id', order: 'desc' }])
      .limit(limit);
    if (options.status) q.where({ status: options.status });
    if (options.before) q.whereRaw('(created, id) < (?, ?)', [options.before.time, options.before.id]);
    return (await q).map(toDelivery);
  }

  async retry(webhookId: string, deliveryId: string, at: Date): Promise<boolean> {
    // The lease stays: a retry asked while an attempt is in flight never puts a second one in
    // flight (one at a time across instances); that attempt's outcome stands.
    const n = await this.db('webhook_deliveries').where({ id: deliveryId, webhook_id: webhookId }).update({ status: 'pending', next_attempt: at });
    return n > 0;
  }

  async fanOut(limit: number, now: Date): Promise<{ read: number; queued: number }> {
    return this.db.transaction(async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(?)', [FAN_OUT_LOCK]);
      const cursor = await trx('webhook_cursor').select('pos').where({ id: 1 }).first();
      const from = Number(cursor?.pos ?? 0);
      const { rows } = await trx.raw<{
        rows: { pos: string; id: string | null; time: Date | null; action: AuditAction | null; actor_id: string | null; actor_name: string | null; target_type: 'user' | 'group' | null; target_id: string | null; target_name: string | null; summary: Record<string, unknown> | null }[];
      }>(
        `select c.pos, a.id, a.time, a.action, a.actor_id, a.actor_name, a.target_type, a.target_id, a.target_name, a.summary
           from audit_chain c left join audit_log a on a.seq = c.seq
          where c.pos > ? order by c.pos limit ?`,
        [from, limit],
      );
      if (rows.length === 0) return { read: 0, queued: 0 };
      const events = rows.filter((r) => r.id !== null && r.action !== null && AUDIT_EVENT_TYPES.includes(r.action));
      const deliveries: { id: string; webhook_id: string; event_id: string; type: string; body: string; next_attempt: string; created: string }[] = [];
      if (events.length > 0) {
        const endpoints: { id: string; events: string[]; created: Date }[] = await trx('webhooks').select('id', 'events', 'created').where({ enabled: true });
        for (const r of events) {
          const time = new Date(r.time!);
          const wanting = endpoints.filter((e) => wants(e.events, r.action!) && new Date(e.created) <= time);
          if (wanting.length === 0) continue;
          const body = JSON.stringify(
            eventPayload({
              action: r.action!,
              time,
              actor: r.actor_id ? { id: r.actor_id, name: r.actor_name ?? '' } : null,
              target: r.target_type && r.target_id ? { type: r.target_type, id: r.target_id, name: r.target_name ?? '' } : null,
              summary: r.summary ?? {},
            }),
          );
          for (const e of wanting) {
            deliveries.push({ id: crypto.randomUUID(), webhook_id: e.id, event_id: r.id!, type: r.action!, body, next_attempt: now.toISOString(), created: now.toISOString() });
          }
        }
      }
      let queued = 0;
      if (deliveries.length > 0) {
        const result = await trx.raw<{ rowCount: number }>(
          `insert into webhook_deliveries (id, webhook_id, event_id, type, body, next_attempt, created)
           select * from jsonb_to_recordset(?::jsonb) as d(id uuid, webhook_id uuid, event_id uuid, type text, body text, next_attempt timestamptz, created timestamptz)
           on conflict (webhook_id, event_id) do nothing`,
          [JSON.stringify(deliveries)],
        );
        queued = result.rowCount;
      }
      await trx('webhook_cursor').where({ id: 1 }).update({ pos: Number(rows[rows.length - 1].pos) });
      return { read: rows.length, queued };
    });
  }

  claim(now: Date, limit: number, leaseMs: number, perEndpoint: number, inFlight: ReadonlyMap<string, number>): Promise<ClaimedDelivery[]> {
    const at = now.toISOString();
    return runPrepared<ClaimRow>(this.db, this.pool, CLAIM, [at, limit, JSON.stringify(Object.fromEntries(inFlight)), perEndpoint, new Date(now.getTime() + leaseMs).toISOString()]).then((rows) =>
      rows.map((r) => ({
        ...toDelivery(r),
        body: r.body,
        url: r.url,
        secret: r.secret,
        previousSecret: r.previous_secret,
        previousSecretUntil: r.previous_secret_until && new Date(r.previous_secret_until),
      })),
    );
  }

  markDelivered(outcomes: readonly DeliveredOutcome[]): Promise<Set<string>> {
    const values = JSON.stringify(outcomes.map((o) => ({ id: o.id, token: o.token, status: o.status, at: o.at.toISOString() })));
    return runPrepared<{ id: string }>(this.db, this.pool, DELIVERED, [values]).then((rows) => new Set(rows.map((r) => r.id)));
  }

  async markFailed(id: string, token: number, result: { status: number | null; error: string; nextAttempt: Date | null }, at: Date): Promise<{ failingSince: Date } | undefined> {
    // One statement, as markDelivered: the attempt recorded, and the endpoint failing since now
    // unless it already was.
    const { rows } = await this.db.raw<{ rows: { failing_since: Date }[] }>(
      `with d as (
         update webhook_deliveries
            set status = ?, next_attempt = coalesce(?::timestamptz, next_attempt), last_status = ?::int, last_error = ?, locked_until = null
          where id = ? and attempts = ? and status = 'pending' returning webhook_id)
       update webhooks set failing_since = coalesce(failing_since, ?) where id in (select webhook_id from d) returning failing_since`,
      [result.nextAttempt ? 'pending' : 'failed', result.nextAttempt, result.status, result.error.slice(0, 500), id, token, at],
    );
    return rows[0] ? { failingSince: new Date(rows[0].failing_since) } : undefined;
  }

  async disable(id: string, reason: string, at: Date): Promise<boolean> {
    return (await this.db('webhooks').where({ id, enabled: true }).update({ enabled: false, disabled_reason: reason, updated: at })) > 0;
  }

  async adminAddresses(): Promise<string[]> {
    const rows: { email: string }[] = await this.db('users').select('email').where('is_admin', true).whereNull('deactivated').orderBy('email');
    return rows.map((r) => r.email);
  }

  async backlog(now: Date): Promise<{ depth: number; oldestByWebhook: Record<string, number> }> {
    const rows: { webhook_id: string; depth: string; oldest: Date }[] = await this.db('webhook_deliveries')
      .select('webhook_id', this.db.raw('count(*) as depth'), this.db.raw('min(created) as oldest'))
      .where({ status: 'pending' })
      .groupBy('webhook_id');
    let depth = 0;
    const oldestByWebhook: Record<string, number> = {};
    for (const r of rows) {
      depth += Number(r.depth);
      oldestByWebhook[r.webhook_id] = Math.max(0, (now.getTime() - new Date(r.oldest).getTime()) / 1000);
    }
    return { depth, oldestByWebhook };
  }
}
