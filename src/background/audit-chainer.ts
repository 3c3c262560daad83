import type { Logger } from 'pino';
import type { DatabaseAvailability } from '../db/availability';
import type { ChainKeys } from '../domain/audit-chain';
import type { AuditStore } from '../stores/audit-store';
import type { AuditCheckpoints } from './audit-checkpoints';
import { PollingWorker } from './poller';

/** Entries chained per transaction. */
const BATCH = 1000;

/**
 * Chains the committed audit entries (API.md §2.4b's tamper evidence): a change's transaction only
 * inserts its entry, and this worker links the entries into `audit_chain` with the key
 * (`AUDIT_KEY`) shortly after their commit, `kickDelayMs` after the first commit that wrote one
 * (so one pass takes the entries of many requests), and every `intervalMs` in case a commit came
 * from another process. Each pass hands its head to the checkpoints. An entry is open to an
 * undetected edit only in that moment between its commit and its chaining.
 */
export class AuditChainer extends PollingWorker {
  constructor(
    private readonly store: Pick<AuditStore, 'chain'>,
    private readonly keys: ChainKeys,
    private readonly checkpoints: AuditCheckpoints,
    log: Logger,
    private readonly options: {
      intervalMs: number;
      kickDelayMs: number;
      availability?: DatabaseAvailability;
      /** Told after a pass that chained entries (the webhook fan-out follows the chain). */
      chained?: () => void;
    },
  ) {
    super(log, 'audit chain', options.intervalMs, options.availability, options.kickDelayMs);
  }

  /** Chains everything committed so far; returns how many. */
  async runOnce(): Promise<number> {
    let total = 0;
    for (let n = BATCH; n === BATCH; total += n) {
      const pass = await this.store.chain(BATCH, this.keys);
      await this.checkpoints.observe(pass);
      n = pass.chained;
    }
    await this.checkpoints.persist();
    if (total > 0) this.options.chained?.();
    return total;
  }

  /** Stops after a last pass, and writes the newest checkpoint whatever its age. */
  override async stop(): Promise<void> {
    await super.stop();
    await this.checkpoints.persist(true).catch((err) => this.log.warn({ err }, 'writing the last audit checkpoint failed'));
  }
}
