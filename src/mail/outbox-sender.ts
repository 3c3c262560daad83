import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { DatabaseAvailability } from '../db/availability';
import type { Clock } from '../domain/types';
import type { OutboxMessage, OutboxStore } from '../stores/outbox-store';
import { PollingWorker } from '../background/poller';
import type { MailTransport } from './transports';

/** How long a claim holds a message before another sender may take it (a sender that died). */
export const MAIL_LEASE_MS = 15_000;

export interface OutboxSenderOptions {
  from: string;
  pollIntervalMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Messages claimed at a time (at least twice `concurrency`). */
  batchSize?: number;
  leaseMs?: number;
  /** Messages handed to the transport at once (default 1). */
  concurrency?: number;
  /** The domain of each message's Message-ID (default: the domain of `from`, else `localhost`). */
  messageIdDomain?: string;
  /** Told of database errors, so an outage is logged once rather than at every poll. */
  availability?: DatabaseAvailability;
  /** Told of each failed delivery (the metrics count them). */
  onFailure?: () => void;
}

/** The domain of a sender address (`Accounts <noreply@example.com>`: `example.com`), if it has one. */
export function domainOf(address: string): string | undefined {
  return /@([A-Za-z0-9.-]+)>?\s*$/.exec(address)?.[1]?.toLowerCase();
}

/**
 * An outbox row's Message-ID: the same at every attempt (a copy sent again after a crash can be
 * recognised as the same message), and unique across installations as their sender domains
 * differ, and within one as (row id, time queued) never repeats, even after the table is emptied.
 */
export function outboxMessageId(message: Pick<OutboxMessage, 'id' | 'created'>, domain: string): string {
  return `<outbox.${message.id}.${message.created.getTime().toString(36)}@${domain}>`;
}

/**
 * Delivers what the outbox holds, after the transactions that wrote it have committed. Runs in
 * the background: a slow or dead SMTP server never touches an API request. A failed message is
 * tried again with exponential backoff; nothing is dropped, so nothing is lost across restarts.
 *
 * Exactly once as far as a sender can see it: the `attempts` a claim set is its fencing token.
 * Before each send that comes more than a third of the lease after the claim, the sender renews
 * that message's lease on the condition that the token is still the message's (no other sender
 * claimed it since: else it is skipped), keeps renewing it
 * while the send is in flight, and records the outcome on the same condition, as soon as the
 * transport accepted the message. A sender that dies leaves at most its messages in flight to be
 * sent again, after their lease (`leaseMs`) ran out, with the same Message-ID.
 */
export class OutboxSender extends PollingWorker {
  private closed = false;
  /** Deliveries failing since the first failure after a success: logged when it starts and when it ends, with a count, not at each attempt. */
  private failing: { since: number; attempts: number; messages: Set<string> } | undefined;
  private readonly limit: pLimit.Limit;
  private readonly leaseMs: number;
  private readonly domain: string;

  constructor(
    private readonly outbox: OutboxStore,
    private readonly transport: MailTransport,
    private readonly clock: Clock,
    log: Logger,
    private readonly options: OutboxSenderOptions,
  ) {
    super(log, 'outbox', options.pollIntervalMs, options.availability);
    this.limit = pLimit(Math.max(1, options.concurrency ?? 1));
    this.leaseMs = options.leaseMs ?? MAIL_LEASE_MS;
    this.domain = options.messageIdDomain ?? domainOf(options.from) ?? 'localhost';
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
    const batch = Math.max(this.options.batchSize ?? 20, 2 * Math.max(1, this.options.concurrency ?? 1));
    let delivered = 0;
    for (;;) {
      const claimedAt = this.clock.now().getTime();
      const due = await this.outbox.claimDue(new Date(claimedAt), batch, this.leaseMs);
      // Every delivery of the batch ends before the pass does, even when one failed (the database).
      const outcomes = await Promise.allSettled(due.map((message) => this.limit(() => this.deliver(message, claimedAt))));
      const failed = outcomes.find((o) => o.status === 'rejected');
      if (failed) throw failed.reason;
      delivered += outcomes.filter((o) => o.status === 'fulfilled' && o.value).length;
      if (due.length < batch) return delivered;
    }
  }

  /** Sends one claimed message unless its claim was taken over; true when it was sent and recorded. */
  private async deliver(message: OutboxMessage, claimedAt: number): Promise<boolean> {
    // Claimed less than a third of the lease ago, the lease is surely still ours (no sender takes
    // a message before its lease ran out: 10 s of margin for the senders' clocks to disagree).
    // Later, it may have waited its turn past its lease and another sender may have claimed it:
    // the lease is renewed first, on the condition that the claim still holds it.
    let renewedAt = claimedAt;
    if (this.clock.now().getTime() - claimedAt >= this.leaseMs / 3) {
      renewedAt = this.clock.now().getTime();
      if (!(await this.outbox.renewLease(message.id, message.attempts, new Date(renewedAt), this.leaseMs))) {
        this.log.info({ mailId: message.id, attempts: message.attempts }, 'mail skipped: another sender claimed it');
        return false;
      }
    }
    const lease = this.keepLease(message, renewedAt);
    try {
      await this.transport.send({ from: this.options.from, to: message.to, subject: message.subject, text: message.text, messageId: outboxMessageId(message, this.domain) });
    } catch (err) {
      if (await lease.end()) return false; // another sender has it: its attempt counts, not ours
      this.options.onFailure?.();
      const delay = Math.min(this.options.retryBaseMs * 2 ** (message.attempts - 1), this.options.retryMaxMs);
      if (!this.failing) {
        this.failing = { since: Date.now(), attempts: 0, messages: new Set() };
        this.log.warn({ mailId: message.id, attempts: message.attempts, retryInMs: delay, err: String(err) }, 'mail delivery failing; every message is kept and retried');
      }
      this.failing.attempts++;
      this.failing.messages.add(String(message.id));
      await this.outbox.markFailed(message.id, message.attempts, new Date(this.clock.now().getTime() + delay), String(err));
      return false;
    }
    this.recovered();
    if (!(await lease.end()) && (await this.outbox.markSent(message.id, message.attempts, this.clock.now()))) return true;
    this.log.warn({ mailId: message.id, attempts: message.attempts }, 'mail sent after another sender claimed it: it may arrive twice, with the same Message-ID');
    return false;
  }

  /**
   * Renews the message's lease every third of it (the first time a third after `renewedAt`, when
   * it was claimed or last renewed) while its send is in flight. `end()` stops
   * that (after a renewal under way) and tells whether a renewal found the lease lost. A renewal
   * that fails (the database unreachable) is tried again at the next tick.
   */
  private keepLease(message: OutboxMessage, renewedAt: number): { end(): Promise<boolean> } {
    let lost = false;
    let ended = false;
    let renewing: Promise<void> = Promise.resolve();
    let timer: NodeJS.Timeout;
    const tick = () => {
      renewing = this.outbox.renewLease(message.id, message.attempts, this.clock.now(), this.leaseMs).then(
        (held) => {
          lost ||= !held;
          if (!ended && !lost) timer = setTimeout(tick, this.leaseMs / 3).unref();
        },
        () => {
          if (!ended) timer = setTimeout(tick, this.leaseMs / 3).unref();
        },
      );
    };
    timer = setTimeout(tick, Math.max(0, renewedAt + this.leaseMs / 3 - this.clock.now().getTime())).unref();
    return {
      end: async () => {
        ended = true;
        clearTimeout(timer);
        await renewing;
        return lost;
      },
    };
  }

  /** A delivery went through: the end of a run of failures, if there was one, is logged once with its count. */
  private recovered(): void {
    if (!this.failing) return;
    const { since, attempts, messages } = this.failing;
    this.failing = undefined;
    this.log.info({ failed_attempts: attempts, messages: messages.size, failing_ms: Date.now() - since }, 'mail delivery works again');
  }
}
