import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestApp } from './test-app';
import { webhookPayloadProblem } from './webhook-schema';

/** One request the receiver got: as it came over the wire. */
export interface ReceivedWebhook {
  method: string;
  path: string;
  /** Header names in lower case. */
  headers: http.IncomingHttpHeaders;
  /** The body byte for byte (what the signature covers). */
  raw: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: any;
  /** The status the receiver answered. */
  status: number;
  at: Date;
}

/** How the receiver answers one request: a status, after a delay, with a body. */
export interface Reply {
  status?: number;
  delayMs?: number;
  body?: string;
  headers?: Record<string, string>;
}

/**
 * A real HTTP server in the test process that records every request (method, headers, raw body)
 * and answers as a test programs it: `reply` (a fixed reply, or a function of the request, e.g. a
 * 500 the first time and 200 after), by default `200`. `waitFor(n)` awaits the n-th request.
 * Every webhook test (routes, delivery, faults, console, bench) can use it. Every body is checked
 * against openapi.yaml's payload for its type; `stop()` fails with the first that does not match.
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  /** Bodies that did not match their payload schema in openapi.yaml. */
  readonly offSpec: string[] = [];
  reply: Reply | ((req: Omit<ReceivedWebhook, 'status'>, index: number) => Reply) = { status: 200 };
  private server: http.Server | undefined;
  private readonly delays = new Set<NodeJS.Timeout>();
  private waiters: { n: number; filter?: (r: ReceivedWebhook) => boolean; resolve: () => void }[] = [];
  port = 0;

  /** Listens on 127.0.0.1 (a free port unless given). */
  async start(port = 0): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(raw);
        } catch {
          json = undefined;
        }
        const problem = webhookPayloadProblem(json);
        if (problem) this.offSpec.push(problem);
        const seen = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, raw, json, at: new Date() };
        const index = this.received.length;
        const reply = typeof this.reply === 'function' ? this.reply(seen, index) : this.reply;
        const status = reply.status ?? 200;
        const answer = () => {
          this.received.push({ ...seen, status });
          this.notify();
          if (res.destroyed) return;
          res.writeHead(status, { 'Content-Type': 'text/plain', ...reply.headers });
          res.end(reply.body ?? '');
        };
        if (!reply.delayMs) return answer();
        const timer = setTimeout(() => {
          this.delays.delete(timer);
          answer();
        }, reply.delayMs);
        this.delays.add(timer);
      });
    });
    this.server.listen(port, '127.0.0.1');
    await new Promise((resolve) => this.server!.once('listening', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** `http://127.0.0.1:<port><path>`. */
  url(path = '/hook'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** The requests to one path (each endpoint of a test gets a path of its own). */
  to(path: string): ReceivedWebhook[] {
    return this.received.filter((r) => r.path === path);
  }

  /** Resolves once `n` requests (matching `filter`, when given) have been answered; rejects after `timeoutMs`. */
  waitFor(n: number, options: { filter?: (r: ReceivedWebhook) => boolean; timeoutMs?: number } = {}): Promise<ReceivedWebhook[]> {
    const matching = () => this.received.filter(options.filter ?? (() => true));
    if (matching().length >= n) return Promise.resolve(matching());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`the webhook receiver got ${matching().length} of ${n} requests`));
      }, options.timeoutMs ?? 15_000);
      const waiter = {
        n,
        filter: options.filter,
        resolve: () => {
          clearTimeout(timer);
          resolve(matching());
        },
      };
      this.waiters.push(waiter);
    });
  }

  private notify(): void {
    for (const w of [...this.waiters]) {
      if (this.received.filter(w.filter ?? (() => true)).length >= w.n) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve();
      }
    }
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    const server = this.server;
    this.server = undefined;
    for (const timer of this.delays) clearTimeout(timer);
    this.delays.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    if (this.offSpec.length > 0) throw new Error(`${this.offSpec.length} webhook bodies do not match openapi.yaml's webhooks section; the first: ${this.offSpec[0]}`);
  }
}

/**
 * Polls `probe` until it gives a value (a background effect: a delivery recorded, an endpoint
 * disabled), or fails after `timeoutMs`: tests assert state, not time.
 */
export async function until<T>(probe: () => Promise<T | undefined | false | null>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`not so within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An endpoint registered by an admin (`jwt`) on a path of its own at `receiver`, for `events` (by default only `webhook.test`). */
export async function registerEndpoint(t: TestApp, jwt: string, receiver: WebhookReceiver, events: string[] = ['webhook.test']): Promise<{ id: string; path: string }> {
  const path = `/hook${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const res = await t.http().post('/webhook').set('Authorization', `Bearer ${jwt}`).send({ url: receiver.url(path), events });
  if (res.status !== 201) throw new Error(`POST /webhook: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.id, path };
}
