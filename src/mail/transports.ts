import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import nodemailer, { type Transporter, type TransportOptions } from 'nodemailer';

export interface RawMail {
  from: string;
  to: string[];
  subject: string;
  text: string;
}

/** Delivers one message or throws. */
export interface MailTransport {
  send(mail: RawMail): Promise<void>;
  close(): void;
}

/** SMTP through Nodemailer, with short timeouts so a dead server only delays the outbox. */
export class SmtpTransport implements MailTransport {
  private readonly transporter: Transporter;

  constructor(url: string) {
    this.transporter = nodemailer.createTransport(url, {
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    } as TransportOptions);
  }

  async send(mail: RawMail): Promise<void> {
    await this.transporter.sendMail(mail);
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
    const info = (await this.composer.sendMail(mail)) as { message: Buffer };
    await fs.mkdir(this.dir, { recursive: true });
    const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${crypto.randomBytes(4).toString('hex')}.eml`;
    const tmp = path.join(this.dir, `.${name}.tmp`);
    await fs.writeFile(tmp, info.message, { mode: 0o600 });
    await fs.rename(tmp, path.join(this.dir, name));
  }

  close(): void {}
}
