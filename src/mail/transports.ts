import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import nodemailer, { type Transporter, type TransportOptions } from 'nodemailer';

export interface RawMail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  /** The `Message-ID` header, angle brackets included; Nodemailer makes a random one without it. */
  messageId?: string;
}

/** Delivers one message or throws. */
export interface MailTransport {
  send(mail: RawMail): Promise<void>;
  close(): void;
}

/** A line of a message body may hold at most 998 octets (RFC 5322 §2.1.1). */
const MAX_LINE_OCTETS = 998;
const BODY_PLACEHOLDER = 'body-placeholder-7f3e1c9a';

/**
 * The whole message, composed by Nodemailer, with its text sent as it is written: `7bit` when it
 * is ASCII, else `8bit` (API.md §4: a link can be copied from the raw message as is). Nodemailer
 * encodes any text with a line over 76 characters as quoted-printable, and a link is longer than
 * that, so it would be split by a soft line break (`token=3D...=\n...`). It composes the message
 * around a one-line placeholder (which it leaves as `7bit`), and the text takes its place. A text
 * with a line over 998 octets, which no transfer encoding but QP or base64 allows, is composed
 * or a control character 8bit text may not hold (a bare CR, NUL...), is composed by Nodemailer
 * as usual.
 */
export async function composeMessage(composer: Transporter, mail: RawMail, newline: '\n' | '\r\n'): Promise<Buffer> {
  const lines = mail.text.split(/\r?\n/);
  if (/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)/.test(mail.text) || lines.some((line) => Buffer.byteLength(line) > MAX_LINE_OCTETS)) {
    return ((await composer.sendMail(mail)) as { message: Buffer }).message;
  }
  const around = ((await composer.sendMail({ ...mail, text: BODY_PLACEHOLDER })) as { message: Buffer }).message.toString('utf8');
  const [head, tail, extra] = around.split(BODY_PLACEHOLDER);
  const encodingHeader = /^Content-Transfer-Encoding: 7bit(?=\r?$)/im;
  if (tail === undefined || extra !== undefined || !encodingHeader.test(head)) throw new Error('unexpected message layout from the mail composer');
  const encoding = /^[\x00-\x7f]*$/.test(mail.text) ? '7bit' : '8bit';
  return Buffer.from(head.replace(encodingHeader, `Content-Transfer-Encoding: ${encoding}`) + lines.join(newline) + tail, 'utf8');
}

/**
 * SMTP through Nodemailer's pooled transport: up to `maxConnections` messages at once, each on a
 * connection of its own kept open for the next ones (for 5 s once idle); short timeouts so a dead server only delays
 * the outbox (a server that does not connect or greet in 10 s), never cut a slow one short.
 */
export class SmtpTransport implements MailTransport {
  private readonly transporter: Transporter;
  private readonly composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' });

  constructor(url: string, options: { maxConnections?: number } = {}) {
    // The url's own parameters win over these (Nodemailer merges them so).
    this.transporter = nodemailer.createTransport({
      url,
      pool: true,
      maxConnections: options.maxConnections ?? 1,
      idleTimeout: 5_000, // nothing more to send: the connections are closed, not held
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      // RFC 5321 §4.5.3.2.6: up to 10 minutes for the reply to a message's end. A server may be
      // slow to accept it; giving up earlier and trying again is how it would get it twice.
      socketTimeout: 10 * 60_000,
    } as TransportOptions);
  }

  async send(mail: RawMail): Promise<void> {
    const raw = await composeMessage(this.composer, mail, '\r\n');
    await this.transporter.sendMail({ envelope: { from: mail.from, to: mail.to }, raw });
  }

  close(): void {
    this.transporter.close();
  }
}

/** Each message as one RFC 822 `.eml` file, written whole (temporary name, then rename). */
export class EmlFileTransport implements MailTransport {
  private readonly composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });

  constructor(private readonly dir: string) {}

  async send(mail: RawMail): Promise<void> {
    const message = await composeMessage(this.composer, mail, '\n');
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${crypto.randomBytes(4).toString('hex')}.eml`;
    const tmp = path.join(this.dir, `.${name}.tmp`);
    try {
      await fs.writeFile(tmp, message, { mode: 0o600 });
      await fs.rename(tmp, path.join(this.dir, name));
    } catch (err) {
      // A full disk: no half-written file left behind (the message stays in the outbox and is retried).
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
  }

  close(): void {}
}
