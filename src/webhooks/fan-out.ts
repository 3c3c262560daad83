import type { Logger } from 'pino';
import { PollingWorker } from '../background/poller';
import type { DatabaseAvailability } from '../db/availability';
import type { Clock } from '../domain/types';
import type { WebhookStore } from '../stores/webhook-store';

/** Chain links read per transaction. */
const BATCH = 1000;

/**
 * Turns committed, chained audit entries into webhook deliveries (API.md §2.9: the audit log is
 * the outbox). It follows the audit chain's order (`audit_chain.pos`, gap-free, never leaving an
 * entry behind) from a cursor, in one transaction per batch that inserts the deliveries and moves
 * the cursor: a crash loses nothing and duplicates nothing. Kicked after each chain pass that
 * chained something, and polled for the passes of other processes. A change request writes
 * nothing more than its audit entry: endpoints cost it nothing.
 */
export class WebhookFanOut extends PollingWorker {
  constructor(
    private readonly store: Pick<WebhookStore, 'fanOut'>,
    private readonly clock: Clock,
    log: Logger,
    private readonly options: { intervalMs: number; availability?: DatabaseAvailability; queued: () => void },
  ) {
    super(log, 'webhook fan-out', options.intervalMs, options.availability);
  }

  /** Fans out everything chained so far; returns how many deliveries it queued. */
  async runOnce(): Promise<number> {
    let queued = 0;
    for (;;) {
      const pass = await this.store.fanOut(BATCH, this.clock.now());
      queued += pass.queued;
      if (pass.queued > 0) this.options.queued();
      if (pass.read < BATCH) return queued;
    }
  }
}
