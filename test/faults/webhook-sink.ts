import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/**
 * The fault suite's webhook receiver: a node:http server on loopback that keeps every copy it
 * gets (endpoint path, `webhook-id`, body, whether its signature verifies with `standardwebhooks`)
 * and answers `204` to a connection still open, after `delayMs`; `hold()` keeps every answer back
 * until `release()`, so a sender killed meanwhile never got one (its copy is `cut`).
 *
 * "Delivered" is what a sender can know: the `2xx` was written to a connection still open.
 */
export interface WebhookCopy {
  path: string;
  id: string;
  type: string;
  /** The event's data (`user`, `group`, ...). */
  data: Record<string, unknown>;
  /** The signature verified with the endpoint's secret (standardwebhooks' Webhook.verify). */
  verified: boolean;
  received: number;
  /** When the 204 was written to a connection still open. */
  accepted?: number;
  /** The connection was gone before the answer was due: the sender never got it. */
  cut?: number;
}

export class WebhookSink {
  readonly copies: WebhookCopy[] = [];
  private readonly secrets = new Map<string, string>();
  private server: http.Server | undefined;
  private held: Promise<void> = Promise.resolve();
  private releaseHeld: () => void = () => undefined;

  constructor(private readonly delayMs = 0) {}

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      let copy: WebhookCopy | undefined;
      // The sender's connection gone before the answer: it never learns the copy arrived.
      res.on('close', () => {
        if (copy && copy.accepted === undefined) copy.cut ??= Date.now();
      });
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        const secret = this.secrets.get(req.url ?? '');
        let verified = false;
        try {
          if (secret) verified = new Webhook(secret).verify(body, req.headers as Record<string, string>) !== undefined;
        } catch {
          verified = false;
        }
        let parsed: { type?: string; data?: Record<string, unknown> } = {};
        try {
          parsed = JSON.parse(body) as typeof parsed;
        } catch {
          // kept with an empty type: a test sees it
        }
        copy = { path: req.url ?? '', id: String(req.headers['webhook-id'] ?? ''), type: parsed.type ?? '', data: parsed.data ?? {}, verified, received: Date.now() };
        const kept = copy;
        this.copies.push(kept);
        void (async () => {
          if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
          await this.held;
          if (kept.cut !== undefined || req.socket.destroyed) {
            kept.cut ??= Date.now();
            return;
          }
          kept.accepted = Date.now();
          res.writeHead(204).end();
        })();
      });
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  /** The URL of one endpoint (a path of its own); `trust` tells the sink its secret. */
  url(path: string): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}${path}`;
  }

  trust(path: string, secret: string): void {
    this.secrets.set(path, secret);
  }

  /** Copies received whose answer is not written yet. */
  inFlight(): number {
    return this.copies.filter((c) => c.accepted === undefined && c.cut === undefined).length;
  }

  accepted(path?: string): WebhookCopy[] {
    return this.copies.filter((c) => c.accepted !== undefined && (path === undefined || c.path === path));
  }

  hold(): void {
    this.held = new Promise((resolve) => (this.releaseHeld = resolve));
  }

  release(): void {
    this.releaseHeld();
  }

  async stop(): Promise<void> {
    this.release();
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
}
