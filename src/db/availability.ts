import type { Logger } from 'pino';
import { isDiskFull } from './disk-full';

/** Socket-level failures reaching the database server. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

/**
 * SQLSTATEs meaning "the server cannot serve us now": class 08 (connection exception), 57P01
 * admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up or shutting
 * down), 53300 too_many_connections.
 */
const UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300']);

/**
 * What pg and Knex say when a connection dies under a query or cannot be had: pg-pool's wait
 * for a connection ran out (`timeout exceeded when trying to connect`, or a new connection's
 * handshake had no answer), or a query had none within its `query_timeout` (the server frozen).
 */
const UNAVAILABLE_MESSAGES = /timeout exceeded when trying to connect|Query read timeout|Connection terminated|connection error and is not queryable|Client was closed and is not queryable|Connection ended unexpectedly|terminating connection|the database system is (starting up|shutting down|in recovery mode)/i;

/** Whether an error means the database is out of reach, as opposed to a bug or bad input. */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; name?: unknown; message?: unknown; errors?: unknown };
  if (typeof e.code === 'string' && (NETWORK_CODES.has(e.code) || UNAVAILABLE_STATES.has(e.code) || e.code.startsWith('08'))) return true;
  if (e.name === 'KnexTimeoutError') return true; // no pool connection in time
  if (typeof e.message === 'string' && UNAVAILABLE_MESSAGES.test(e.message)) return true;
  // Node's AggregateError (a host with several addresses, all refused).
  return Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every(isDatabaseUnavailable);
}

/**
 * Keeps track of database outages so that each is logged once when it starts and once when it
 * ends, not once per request. Whoever meets an error reports it with `failed`; while the database
 * is down, a probe runs every `probeIntervalMs` to notice its return (requests heal on their own:
 * the pool replaces dead connections as they are acquired).
 */
export class DatabaseAvailability {
  private downSince: Date | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly probe: () => Promise<unknown>,
    private readonly log: Logger,
    private readonly probeIntervalMs = 1000,
  ) {}

  get isDown(): boolean {
    return this.downSince !== undefined;
  }

  /** Reports an error; true when it means the database is unreachable (and the outage is then known). */
  failed(err: unknown): boolean {
    if (!isDatabaseUnavailable(err)) return false;
    if (!this.downSince && !this.stopped) {
      this.downSince = new Date();
      const e = err as { code?: string; message?: string };
      this.log.warn({ error: { code: e.code, message: e.message } }, 'database unreachable');
      this.schedule();
    }
    return true;
  }

  /**
   * Whether an error is one the logs already speak for, so a background pass that met it need
   * not log it again: the database out of reach (the outage is then known, as with `failed`) or
   * its disk full (logged once by the database's DiskFullLog).
   */
  accountedFor(err: unknown): boolean {
    return this.failed(err) || isDiskFull(err);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.check(), this.probeIntervalMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    if (this.stopped || !this.downSince) return;
    try {
      await this.probe();
    } catch {
      return this.schedule();
    }
    const since = this.downSince;
    this.downSince = undefined;
    this.log.info({ down_ms: Date.now() - since.getTime() }, 'database reachable again');
  }
}
