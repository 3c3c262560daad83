import type { Logger } from 'pino';
import type { DatabaseAvailability } from '../db/availability';
import type { Clock } from '../domain/types';
import type { OutboxStore } from '../stores/outbox-store';
import type { MailTransport } from './transports';

export interface OutboxSenderOptions {
  from: string;
  pollIntervalMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  batchSize?: number;
  leaseMs?: number;
  /** Told of database errors, so an outage is logged once rather than at every poll. */
  availability?: DatabaseAvailability;
}

/**
 * Delivers what the outbox holds, after the transactions that wrote it have committed. Runs in
 * the background: a slow or dead SMTP server never touches an API request. A failed message is
 * tried again with exponential backoff; nothing is dropped, so nothing is lost across restarts.
 */
export class OutboxSender {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  private closed = false;

  constructor(
    private readonly outbox: OutboxStore,
    private readonly transport: MailTransport,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: OutboxSenderOptions,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Something was queued: deliver soon rather than at the next poll. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) this.again = true;
    else this.schedule(0);
  }

  /** Stops polling after one last pass over what is due (a flush at shutdown). */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await this.runOnce().catch((err) => this.log.warn({ err }, 'final outbox pass failed'));
    this.transport.close();
  }

  /** One pass: returns how many messages were delivered. */
  async runOnce(): Promise<number> {
    const batch = this.options.batchSize ?? 20;
    let delivered = 0;
    for (;;) {
      const due = await this.outbox.claimDue(this.clock.now(), batch, this.options.leaseMs ?? 60_000);
      for (const message of due) {
        try {
          await this.transport.send({ from: this.options.from, to: message.to, subject: message.subject, text: message.text });
          await this.outbox.markSent(message.id, this.clock.now());
          delivered++;
        } catch (err) {
          const delay = Math.min(this.options.retryBaseMs * 2 ** (message.attempts - 1), this.options.retryMaxMs);
          this.log.warn({ mailId: message.id, attempts: message.attempts, retryInMs: delay, err: String(err) }, 'mail delivery failed; will retry');
          await this.outbox.markFailed(message.id, new Date(this.clock.now().getTime() + delay), String(err));
        }
      }
      if (due.length < batch) return delivered;
    }
  }

  private schedule(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), delayMs);
    this.timer.unref();
  }

  private tick(): void {
    if (this.stopped || this.running) return;
    this.running = this.runOnce()
      .then(() => undefined)
      .catch((err) => {
        if (!this.options.availability?.failed(err)) this.log.warn({ err }, 'outbox pass failed; will retry');
      })
      .finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        const again = this.again;
        this.again = false;
        this.schedule(again ? 0 : this.options.pollIntervalMs);
      });
  }
}
