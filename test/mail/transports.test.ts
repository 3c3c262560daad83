import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { EmlFileTransport, SmtpTransport, type RawMail } from '../../src/mail/transports';
import { MailCatcher } from '../helpers/mail-catcher';

const LINK = `http://localhost:3000/reset-password?token=${'aZ09_-'.repeat(8)}bcdef`;

function mail(text: string, subject = 'Reset your Accounts password'): RawMail {
  return { from: 'Accounts <noreply@localhost>', to: ['ada@example.test'], subject, text };
}

/** The raw message's body (after the header block) and its Content-Transfer-Encoding. */
function bodyOf(raw: string): { encoding: string | undefined; body: string } {
  const split = raw.search(/\r?\n\r?\n/);
  const head = raw.slice(0, split);
  return { encoding: /^Content-Transfer-Encoding: (\S+)/im.exec(head)?.[1], body: raw.slice(split).replace(/^\r?\n\r?\n/, '') };
}

describe('EmlFileTransport', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function written(m: RawMail): Promise<string> {
    await new EmlFileTransport(dir).send(m);
    const [file] = fs.readdirSync(dir);
    return fs.readFileSync(path.join(dir, file), 'utf8');
  }

  it('writes a long link on one line of the file, as it is (7bit for ASCII text), and the message parses to the same text', async () => {
    const text = `Hello Ada,\n\nSet a new password here:\n${LINK}\n\n-- Accounts`;
    const raw = await written(mail(text));
    const { encoding, body } = bodyOf(raw);
    expect(encoding).toBe('7bit');
    expect(body.split('\n')).toContain(LINK);
    expect(raw).not.toContain('=3D');
    const parsed = await simpleParser(raw);
    expect([parsed.subject, parsed.text?.trimEnd()]).toEqual(['Reset your Accounts password', text]);
  });

  it('sends non-ASCII text as 8bit UTF-8, the link still whole, and a non-ASCII subject encoded as headers must be', async () => {
    const text = `Hello Zoë 日本,\n\n${LINK}\n`;
    const raw = await written(mail(text, 'Willkommen bei Zoë'));
    const { encoding, body } = bodyOf(raw);
    expect(encoding).toBe('8bit');
    expect(body.split('\n')).toContain(LINK);
    expect(body).toContain('Hello Zoë 日本,');
    expect(raw).toMatch(/^Subject: =\?UTF-8\?/m);
    const parsed = await simpleParser(raw);
    expect([parsed.subject, parsed.text?.trimEnd()]).toEqual(['Willkommen bei Zoë', text.trimEnd()]);
  });

  it('leaves to Nodemailer (quoted-printable) a text that no 7bit or 8bit body may hold: a line over 998 octets, a bare CR', async () => {
    for (const text of [`x${'y'.repeat(1000)}\n${LINK}`, `Hello\rAda\n${LINK}`]) {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir);
      const raw = await written(mail(text));
      expect(bodyOf(raw).encoding).toBe('quoted-printable');
      const parsed = (await simpleParser(raw)).text ?? '';
      if (text.includes('\r')) expect(parsed).toContain(LINK); // what a reader makes of a bare CR is its own business
      else expect(parsed.replace(/\n$/, '')).toBe(text);
    }
  });
});

describe('SmtpTransport', () => {
  it('delivers the link whole on one line over SMTP (CRLF lines), and the envelope to the recipients', async () => {
    const catcher = new MailCatcher();
    await catcher.start();
    const transport = new SmtpTransport(catcher.url);
    try {
      const text = `Hello Zoë,\n\n${LINK}\n\n.\n-- Accounts`;
      await transport.send(mail(text));
      const [caught] = await catcher.waitFor(() => true);
      expect([caught.from, caught.to]).toEqual(['noreply@localhost', ['ada@example.test']]);
      const { encoding, body } = bodyOf(caught.raw);
      expect(encoding).toBe('8bit');
      expect(body.split('\r\n')).toContain(LINK);
      expect(caught.text.trimEnd()).toBe(text); // the lone "." line survived SMTP's dot-stuffing
    } finally {
      transport.close();
      await catcher.stop();
    }
  });
});
