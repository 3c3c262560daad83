import fs from 'node:fs';
import path from 'node:path';
import { messages, type ExecProtocolOptions, type PGlite } from '@electric-sql/pglite';
import { createPgConfig } from '@electric-sql/pglite/node-postgres';
import type pg from 'pg';
import type { Logger } from 'pino';
import { DISK_FULL } from './disk-full';

type BackendMessage = Awaited<ReturnType<PGlite['execProtocolStream']>>[number];

/** Free space below which a reopen is not tried (its recovery may want a new WAL segment, 16 MB), but for every `SLOW_RETRY_MS`. */
const REOPEN_MIN_FREE_BYTES = 16 * 1024 * 1024;
const SLOW_RETRY_MS = 30_000;

/** What pg's connection to an embedded database is handed: one `execProtocolStream` and `waitReady`. */
export interface EmbeddedTarget {
  readonly waitReady: Promise<void>;
  execProtocolStream(message: Uint8Array, options?: ExecProtocolOptions): Promise<BackendMessage[]>;
}

/**
 * The embedded database between pg and PGlite, so that a PANIC does not take the process with it.
 *
 * When PGlite cannot write its WAL (the disk is full) Postgres PANICs. PGlite reports that error
 * for the statement, but its instance is then dead: the next message it is given spins its wasm
 * forever, synchronously, and the whole process (every request, /healthz included) stops
 * answering. So after a PANIC (or FATAL) this guard gives the instance nothing more: every message
 * is answered at once with a `53100 disk_full` error, as a server would answer (one error a cycle,
 * ReadyForQuery at each Sync), and a new instance is opened on the same directory every
 * `retryMs` (once the file system has room again; opening replays the WAL, as after a crash:
 * nothing committed is lost). It takes over at the start of a cycle that prepares its statement
 * (pg prepares again what it had prepared on the old one); the dead instance is left to the
 * garbage collector, never called again (not even to close it).
 */
export class EmbeddedGuard implements EmbeddedTarget {
  private current: PGlite | undefined;
  private next: PGlite | undefined;
  /** When the live instance stopped; undefined while it runs. */
  private stoppedAt: number | undefined;
  /** An error was answered in this cycle (Postgres answers one, then skips to the Sync). */
  private errorInCycle = false;
  private timer: NodeJS.Timeout | undefined;
  private lastAttempt = 0;
  private closed = false;

  constructor(
    instance: PGlite,
    /** Where it keeps its files (whose file system's free space is watched). */
    private readonly dataDir: string,
    /** Opens a new instance on the same directory, as the first was opened. */
    private readonly reopen: () => Promise<PGlite>,
    private readonly log: Logger | undefined,
    /**
     * Called when the instance stops and when a new one takes over: pg's record of the statements
     * the connection prepared was the old instance's; forgotten, pg prepares them again.
     */
    private readonly forgetPrepared: () => void,
    private readonly retryMs = 1000,
  ) {
    this.current = instance;
  }

  get waitReady(): Promise<void> {
    return this.current?.waitReady ?? Promise.resolve();
  }

  async execProtocolStream(message: Uint8Array, options?: ExecProtocolOptions): Promise<BackendMessage[]> {
    // At a cycle's start, and one that names no statement prepared before (Parse, or a simple Query).
    if (this.next && !this.errorInCycle && (message[0] === 0x50 || message[0] === 0x51)) this.takeOver();
    const instance = this.stoppedAt === undefined ? this.current : undefined;
    let answer: BackendMessage[];
    try {
      answer = instance ? await instance.execProtocolStream(message, options) : this.refuse(message);
    } catch (err) {
      // The instance itself failed (its wasm aborted): it is as dead as after a PANIC.
      if (!instance || this.closed) throw err;
      this.stop({ message: (err as Error).message });
      answer = this.refuse(message);
    }
    let ready = false;
    for (const m of answer) {
      if (m instanceof messages.DatabaseError) {
        this.errorInCycle = true;
        if (instance && (m.severity === 'PANIC' || m.severity === 'FATAL')) this.stop(m);
      } else if (m instanceof messages.ReadyForQueryMessage) {
        this.errorInCycle = false;
        ready = true;
      }
    }
    // A PANIC answering a cycle's last message comes without the ReadyForQuery pg waits for.
    if (instance && this.stoppedAt !== undefined && !ready && endsCycle(message)) {
      answer.push(new messages.ReadyForQueryMessage(5, 'I'));
      this.errorInCycle = false;
    }
    return answer;
  }

  /** The instance that runs (undefined while stopped), to close. */
  close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const instance = this.stoppedAt === undefined ? this.current : this.next;
    this.current = this.next = undefined;
    return instance ? instance.close() : Promise.resolve();
  }

  /** A stopped database's answer to one frontend message: one error a cycle, ReadyForQuery at the cycle's end. */
  private refuse(message: Uint8Array): BackendMessage[] {
    const type = String.fromCharCode(message[0] ?? 0);
    const answer: BackendMessage[] = [];
    if (!this.errorInCycle && type !== 'H' && type !== 'X') {
      const text = 'the embedded database stopped after a write failed for want of disk space; it reopens once space is freed';
      const error = new messages.DatabaseError(text, text.length, 'error');
      error.severity = 'ERROR';
      error.code = DISK_FULL;
      answer.push(error);
    }
    if (endsCycle(message)) answer.push(new messages.ReadyForQueryMessage(5, 'I'));
    return answer;
  }

  private stop(panic: { code?: string; severity?: string; message: string }): void {
    this.stoppedAt = Date.now();
    // Opening an instance holds the event loop for half a second: not on a disk still full.
    this.lastAttempt = this.stoppedAt;
    this.forgetPrepared();
    this.log?.warn(
      { error: { code: panic.code, severity: panic.severity, message: panic.message }, retry_ms: this.retryMs },
      'the embedded database stopped (a PANIC: on a full disk, its WAL could not be written); reopening it on the same directory once there is space',
    );
    this.schedule();
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.attempt(), this.retryMs);
    this.timer.unref();
  }

  private async attempt(): Promise<void> {
    if (this.closed || this.next) return;
    if (freeBytes(this.dataDir) < REOPEN_MIN_FREE_BYTES && Date.now() - this.lastAttempt < SLOW_RETRY_MS) return this.schedule();
    this.lastAttempt = Date.now();
    let instance: PGlite;
    try {
      instance = await this.reopen();
    } catch (err) {
      this.log?.debug({ err: (err as Error).message }, 'the embedded database did not open yet');
      return this.schedule();
    }
    if (this.closed) return void instance.close().catch(() => undefined);
    this.next = instance;
  }

  private takeOver(): void {
    const stoppedMs = this.stoppedAt === undefined ? 0 : Date.now() - this.stoppedAt;
    this.current = this.next;
    this.next = undefined;
    this.stoppedAt = undefined;
    this.forgetPrepared();
    this.log?.info({ stopped_ms: stoppedMs }, 'the embedded database reopened');
  }
}

/**
 * pg's configuration for an embedded database in a directory, through a guard (undefined for
 * one in memory, which has no disk to fill).
 */
export function guardedPgConfig(instance: PGlite, dataDir: string, reopen: () => Promise<PGlite>, log: Logger | undefined): { config: pg.PoolConfig; guard?: EmbeddedGuard } {
  if (dataDir.startsWith('memory://')) return { config: createPgConfig(instance) as unknown as pg.PoolConfig };
  let connection: { parsedStatements: object; submittedNamedStatements: object } | undefined;
  const guard = new EmbeddedGuard(instance, path.resolve(dataDir), reopen, log, () => {
    // pg keeps what it prepared on the connection object, which outlives the instance behind it.
    if (!connection) return;
    connection.parsedStatements = {};
    connection.submittedNamedStatements = {};
  });
  const config = createPgConfig(guard as unknown as PGlite);
  connection = config.connection as unknown as typeof connection;
  return { config: config as unknown as pg.PoolConfig, guard };
}

/** Sync and a simple Query end a cycle: Postgres answers ReadyForQuery to them. */
function endsCycle(message: Uint8Array): boolean {
  return message[0] === 0x53 || message[0] === 0x51;
}

/** Free bytes on the file system holding `dir`; Infinity when it cannot be told (then the space is not waited for). */
function freeBytes(dir: string): number {
  try {
    const stats = fs.statfsSync(dir);
    return stats.bavail * stats.bsize;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
