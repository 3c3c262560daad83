import type { Logger } from 'pino';
import type { DatabaseAvailability } from '../db/availability';
import type { Clock } from '../domain/types';
import type { OutboxStore } from '../stores/outbox-store';
import { PollingWorker } from '../background/poller';
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
  /** Told of each failed delivery (the metrics count them). */
  onFailure?: () => void;
}

/**
 * Delivers what the outbox holds, after the transactions that wrote it have committed. Runs in
 * the background: a slow or dead SMTP server never touches an API request. A failed message is
 * tried again with exponential backoff; nothing is dropped, so nothing is lost across restarts.
 */
export class OutboxSender extends PollingWorker {
  private closed = false;
  /** Deliveries failing since the first failure after a success: logged when it starts and when it ends, with a count, not at each attempt. */
  private failing: { since: number; attempts: number; messages: Set<string> } | undefined;

  constructor(
    private readonly outbox: OutboxStore,
    private readonly transport: MailTransport,
    private readonly clock: Clock,
    log: Logger,
    private readonly options: OutboxSenderOptions,
  ) {
    super(log, 'outbox', options.pollIntervalMs, options.availability);
  }

  /** Stops polling after one last pass over what is due (a flush at shutdown), then closes the transport. */
  override async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await super.stop();
    this.transport.close();
    if (this.failing) {
      this.log.warn({ failed_attempts: this.failing.attempts, messages: this.failing.messages.size, failing_ms: Date.now() - this.failing.since }, 'mail delivery still failing at shutdown; the outbox keeps what is due');
      this.failing = undefined;
    }
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
          this.recovered();
        } catch (err) {
          this.options.onFailure?.();
          const delay = Math.min(this.options.retryBaseMs * 2 ** (message.attempts - 1), this.options.retryMaxMs);
          if (!this.failing) {
            this.failing = { since: Date.now(), attempts: 0, messages: new Set() };
            this.log.warn({ mailId: message.id, attempts: message.attempts, retryInMs: delay, err: String(err) }, 'mail delivery failing; every message is kept and retried');
          }
          this.failing.attempts++;
          this.failing.messages.add(String(message.id));
          await this.outbox.markFailed(message.id, new Date(this.clock.now().getTime() + delay), String(err));
        }
      }
      if (due.length < batch) return delivered;
    }
  }

  /** A delivery went through: the end of a run of failures, if there was one, is logged once with its count. */
  private recovered(): void {
    if (!this.failing) return;
    const { since, attempts, messages } = this.failing;
    this.failing = undefined;
    this.log.info({ failed_attempts: attempts, messages: messages.size, failing_ms: Date.now() - since }, 'mail delivery works again');
  }
}
