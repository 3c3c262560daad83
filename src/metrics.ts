import type { Pool } from 'pg';
import type { OutboxBacklog, WebhookBacklog } from './background/database-gauges';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What the metrics read when scraped: all of it in memory (a scrape never waits for the database). */
export interface MetricsSources {
  /** The database connections (pg's pool, also Knex's). */
  pool?: Pool;
  /**
   * The values read from the database in the background (see DatabaseGauges): mail waiting in the
   * outbox (how many, and the oldest one's age in seconds, 0 when none), and how old the read is.
   */
  database: { readonly outbox: OutboxBacklog; readonly ageSeconds: number; readonly webhooks?: WebhookBacklog };
  /** The audit chain's head as last seen, and its newest signed checkpoint. */
  auditChain?(): { head?: number; checkpoint?: { position: number; time: Date } };
}

type RequestChildren = { count: Counter.Internal; duration: Histogram.Internal<'operation' | 'status'> };

/** `POST /login`'s answer, as an outcome. */
function loginOutcome(status: number): string {
  if (status === 200) return 'succeeded';
  if (status === 401) return 'refused';
  if (status === 429) return 'throttled';
  if (status === 403) return 'unverified';
  if (status >= 500) return 'error';
  return 'invalid';
}

/**
 * The service's Prometheus metrics (prom-client), in a registry of its own (so that several
 * instances in one process, as in tests, do not share counters). Requests are counted and timed
 * by operationId and status, labels' children cached so a request costs two map lookups and
 * two increments.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({ name: 'http_requests_total', help: 'Requests answered, by operationId ("none": no route) and status.', labelNames: ['operation', 'status'], registers: [this.registry] });
  private readonly durations = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from a request reaching the service to its answer being sent, by operationId and status.',
    labelNames: ['operation', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  private readonly logins = new Counter({ name: 'login_attempts_total', help: 'POST /login answers by outcome: succeeded, refused (wrong credentials), throttled, unverified, invalid, error.', labelNames: ['outcome'], registers: [this.registry] });
  private readonly throttled = new Counter({ name: 'rate_limited_total', help: 'Requests refused with 429, by operationId.', labelNames: ['operation'], registers: [this.registry] });
  private readonly tokenChecks = new Counter({ name: 'token_checks_total', help: 'Presented tokens checked against the database, by result (valid, refused).', labelNames: ['result'], registers: [this.registry] });
  private readonly mailFailures = new Counter({ name: 'mail_send_failures_total', help: 'Mail deliveries that failed (each is retried).', registers: [this.registry] });
  private readonly webhookDeliveries = new Counter({
    name: 'webhook_deliveries_total',
    help: 'Webhook delivery attempts by result: delivered (a 2xx), retried (failed, tried again later), failed (the last attempt failed).',
    labelNames: ['result'],
    registers: [this.registry],
  });
  private readonly webhooksDisabled = new Counter({ name: 'webhook_disabled_total', help: 'Webhook endpoints the service disabled (410 Gone, or 5 days of failures).', registers: [this.registry] });
  private readonly children = new Map<string, RequestChildren>();
  private readonly validTokens = this.tokenChecks.labels('valid');
  private readonly refusedTokens = this.tokenChecks.labels('refused');

  constructor(sources: MetricsSources, options: { process?: boolean } = {}) {
    const { pool } = sources;
    new Gauge({
      name: 'db_pool_connections',
      help: 'Database connections of this process, by state: in_use, idle; and requests waiting for one (waiting).',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        if (!pool) return;
        this.set({ state: 'in_use' }, pool.totalCount - pool.idleCount);
        this.set({ state: 'idle' }, pool.idleCount);
        this.set({ state: 'waiting' }, pool.waitingCount);
      },
    });
    const { database } = sources;
    new Gauge({
      name: 'mail_outbox_depth',
      help: 'Mails waiting in the outbox to be delivered, as last read from the database (see db_gauges_age_seconds).',
      registers: [this.registry],
      collect() {
        this.set(database.outbox.depth);
      },
    });
    new Gauge({
      name: 'mail_outbox_oldest_age_seconds',
      help: 'Age of the oldest mail waiting in the outbox (0 when none waits), as last read from the database and counted on since.',
      registers: [this.registry],
      collect() {
        this.set(database.outbox.oldestAgeSeconds);
      },
    });
    new Gauge({
      name: 'db_gauges_age_seconds',
      help: 'Seconds since the values read from the database (mail_outbox_*) were last read; it grows while the database is unreachable.',
      registers: [this.registry],
      collect() {
        this.set(database.ageSeconds);
      },
    });
    new Gauge({
      name: 'webhook_queue_depth',
      help: 'Webhook deliveries waiting to be sent (pending), as last read from the database.',
      registers: [this.registry],
      collect() {
        this.set(database.webhooks?.depth ?? 0);
      },
    });
    new Gauge({
      name: 'webhook_oldest_pending_seconds',
      help: 'Age of the oldest pending webhook delivery, by endpoint id (endpoints with none pending are not shown), as last read from the database and counted on since.',
      labelNames: ['webhook'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [webhook, age] of Object.entries(database.webhooks?.oldestByWebhook ?? {})) this.set({ webhook }, age);
      },
    });
    const { auditChain } = sources;
    if (auditChain) {
      new Gauge({
        name: 'audit_chain_head_position',
        help: "The audit chain's last position as this instance last saw it (0: none yet).",
        registers: [this.registry],
        collect() {
          this.set(auditChain().head ?? 0);
        },
      });
      new Gauge({
        name: 'audit_chain_checkpoint_position',
        help: "The position of the audit chain's newest signed checkpoint (0: none yet); the checkpoint itself is the 'audit checkpoint' log line and AUDIT_CHECKPOINT_FILE.",
        registers: [this.registry],
        collect() {
          this.set(auditChain().checkpoint?.position ?? 0);
        },
      });
      new Gauge({
        name: 'audit_chain_checkpoint_timestamp_seconds',
        help: "When the audit chain's newest checkpoint was signed, in Unix seconds (0: none yet).",
        registers: [this.registry],
        collect() {
          this.set((auditChain().checkpoint?.time.getTime() ?? 0) / 1000);
        },
      });
    }
    for (const result of ['delivered', 'retried', 'failed']) this.webhookDeliveries.inc({ result }, 0);
    if (options.process) collectDefaultMetrics({ register: this.registry });
  }

  /** One answered request. */
  request(operation: string, status: number, seconds: number): void {
    const key = `${operation} ${status}`;
    let child = this.children.get(key);
    if (!child) {
      const labels = { operation, status: String(status) };
      child = { count: this.requests.labels(labels), duration: this.durations.labels(labels) };
      this.children.set(key, child);
    }
    child.count.inc();
    child.duration.observe(seconds);
    if (status === 429) this.throttled.inc({ operation });
    if (operation === 'login') this.logins.inc({ outcome: loginOutcome(status) });
  }

  tokenChecked(valid: boolean): void {
    (valid ? this.validTokens : this.refusedTokens).inc();
  }

  mailFailed(): void {
    this.mailFailures.inc();
  }

  webhookDelivery(result: 'delivered' | 'retried' | 'failed'): void {
    this.webhookDeliveries.inc({ result });
  }

  webhookDisabled(): void {
    this.webhooksDisabled.inc();
  }

  /** The text a scrape gets, and its content type. */
  async scrape(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
