import type { Knex } from 'knex';
import { leaseDue } from './lease';

export interface OutgoingMail {
  to: string[];
  subject: string;
  text: string;
}

export interface OutboxMessage extends OutgoingMail {
  id: string;
  /** Set by the claim that returned the message: that claim's fencing token (see `renewLease`). */
  attempts: number;
  /** When the message was queued (part of its stable Message-ID). */
  created: Date;
}

export interface OutboxStore {
  enqueue(mail: OutgoingMail): Promise<void>;
  /** How many messages this store (one transaction's) has queued. */
  readonly enqueued: number;
  /** Leases up to `limit` due messages for `leaseMs`, so other senders skip them meanwhile. */
  claimDue(now: Date, limit: number, leaseMs: number): Promise<OutboxMessage[]>;
  /**
   * Extends the lease of one claimed message to `now + leaseMs`, if the claim whose `attempts` is
   * `token` still holds it (no later claim took it over, it is not sent): false when it does not.
   * A lease that ran out but was taken by nobody is still the claim's.
   */
  renewLease(id: string, token: number, now: Date, leaseMs: number): Promise<boolean>;
  /** Records the delivery, if the claim `token` still holds the message; false when it does not. */
  markSent(id: string, token: number, at: Date): Promise<boolean>;
  /** Records a failed attempt and when to try again, if the claim `token` still holds the message. */
  markFailed(id: string, token: number, nextAttempt: Date, error: string): Promise<boolean>;
  /** Mail not yet delivered: how many, and the oldest one's age in seconds at `now` (0 when none). */
  backlog(now: Date): Promise<{ depth: number; oldestAgeSeconds: number }>;
}

export class KnexOutboxStore implements OutboxStore {
  enqueued = 0;

  constructor(private readonly db: Knex) {}

  async enqueue(mail: OutgoingMail): Promise<void> {
    await this.db('mail_outbox').insert({ recipients: mail.to, subject: mail.subject, body_text: mail.text });
    this.enqueued++;
  }

  async claimDue(now: Date, limit: number, leaseMs: number): Promise<OutboxMessage[]> {
    const rows = await leaseDue<{ id: string; recipients: string[]; subject: string; body_text: string | null; attempts: number; created: Date }>(this.db, 'mail_outbox', {
      now,
      limit,
      leaseMs,
      returning: ['id', 'recipients', 'subject', 'body_text', 'attempts', 'created'],
      where: (q) => q.whereNull('sent'),
    });
    return rows.map((r) => ({ id: String(r.id), to: r.recipients, subject: r.subject, text: r.body_text ?? '', attempts: r.attempts, created: new Date(r.created) }));
  }

  async backlog(now: Date): Promise<{ depth: number; oldestAgeSeconds: number }> {
    const row = await this.db('mail_outbox').whereNull('sent').first(this.db.raw('count(*)::int as depth'), this.db.raw('min(created) as oldest'));
    const oldest = row?.oldest as Date | null | undefined;
    return { depth: Number(row?.depth ?? 0), oldestAgeSeconds: oldest ? Math.max(0, (now.getTime() - oldest.getTime()) / 1000) : 0 };
  }

  async renewLease(id: string, token: number, now: Date, leaseMs: number): Promise<boolean> {
    return (await this.held(id, token).update({ locked_until: new Date(now.getTime() + leaseMs) })) > 0;
  }

  async markSent(id: string, token: number, at: Date): Promise<boolean> {
    return (await this.held(id, token).update({ sent: at, body_text: null, locked_until: null, last_error: null })) > 0;
  }

  async markFailed(id: string, token: number, nextAttempt: Date, error: string): Promise<boolean> {
    return (await this.held(id, token).update({ next_attempt: nextAttempt, locked_until: null, last_error: error.slice(0, 1000) })) > 0;
  }

  /** The message, while the claim `token` holds it: no later claim raised its attempts, not sent. */
  private held(id: string, token: number): Knex.QueryBuilder {
    return this.db('mail_outbox').where({ id, attempts: token }).whereNull('sent');
  }
}
