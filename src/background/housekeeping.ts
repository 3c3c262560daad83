import type { Logger } from 'pino';
import type { DatabaseAvailability } from '../db/availability';
import { PENDING_FACTOR_TTL_MS } from '../domain/mfa';
import type { Clock } from '../domain/types';
import type { Stores } from '../stores';
import { PollingWorker } from './poller';

/** How long a run of failed logins is remembered after its last failure. */
export const LOGIN_FAILURES_REMEMBERED_MS = 24 * 3_600_000;

const BATCH = 1000;

/**
 * Forgets what has stopped mattering, in small batches so no pass holds locks for long: ended
 * rate-limit windows, runs of failed logins whose last failure is older than a day (unless
 * still blocked), two-factor factors never confirmed within 10 minutes, passkey challenges past their 5 minutes, and registrations never verified whose link has expired (so nobody can hold an
 * address they do not own for ever), and audit entries past their retention (oldest first, so what
 * is kept is one unbroken chain). With `analyzeEveryMs` (the embedded database, which has no autovacuum to do
 * it) it also refreshes the planner's statistics that often, so list pages keep their plans as
 * the tables grow.
 */
export class Housekeeping extends PollingWorker {
  private lastAnalyze: number;

  constructor(
    private readonly stores: Pick<Stores, 'rateLimits' | 'loginThrottle' | 'maintenance' | 'users' | 'audit' | 'mfa' | 'challenges'>,
    private readonly clock: Clock,
    log: Logger,
    private readonly options: {
      intervalMs: number;
      availability?: DatabaseAvailability;
      analyzeEveryMs?: number;
      /** Registrations never verified within this long are removed (API.md §2.4b). */
      registrationTtlMs?: number;
      /** Audit entries older than this are removed, oldest first (0 or unset: kept for ever). */
      auditRetentionMs?: number;
    },
  ) {
    super(log, 'housekeeping', options.intervalMs, options.availability);
    this.lastAnalyze = clock.now().getTime();
  }

  /** One pass: how many rows went. */
  async runOnce(): Promise<number> {
    const now = this.clock.now();
    if (this.options.analyzeEveryMs && now.getTime() - this.lastAnalyze >= this.options.analyzeEveryMs) {
      await this.stores.maintenance.analyze();
      this.lastAnalyze = now.getTime();
    }
    let removed = 0;
    for (let n = BATCH; n === BATCH; removed += n) n = await this.stores.rateLimits.prune(now, BATCH);
    const before = new Date(now.getTime() - LOGIN_FAILURES_REMEMBERED_MS);
    for (let n = BATCH; n === BATCH; removed += n) n = await this.stores.loginThrottle.prune(before, now, BATCH);
    // Factors never confirmed (API.md §2.8): dropped 10 minutes after they were added.
    const pendingBefore = new Date(now.getTime() - PENDING_FACTOR_TTL_MS);
    for (let n = BATCH; n === BATCH; removed += n) n = await this.stores.mfa.prunePending(pendingBefore, BATCH);
    // Passkey challenges never answered (API.md §2.8): useless once expired.
    for (let n = BATCH; n === BATCH; removed += n) n = await this.stores.challenges.pruneExpired(now, BATCH);
    if (this.options.registrationTtlMs) {
      const unverifiedBefore = new Date(now.getTime() - this.options.registrationTtlMs);
      for (let n = BATCH; n === BATCH; removed += n) n = await this.stores.users.removeUnverified(unverifiedBefore, BATCH);
    }
    if (this.options.auditRetentionMs) {
      const auditBefore = new Date(now.getTime() - this.options.auditRetentionMs);
      for (let n = BATCH; n === BATCH; removed += n) n = await this.stores.audit.prune(auditBefore, BATCH);
    }
    return removed;
  }
}
