import type { Knex } from 'knex';
import { leaseDue } from './lease';

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
    const rows = await leaseDue<{ id: string; recipients: string[]; subject: string; body_text: string | null; attempts: number }>(this.db, 'mail_outbox', {
      now,
      limit,
      leaseMs,
      returning: ['id', 'recipients', 'subject', 'body_text', 'attempts'],
      where: (q) => q.whereNull('sent'),
    });
    return rows.map((r) => ({ id: String(r.id), to: r.recipients, subject: r.subject, text: r.body_text ?? '', attempts: r.attempts }));
  }

  async backlog(now: Date): Promise<{ depth: number; oldestAgeSeconds: number }> {
    const row = await this.db('mail_outbox').whereNull('sent').first(this.db.raw('count(*)::int as depth'), this.db.raw('min(created) as oldest'));
    const oldest = row?.oldest as Date | null | undefined;
    return { depth: Number(row?.depth ?? 0), oldestAgeSeconds: oldest ? Math.max(0, (now.getTime() - oldest.getTime()) / 1000) : 0 };
  }

  async markSent(id: string, at: Date): Promise<void> {
    await this.db('mail_outbox').where('id', id).update({ sent: at, body_text: null, locked_until: null, last_error: null });
  }

  async markFailed(id: string, nextAttempt: Date, error: string): Promise<void> {
    await this.db('mail_outbox').where('id', id).update({ next_attempt: nextAttempt, locked_until: null, last_error: error.slice(0, 1000) });
  }
}
