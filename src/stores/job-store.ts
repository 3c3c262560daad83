import type { Knex } from 'knex';
import { leaseDue } from './lease';

export interface Job {
  id: string;
  kind: string;
  payload: Record<string, unknown>;
  attempts: number;
}

export interface JobStore {
  enqueue(kind: string, payload: Record<string, unknown>): Promise<void>;
  /** How many jobs this store (one transaction's) has queued. */
  readonly enqueued: number;
  /** Leases up to `limit` due jobs for `leaseMs`, so other runners skip them meanwhile. */
  claimDue(now: Date, limit: number, leaseMs: number): Promise<Job[]>;
  /** Done: the row goes. */
  complete(id: string): Promise<void>;
  retryLater(id: string, nextAttempt: Date, error: string): Promise<void>;
}

export class KnexJobStore implements JobStore {
  enqueued = 0;

  constructor(private readonly db: Knex) {}

  async enqueue(kind: string, payload: Record<string, unknown>): Promise<void> {
    await this.db('background_jobs').insert({ kind, payload: JSON.stringify(payload) });
    this.enqueued++;
  }

  async claimDue(now: Date, limit: number, leaseMs: number): Promise<Job[]> {
    const rows = await leaseDue<{ id: string; kind: string; payload: Record<string, unknown>; attempts: number }>(this.db, 'background_jobs', {
      now,
      limit,
      leaseMs,
      returning: ['id', 'kind', 'payload', 'attempts'],
    });
    return rows.map((r) => ({ id: String(r.id), kind: r.kind, payload: r.payload, attempts: r.attempts }));
  }

  async complete(id: string): Promise<void> {
    await this.db('background_jobs').where({ id }).delete();
  }

  async retryLater(id: string, nextAttempt: Date, error: string): Promise<void> {
    await this.db('background_jobs').where({ id }).update({ next_attempt: nextAttempt, locked_until: null, last_error: error.slice(0, 1000) });
  }
}
