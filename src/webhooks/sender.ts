import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import { Webhook as Signer } from 'standardwebhooks';
import { PollingWorker } from '../background/poller';
import type { DatabaseAvailability } from '../db/availability';
import type { Clock } from '../domain/types';
import { webhookDisabledMail, type MailSettings } from '../mail/templates';
import type { WebhookSecrets } from '../services/webhook-secrets';
import type { Transactor } from '../stores';
import type { ClaimedDelivery, DeliveredOutcome, WebhookStore } from '../stores/webhook-store';

/** A delivery's whole attempt, connection to the end of the answer (API.md §2.9). */
export const WEBHOOK_TIMEOUT_MS = 15_000;
/** A claim's lease: longer than an attempt can take, so a live sender never loses its claim. */
export const WEBHOOK_LEASE_MS = 30_000;
/**
 * Deliveries in flight to one endpoint at once, per instance: half of WEBHOOK_CONCURRENCY (at
 * least one), so one slow endpoint never holds up the others. Under load an endpoint's throughput
 * is its share over an attempt's round trip, claim and record included: bench webhook_throughput
 * (one endpoint, 1 000 changes at about 240/s on a busy core, 2026-12-07) delivered 64 events/s
 * meanwhile with 4 in flight, half the changes' rate with 8, and all of it with 16.
 */
export function perEndpointShare(concurrency: number): number {
  return Math.max(1, Math.floor(concurrency / 2));
}
/** The waits after failures 1 to 7 (each ±20 %); the 8th failure is final (API.md §2.9). */
export const RETRY_SCHEDULE_MS = [5_000, 5 * 60_000, 30 * 60_000, 2 * 3600_000, 5 * 3600_000, 10 * 3600_000, 10 * 3600_000];
/** An endpoint with nothing delivered for this long of failures is disabled, and the admins mailed. */
export const FAILING_DISABLE_MS = 5 * 24 * 3600_000;
/** At shutdown, how long the deliveries in flight have to end before they are cut (within SHUTDOWN_TIMEOUT's 10 s). */
export const STOP_GRACE_MS = 5_000;
/** Opened secrets kept (see signer()): all of them, unless there are this many endpoints. */
const SIGNERS_KEPT = 1000;
/** 2xx answers recorded in one statement at most. */
const RECORD_BATCH = 100;
/** How much of an answer is read (and a little of it kept in `last_error`). */
const ANSWER_BYTES = 4096;

/** The wait before attempt `failures + 1`, with ±20 % jitter; null after the last attempt. */
export function retryDelay(failures: number, random: () => number = Math.random): number | null {
  const base = RETRY_SCHEDULE_MS[failures - 1];
  return base === undefined ? null : Math.round(base * (0.8 + 0.4 * random()));
}

export interface WebhookMetrics {
  delivered(): void;
  retried(): void;
  failed(): void;
  disabled(): void;
}

export interface WebhookSenderOptions {
  /** Deliveries in flight at once in this instance (WEBHOOK_CONCURRENCY). */
  concurrency: number;
  /** WEBHOOK_ALLOW_PRIVATE: no address check at connect. */
  allowPrivate: boolean;
  pollIntervalMs: number;
  /** APP_NAME (the User-Agent) and what the mail to the admins needs. */
  mail: MailSettings;
  availability?: DatabaseAvailability;
  metrics?: WebhookMetrics;
  timeoutMs?: number;
  /** A disable's mail was queued: the mail sender starts at once. */
  mailQueued?: () => void;
}

type Outcome = { ok: true; status: number } | { ok: false; status: number | null; error: string };

/**
 * Sends the webhook deliveries (API.md §2.9); every instance runs one. A claim leases a delivery
 * (`for update skip locked`; its `attempts` is the fencing token, and each result is recorded on
 * the condition that the token still holds it), so each delivery is in flight in one place at a
 * time. Up to `concurrency` at once, at most half of them to one endpoint. A request: `POST` with
 * the Standard Webhooks headers, signed by the endpoint's secret (and its previous one during a
 * rotation), no redirects followed, 15 s in all; the resolved address is checked at connect
 * (request-filtering-agent) unless WEBHOOK_ALLOW_PRIVATE. A 2xx is delivered; anything else is
 * retried on RETRY_SCHEDULE_MS; `410` disables the endpoint at once; an endpoint failing for 5 days
 * is disabled and the active system admins are mailed.
 */
export class WebhookSender extends PollingWorker {
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly perEndpoint = new Map<string, number>();
  /** Passes waiting for a delivery to end or a kick (one, unless a test runs a pass beside the poller's). */
  private waiting: (() => void)[] = [];
  /** Deliveries ended so far (a claim under way may have counted them as still in flight). */
  private ended = 0;
  private closing = false;
  /** Shutting down past the grace: attempts in flight are cut and record nothing (sent again after their lease). */
  private cutting = false;
  private readonly requests = new Set<http.ClientRequest>();
  /** 2xx answers waiting to be recorded, and whether a statement recording them is under way. */
  private toRecord: { outcome: DeliveredOutcome; recorded: (yes: boolean) => void; failed: (err: unknown) => void }[] = [];
  private recording = false;
  private readonly signers = new Map<string, Signer>();
  private readonly agents: Promise<{ http: http.Agent; https: https.Agent }>;
  private readonly userAgent: string;

  constructor(
    private readonly store: WebhookStore,
    private readonly transact: Transactor,
    private readonly secrets: WebhookSecrets,
    private readonly clock: Clock,
    log: Logger,
    private readonly options: WebhookSenderOptions,
  ) {
    super(log, 'webhook sender', options.pollIntervalMs, options.availability);
    const filter = { allowPrivateIPAddress: options.allowPrivate, allowMetaIPAddress: options.allowPrivate, keepAlive: true }; // the claim holds each endpoint to its share; two endpoints on one host share the pool
    // request-filtering-agent is an ES module: imported, not required (this build is CommonJS).
    this.agents = import('request-filtering-agent').then((m) => ({ http: new m.RequestFilteringHttpAgent(filter), https: new m.RequestFilteringHttpsAgent(filter) }));
    this.agents.catch(() => undefined); // reported by the first send
    this.userAgent = `${options.mail.appName} webhooks`;
  }

  override kick(): void {
    super.kick();
    this.wake();
  }

  private wake(): void {
    for (const resolve of this.waiting.splice(0)) resolve();
  }

  /**
   * Stops claiming and waits for the deliveries in flight, STOP_GRACE_MS at most: then they are
   * cut, record nothing, and are sent again (with the same webhook-id) after their lease, by
   * whichever instance claims them.
   */
  override async stop(): Promise<void> {
    this.closing = true;
    this.wake();
    const stopped = super.stop();
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([stopped.then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), STOP_GRACE_MS)))]);
    clearTimeout(timer);
    if (!inTime) {
      this.cutting = true;
      for (const req of this.requests) req.destroy(new Error('cut at shutdown'));
      await stopped;
    }
    const agents = await this.agents.catch(() => undefined);
    agents?.http.destroy();
    agents?.https.destroy();
  }

  /** One pass: claims what is due while there is room, until nothing is due and nothing in flight. Returns how many were started. */
  async runOnce(): Promise<number> {
    let started = 0;
    for (;;) {
      const free = this.options.concurrency - this.inFlight.size;
      if (free > 0 && !this.closing) {
        const ended = this.ended;
        let claimed: ClaimedDelivery[];
        try {
          claimed = await this.store.claim(this.clock.now(), free, WEBHOOK_LEASE_MS, perEndpointShare(this.options.concurrency), this.perEndpoint);
        } catch (err) {
          await Promise.allSettled(this.inFlight.values());
          throw err;
        }
        for (const d of claimed) this.begin(d);
        started += claimed.length;
        // Deliveries that ended while the claim ran freed slots (and their endpoints' shares) it
        // did not count: claim again now, not at the next poll.
        if (claimed.length > 0 || this.ended !== ended) continue;
      }
      if (this.inFlight.size === 0) return started;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
      // The deliveries that ended in this turn of the event loop (a recorded batch) free their
      // slots before the next claim, which takes them all in one statement.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private begin(d: ClaimedDelivery): void {
    this.perEndpoint.set(d.webhookId, (this.perEndpoint.get(d.webhookId) ?? 0) + 1);
    const done = this.deliver(d)
      .catch((err) => {
        if (!this.options.availability?.accountedFor(err)) this.log.warn({ err, deliveryId: d.id }, 'recording a webhook delivery failed; it is sent again after its lease');
      })
      .finally(() => {
        this.ended += 1;
        this.inFlight.delete(d.id);
        const n = (this.perEndpoint.get(d.webhookId) ?? 1) - 1;
        if (n > 0) this.perEndpoint.set(d.webhookId, n);
        else this.perEndpoint.delete(d.webhookId);
        this.wake();
      });
    this.inFlight.set(d.id, done);
  }

  private async deliver(d: ClaimedDelivery): Promise<void> {
    const now = this.clock.now();
    const outcome = await this.send(d, now);
    if (this.cutting && !outcome.ok) return; // cut at shutdown: its lease runs out, and it is sent again
    const at = this.clock.now();
    if (outcome.ok) {
      if (await this.recordDelivered({ id: d.id, token: d.attempts, status: outcome.status, at })) this.options.metrics?.delivered();
      return;
    }
    const delay = retryDelay(d.attempts);
    const failing = await this.store.markFailed(d.id, d.attempts, { status: outcome.status, error: outcome.error, nextAttempt: delay === null ? null : new Date(at.getTime() + delay) }, at);
    if (!failing) return; // another claim holds it now (or the endpoint is gone)
    if (delay === null) this.options.metrics?.failed();
    else this.options.metrics?.retried();
    if (outcome.status === 410) await this.disable(d, 'the endpoint answered 410 Gone', false);
    else if (at.getTime() - failing.failingSince.getTime() >= FAILING_DISABLE_MS) await this.disable(d, 'nothing was delivered to it for 5 days of failures', true);
  }

  /**
   * Records a 2xx; true if this claim still held the delivery. The answers that come while a
   * statement records others wait and go together in the next (group commit): one round trip
   * for many deliveries under load, one each when they are few.
   */
  private recordDelivered(outcome: DeliveredOutcome): Promise<boolean> {
    return new Promise((recorded, failed) => {
      this.toRecord.push({ outcome, recorded, failed });
      if (!this.recording) void this.record();
    });
  }

  private async record(): Promise<void> {
    this.recording = true;
    try {
      while (this.toRecord.length > 0) {
        await new Promise<void>((resolve) => setImmediate(resolve)); // the answers read in this turn go too
        const batch = this.toRecord.splice(0, RECORD_BATCH);
        try {
          const recorded = await this.store.markDelivered(batch.map((b) => b.outcome));
          for (const b of batch) b.recorded(recorded.has(b.outcome.id));
        } catch (err) {
          for (const b of batch) b.failed(err);
        }
      }
    } finally {
      this.recording = false;
    }
  }

  /** Disables the endpoint (when still enabled); with `mail`, the active system admins are mailed in the same transaction. */
  private async disable(d: ClaimedDelivery, reason: string, mail: boolean): Promise<void> {
    let mailed = false;
    const disabled = await this.transact(async (s) => {
      if (!(await s.webhooks.disable(d.webhookId, reason, this.clock.now()))) return false;
      if (mail) {
        const to = await s.webhooks.adminAddresses();
        if (to.length > 0) {
          await s.outbox.enqueue(webhookDisabledMail(this.options.mail, to, new URL(d.url).origin, reason));
          mailed = true;
        }
      }
      return true;
    });
    if (!disabled) return;
    this.options.metrics?.disabled();
    this.log.warn({ webhookId: d.webhookId, origin: new URL(d.url).origin, reason, mailed }, 'webhook endpoint disabled');
  }

  /** The Standard Webhooks signature(s): the current secret's, and the previous one's while it lasts. */
  private signature(d: ClaimedDelivery, msgId: string, at: Date): string {
    const secrets = [d.secret, ...(d.previousSecret && d.previousSecretUntil && d.previousSecretUntil > at ? [d.previousSecret] : [])];
    return secrets.map((sealed) => this.signer(d.webhookId, sealed).sign(msgId, at, d.body)).join(' ');
  }

  /**
   * The signer of an endpoint's sealed secret, opened once rather than at every attempt (opening
   * and decoding it cost about what signing does). Keyed by the sealed text, which a rotation
   * changes. The keys are read at start, so a secret that opened stays openable for the process.
   */
  private signer(webhookId: string, sealed: string): Signer {
    const key = `${webhookId}:${sealed}`;
    let signer = this.signers.get(key);
    if (!signer) {
      const secret = this.secrets.open(sealed, webhookId);
      if (!secret) throw new Error('the webhook secret does not open with MFA_KEY (a key removed from the list?)');
      signer = new Signer(secret);
      if (this.signers.size >= SIGNERS_KEPT) this.signers.clear();
      this.signers.set(key, signer);
    }
    return signer;
  }

  /** One attempt: `POST` the body; the outcome, never thrown. */
  private async send(d: ClaimedDelivery, at: Date): Promise<Outcome> {
    const agents = await this.agents;
    const msgId = `msg_${d.eventId}`;
    let signature: string;
    try {
      signature = this.signature(d, msgId, at);
    } catch (err) {
      return { ok: false, status: null, error: (err as Error).message };
    }
    const url = new URL(d.url);
    const secure = url.protocol === 'https:';
    const body = Buffer.from(d.body, 'utf8');
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const finish = (o: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(o);
      };
      const req: http.ClientRequest = (secure ? https : http).request(
        url,
        {
          method: 'POST',
          agent: secure ? agents.https : agents.http,
          headers: {
            'Content-Type': 'application/json',
            'Content-Length': String(body.length),
            'User-Agent': this.userAgent,
            'webhook-id': msgId,
            'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
            'webhook-signature': signature,
          },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          const chunks: Buffer[] = [];
          let size = 0;
          const done = () => {
            if (status >= 200 && status < 300) return finish({ ok: true, status });
            const text = Buffer.concat(chunks).toString('utf8').slice(0, 200).replace(/\s+/g, ' ').trim();
            const what = status >= 300 && status < 400 ? `redirect ${status} (not followed)` : `HTTP ${status}`;
            finish({ ok: false, status, error: text ? `${what}: ${text}` : what });
          };
          res.on('data', (c: Buffer) => {
            if (size < ANSWER_BYTES) chunks.push(c);
            size += c.length;
            if (size >= ANSWER_BYTES) {
              done();
              res.destroy();
            }
          });
          res.on('end', done);
          res.on('error', () => done());
        },
      );
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${(this.options.timeoutMs ?? WEBHOOK_TIMEOUT_MS) / 1000} s`)), this.options.timeoutMs ?? WEBHOOK_TIMEOUT_MS);
      timer.unref();
      req.setNoDelay(true); // without it each send waited ~60 ms for the receiver's delayed ACK (bench webhook_throughput: 55 → 75 events/s)
      req.on('error', (err) => finish({ ok: false, status: null, error: describe(err) }));
      this.requests.add(req);
      req.on('close', () => this.requests.delete(req));
      req.end(body);
    });
  }
}

/** A failed attempt's reason, short and free of anything but the address. */
function describe(err: Error): string {
  const m = /DNS lookup (\S+)\(family:[^,]*, host:([^)]*)\) is not allowed\. Because,? It is (\w+) IP address/i.exec(err.message);
  if (m) return `refused: ${m[2] !== 'undefined' ? `${m[2]} resolves to ` : ''}${m[1]}, a ${m[3]} address (SSRF protection; WEBHOOK_ALLOW_PRIVATE)`;
  return (err.message || String(err)).slice(0, 300);
}
