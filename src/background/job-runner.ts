import type { Logger } from 'pino';
import type { DatabaseAvailability } from '../db/availability';
import type { Clock } from '../domain/types';
import type { JobStore } from '../stores/job-store';
import { PollingWorker } from './poller';

export type JobHandler = (payload: Record<string, unknown>) => Promise<void>;

export interface JobRunnerOptions {
  pollIntervalMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** After this many attempts a job is given up (logged as an error, its row kept for a person to look at). */
  maxAttempts?: number;
  batchSize?: number;
  leaseMs?: number;
  availability?: DatabaseAvailability;
}

/**
 * Runs the jobs of `background_jobs` (work a request queued and did not wait for), with retries
 * and exponential backoff; several instances share the table safely (leases, SKIP LOCKED).
 */
export class JobRunner extends PollingWorker {
  constructor(
    private readonly jobs: JobStore,
    private readonly handlers: Record<string, JobHandler>,
    private readonly clock: Clock,
    log: Logger,
    private readonly options: JobRunnerOptions,
  ) {
    super(log, 'job', options.pollIntervalMs, options.availability);
  }

  /** One pass: returns how many jobs were done. */
  async runOnce(): Promise<number> {
    const batch = this.options.batchSize ?? 20;
    const maxAttempts = this.options.maxAttempts ?? 12;
    let done = 0;
    for (;;) {
      const due = await this.jobs.claimDue(this.clock.now(), batch, this.options.leaseMs ?? 60_000);
      for (const job of due) {
        const handler = this.handlers[job.kind];
        try {
          if (!handler) throw new Error(`no handler for jobs of kind ${job.kind}`);
          await handler(job.payload);
          await this.jobs.complete(job.id);
          done++;
        } catch (err) {
          if (this.options.availability?.accountedFor(err)) throw err; // the whole pass waits for the database (or for space)
          const delay = Math.min(this.options.retryBaseMs * 2 ** (job.attempts - 1), this.options.retryMaxMs);
          const next = new Date(this.clock.now().getTime() + (job.attempts >= maxAttempts ? 365 * 86_400_000 : delay));
          if (job.attempts >= maxAttempts) this.log.error({ jobId: job.id, kind: job.kind, attempts: job.attempts, err }, 'background job given up');
          else this.log.warn({ jobId: job.id, kind: job.kind, attempts: job.attempts, retryInMs: delay, err }, 'background job failed; will retry');
          await this.jobs.retryLater(job.id, next, String(err));
        }
      }
      if (due.length < batch) return done;
    }
  }
}
