import type { Logger } from 'pino';
import type { DatabaseAvailability } from '../db/availability';

/**
 * Runs a pass of background work now and then: every `intervalMs`, and `kickDelayMs` after `kick()`
 * (when work was just queued; a delay gathers the work of many kicks into one pass, and later kicks
 * never put a pass off). One pass at a time; a kick during a pass runs another after it.
 */
export class Poller {
  private timer: NodeJS.Timeout | undefined;
  private dueAt = Infinity;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;

  constructor(
    private readonly pass: () => Promise<void>,
    private readonly intervalMs: number,
    private readonly kickDelayMs = 0,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  kick(): void {
    if (this.stopped) return;
    if (this.running) this.again = true;
    else if (Date.now() + this.kickDelayMs < this.dueAt) this.schedule(this.kickDelayMs);
  }

  /** Stops polling and waits for the pass under way, if any. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.dueAt = Date.now() + delayMs;
    this.timer = setTimeout(() => this.tick(), delayMs);
    this.timer.unref();
  }

  private tick(): void {
    this.dueAt = Infinity;
    if (this.stopped || this.running) return;
    this.running = this.pass().finally(() => {
      this.running = undefined;
      if (this.stopped) return;
      const again = this.again;
      this.again = false;
      this.schedule(again ? this.kickDelayMs : this.intervalMs);
    });
  }
}

/**
 * A worker that polls: a pass every `intervalMs` and soon after a kick. A failed pass is logged
 * and tried again at the next poll; a database outage is left to `availability`, which logs it
 * once, rather than logged at every poll.
 */
export abstract class PollingWorker {
  private readonly poller: Poller;

  constructor(
    protected readonly log: Logger,
    private readonly name: string,
    intervalMs: number,
    availability: DatabaseAvailability | undefined,
    kickDelayMs = 0,
  ) {
    this.poller = new Poller(
      () =>
        this.runOnce().then(
          () => undefined,
          (err) => {
            if (!availability?.accountedFor(err)) this.log.warn({ err }, `${name} pass failed; will retry`);
          },
        ),
      intervalMs,
      kickDelayMs,
    );
  }

  /** One pass: how much it did. */
  abstract runOnce(): Promise<number>;

  start(): void {
    this.poller.start();
  }

  /** Something was queued: work soon rather than at the next poll. */
  kick(): void {
    this.poller.kick();
  }

  /** Stops polling, then makes one last pass (a flush at shutdown). */
  async stop(): Promise<void> {
    await this.poller.stop();
    await this.runOnce().catch((err) => this.log.warn({ err }, `final ${this.name} pass failed`));
  }
}
