import type { AddressInfo } from 'node:net';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface CaughtMail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  raw: string;
  /** The Message-ID header, angle brackets included ('' without one). */
  messageId: string;
}

/** A real SMTP server, in-process, that parses what arrives. */
export class MailCatcher {
  readonly mails: CaughtMail[] = [];
  /** Messages `beforeReply` refused: their sender got an error reply, not 250. */
  readonly refused: CaughtMail[] = [];
  /** Messages received, their reply not yet sent (their DATA is over, `beforeReply` runs). */
  inFlight = 0;
  /**
   * Runs once a message's DATA is in, before the reply: a slow server (it waits), or a server
   * that refuses the message (it throws; an error with `responseCode` 4xx or 5xx).
   */
  beforeReply: ((mail: CaughtMail) => Promise<void> | void) | undefined;
  private server: SMTPServer | undefined;
  port = 0;

  async start(port = 0): Promise<void> {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      // A server going down: the senders' open connections (a pooled transport keeps them
      // between messages) get 421 and are closed after this, rather than kept for 30 s.
      closeTimeout: 500,
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', async () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          const parsed = await simpleParser(raw);
          const mail = {
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            raw,
            messageId: parsed.messageId ?? '',
          };
          this.inFlight++;
          try {
            await this.beforeReply?.(mail);
          } catch (err) {
            this.refused.push(mail);
            callback(err as Error);
            return;
          } finally {
            this.inFlight--;
          }
          this.mails.push(mail);
          callback();
        });
      },
    });
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (server.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Mails sent to an address (case-insensitive). */
  to(address: string): CaughtMail[] {
    return this.mails.filter((m) => m.to.some((t) => t.toLowerCase() === address.toLowerCase()));
  }

  /** Waits until `count` mails match, then returns them; fails after `timeoutMs`. */
  async waitFor(predicate: (m: CaughtMail) => boolean, count = 1, timeoutMs = 5000): Promise<CaughtMail[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.mails.filter(predicate);
      if (found.length >= count) return found;
      if (Date.now() > deadline) throw new Error(`expected ${count} matching mail(s), got ${found.length} of ${this.mails.length}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
