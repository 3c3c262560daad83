import type { Logger } from 'pino';
import type { DatabaseAvailability } from '../db/availability';
import type { Clock } from '../domain/types';
import type { Stores } from '../stores';
import { PollingWorker } from './poller';

/** How long a run of failed logins is remembered after its last failure. */
export const LOGIN_FAILURES_REMEMBERED_MS = 24 * 3_600_000;

const BATCH = 1000;

/**
 * Forgets what has stopped mattering, in small batches so no pass holds locks for long: ended
 * rate-limit windows, and runs of failed logins whose last failure is older than a day (unless
 * still blocked).
 */
export class Housekeeping extends PollingWorker {
  constructor(
    private readonly stores: Pick<Stores, 'rateLimits' | 'loginThrottle'>,
    private readonly clock: Clock,
    log: Logger,
    options: { intervalMs: number; availability?: DatabaseAvailability },
  ) {
    super(log, 'housekeeping', options.intervalMs, options.availability);
  }

  /** One pass: how many rows went. */
  async runOnce(): Promise<number> {
    const now = this.clock.now();
    let removed = 0;
    for (let n = BATCH; n === BATCH; removed += n) n = await this.stores.rateLimits.prune(now, BATCH);
    const before = new Date(now.getTime() - LOGIN_FAILURES_REMEMBERED_MS);
    for (let n = BATCH; n === BATCH; removed += n) n = await this.stores.loginThrottle.prune(before, now, BATCH);
    return removed;
  }
}
