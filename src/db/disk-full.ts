import type pg from 'pg';
import type { Logger } from 'pino';
import { onQueryOutcome } from './query-outcomes';

/** SQLSTATE disk_full: Postgres (and PGlite) could not extend a file or write its WAL. */
export const DISK_FULL = '53100';

/** Whether an error means the database's disk is full (SQLSTATE 53100, or the file system's ENOSPC). */
export function isDiskFull(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return code === DISK_FULL || code === 'ENOSPC';
}

/**
 * A commit this long after the last disk-full failure ends the state: while the disk is full,
 * a transaction that needs no new space (a login, a small update) still commits, between
 * failures of those that do.
 */
export const DISK_FULL_QUIET_MS = 5000;

/**
 * The database's disk-full state, logged once when it starts (the first statement refused for
 * want of space) and once when it ends (a transaction committed `quietMs` after the last such
 * refusal), not per request. Every connection of a pool reports to it (`watch`): requests' and
 * background workers' alike.
 */
export class DiskFullLog {
  private since: number | undefined;
  private lastFailure = 0;
  private failures = 0;

  constructor(
    private readonly log: Logger | undefined,
    private readonly quietMs = DISK_FULL_QUIET_MS,
  ) {}

  get isFull(): boolean {
    return this.since !== undefined;
  }

  /** Listens to every connection the pool opens. */
  watch(pool: pg.Pool): void {
    pool.on('connect', (client) =>
      onQueryOutcome(client, (err, result) => {
        if (err) this.failed(err);
        else if (result?.command === 'COMMIT') this.committed();
      }),
    );
  }

  failed(err: unknown): void {
    if (!isDiskFull(err)) return;
    this.lastFailure = Date.now();
    this.failures++;
    if (this.since !== undefined) return;
    this.since = this.lastFailure;
    const e = err as { message?: string; severity?: string };
    this.log?.warn(
      { error: { code: DISK_FULL, message: e.message, severity: e.severity } },
      'the database disk is full: writes answer 503 until space is freed (reads go on where the database can)',
    );
  }

  /** A transaction committed (a COMMIT of a failed one reports ROLLBACK instead). */
  committed(): void {
    if (this.since === undefined || Date.now() - this.lastFailure < this.quietMs) return;
    this.log?.info({ full_ms: this.lastFailure - this.since, failed_statements: this.failures }, 'the database disk has space again: writes succeed');
    this.since = undefined;
    this.failures = 0;
  }
}
