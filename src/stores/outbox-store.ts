import type { Knex } from 'knex';

export interface OutgoingMail {
  to: string[];
  subject: string;
  text: string;
}

export interface OutboxMessage extends OutgoingMail {
  id: string;
  attempts: number;
}

export interface OutboxStore {
  enqueue(mail: OutgoingMail): Promise<void>;
  /** How many messages this store (one transaction's) has queued. */
  readonly enqueued: number;
  /** Leases up to `limit` due messages for `leaseMs`, so other senders skip them meanwhile. */
  claimDue(now: Date, limit: number, leaseMs: number): Promise<OutboxMessage[]>;
  markSent(id: string, at: Date): Promise<void>;
  markFailed(id: string, nextAttempt: Date, error: string): Promise<void>;
}

export class KnexOutboxStore implements OutboxStore {
  enqueued = 0;

  constructor(private readonly db: Knex) {}

  async enqueue(mail: OutgoingMail): Promise<void> {
    await this.db('mail_outbox').insert({ recipients: mail.to, subject: mail.subject, body_text: mail.text });
    this.enqueued++;
  }

  async claimDue(now: Date, limit: number, leaseMs: number): Promise<OutboxMessage[]> {
    const due = this.db('mail_outbox')
      .select('id')
      .whereNull('sent')
      .where('next_attempt', '<=', now)
      .where((w) => w.whereNull('locked_until').orWhere('locked_until', '<=', now))
      .orderBy('id')
      .limit(limit)
      .forUpdate()
      .skipLocked();
    const rows = await this.db('mail_outbox')
      .whereIn('id', due)
      .update({ locked_until: new Date(now.getTime() + leaseMs), attempts: this.db.raw('attempts + 1') })
      .returning(['id', 'recipients', 'subject', 'body_text', 'attempts']);
    return rows
      .map((r) => ({ id: String(r.id), to: r.recipients, subject: r.subject, text: r.body_text ?? '', attempts: r.attempts }))
      .sort((a, b) => Number(a.id) - Number(b.id));
  }

  async markSent(id: string, at: Date): Promise<void> {
    await this.db('mail_outbox').where('id', id).update({ sent: at, body_text: null, locked_until: null, last_error: null });
  }

  async markFailed(id: string, nextAttempt: Date, error: string): Promise<void> {
    await this.db('mail_outbox').where('id', id).update({ next_attempt: nextAttempt, locked_until: null, last_error: error.slice(0, 1000) });
  }
}
