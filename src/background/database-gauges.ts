import type { Logger } from 'pino';
import type { DatabaseAvailability } from '../db/availability';
import type { Clock } from '../domain/types';
import { Poller } from './poller';

/** The outbox as one read of the database found it. */
export interface OutboxBacklog {
  depth: number;
  oldestAgeSeconds: number;
}

/** The webhook deliveries waiting, as one read found them: how many, and the oldest one's age in seconds by endpoint. */
export interface WebhookBacklog {
  depth: number;
  oldestByWebhook: Record<string, number>;
}

/**
 * The metrics that come from the database (the outbox's depth and oldest mail), read in the
 * background every `intervalMs` and soon after a kick, never on a scrape: `GET /metrics` shows
 * the last values read at once, and how old they are, so that it answers during a database outage
 * (when the outage's own counters matter most). A failed read keeps the last values (their age
 * grows); an outage is left to `availability`, which logs it once.
 */
export class DatabaseGauges {
  private readonly poller: Poller;
  private last: (OutboxBacklog & { at: Date }) | undefined;
  private lastWebhooks: { backlog: WebhookBacklog; at: Date } | undefined;
  private readonly since: Date;

  private readonly readWebhooks: (() => Promise<WebhookBacklog>) | undefined;

  constructor(
    private readonly readOutbox: () => Promise<OutboxBacklog>,
    private readonly clock: Clock,
    private readonly log: Logger,
    options: { intervalMs: number; availability?: DatabaseAvailability; readWebhooks?: () => Promise<WebhookBacklog> },
  ) {
    this.since = clock.now();
    this.readWebhooks = options.readWebhooks;
    this.poller = new Poller(
      () =>
        this.refresh().catch((err) => {
          if (!options.availability?.accountedFor(err)) this.log.warn({ err }, 'reading the database gauges failed; will retry');
        }),
      options.intervalMs,
    );
  }

  /** Reads the values now. */
  async refresh(): Promise<void> {
    const outbox = await this.readOutbox();
    this.last = { ...outbox, at: this.clock.now() };
    if (this.readWebhooks) this.lastWebhooks = { backlog: await this.readWebhooks(), at: this.clock.now() };
  }

  /** The webhook deliveries waiting as last read, ages counted on to now (as the outbox's). Zeros before the first read. */
  get webhooks(): WebhookBacklog {
    const last = this.lastWebhooks;
    if (!last) return { depth: 0, oldestByWebhook: {} };
    const since = Math.max(0, (this.clock.now().getTime() - last.at.getTime()) / 1000);
    return { depth: last.backlog.depth, oldestByWebhook: Object.fromEntries(Object.entries(last.backlog.oldestByWebhook).map(([id, age]) => [id, age + since])) };
  }

  /**
   * The outbox as last read; the oldest mail's age counted on to now (it was that old then; a
   * mail sent since is not known until the next read). Zeros before the first read.
   */
  get outbox(): OutboxBacklog {
    const last = this.last;
    if (!last) return { depth: 0, oldestAgeSeconds: 0 };
    const since = Math.max(0, (this.clock.now().getTime() - last.at.getTime()) / 1000);
    return { depth: last.depth, oldestAgeSeconds: last.depth > 0 ? last.oldestAgeSeconds + since : 0 };
  }

  /** Seconds since the values were read (before the first read: since this process began to read them). */
  get ageSeconds(): number {
    return Math.max(0, (this.clock.now().getTime() - (this.last?.at ?? this.since).getTime()) / 1000);
  }

  start(): void {
    this.poller.start();
  }

  /** Stops reading (no last read: the values die with the process). */
  async stop(): Promise<void> {
    await this.poller.stop();
  }
}
