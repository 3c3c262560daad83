import fs from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { createLogger } from '../../src/logger';
import { OutboxSender } from '../../src/mail/outbox-sender';
import { SmtpTransport } from '../../src/mail/transports';
import { MailCatcher } from '../helpers/mail-catcher';
import { createTestApp, unique, type TestApp } from '../helpers/test-app';

const waitUntil = async (check: () => Promise<boolean> | boolean, timeoutMs = 8000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe('with SMTP_URL', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('writes the mail row in the same transaction as the change, and delivers it after commit', async () => {
    const a = await t.factory.loggedIn({ admin: true });
    const name = unique('tx');
    // A failing change writes no mail: the duplicate rolls the whole transaction back.
    await t.http().post('/user').set('Authorization', `Bearer ${a.jwt}`).send({ name: a.user.name, email: `${name}@example.test` }).expect(409);
    expect(await t.knex('mail_outbox').whereRaw('? = any(recipients)', [`${name}@example.test`])).toHaveLength(0);
    await t.http().post('/user').set('Authorization', `Bearer ${a.jwt}`).send({ name, email: `${name}@example.test` }).expect(201);
    await t.mail.waitFor((m) => m.to.includes(`${name}@example.test`));
    await waitUntil(async () => (await t.knex('mail_outbox').whereRaw('? = any(recipients)', [`${name}@example.test`]).first())?.sent !== null);
    const row = await t.knex('mail_outbox').whereRaw('? = any(recipients)', [`${name}@example.test`]).first();
    expect(row.body_text).toBeNull(); // the link does not outlive delivery
  });

  it('answers at once while the SMTP server is down, and delivers once it is back (nothing lost)', async () => {
    const a = await t.factory.loggedIn({ admin: true });
    const port = t.mail.port;
    await t.mail.stop();
    const name = unique('down');
    const started = Date.now();
    const res = await t.http().post('/user').set('Authorization', `Bearer ${a.jwt}`).send({ name, email: `${name}@example.test` });
    expect(res.status).toBe(201);
    expect(Date.now() - started).toBeLessThan(1000);
    await waitUntil(async () => ((await t.knex('mail_outbox').whereRaw('? = any(recipients)', [`${name}@example.test`]).first())?.attempts ?? 0) >= 2);
    const pending = await t.knex('mail_outbox').whereRaw('? = any(recipients)', [`${name}@example.test`]).first();
    expect(pending.sent).toBeNull();
    expect(pending.last_error).toMatch(/ECONNREFUSED/);
    await t.mail.start(port);
    const mails = await t.mail.waitFor((m) => m.to.includes(`${name}@example.test`), 1, 8000);
    expect(mails).toHaveLength(1);
    expect(mails[0].subject).toBe('Welcome to Accounts');
  });
});

describe('with SMTP_URL and the SMTP server down', () => {
  it('logs the failures once when they start and once when they end, with a count, not at each attempt', async () => {
    const lines: Record<string, unknown>[] = [];
    const t = await createTestApp({ env: { LOG_LEVEL: 'info' }, logDestination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
    try {
      const a = await t.factory.loggedIn({ admin: true });
      const port = t.mail.port;
      await t.mail.stop();
      const names = [unique('quiet'), unique('quiet'), unique('quiet')];
      for (const name of names) await t.http().post('/user').set('Authorization', `Bearer ${a.jwt}`).send({ name, email: `${name}@example.test` }).expect(201);
      const attempts = async () =>
        (await t.knex('mail_outbox').whereRaw('recipients[1] = any(?)', [names.map((n) => `${n}@example.test`)]).select('attempts')).map((r: { attempts: number }) => r.attempts);
      // Three claims each: at least two failed deliveries each (the third may be under way).
      await waitUntil(async () => {
        const counts = await attempts();
        return counts.length === 3 && counts.every((n) => n >= 3);
      }, 20_000);
      await t.mail.start(port);
      await t.mail.waitFor((m) => names.some((n) => m.to.includes(`${n}@example.test`)), 3, 8000);
      await waitUntil(() => lines.some((l) => l.msg === 'mail delivery works again'));
      const failing = lines.filter((l) => typeof l.msg === 'string' && /mail delivery fail/.test(l.msg));
      expect(failing).toHaveLength(1);
      expect(failing[0]).toMatchObject({ level: 40, msg: 'mail delivery failing; every message is kept and retried' });
      expect(String(failing[0].err)).toMatch(/ECONNREFUSED/);
      const back = lines.filter((l) => l.msg === 'mail delivery works again');
      expect(back).toHaveLength(1);
      expect(back[0]).toMatchObject({ level: 30, messages: 3 });
      expect(back[0].failed_attempts).toBeGreaterThanOrEqual(6);
    } finally {
      await t.close();
    }
  });
});

describe('without SMTP_URL', () => {
  it('writes each message as an .eml file in the outbox folder', async () => {
    const t = await createTestApp({ smtp: false });
    try {
      const a = await t.factory.loggedIn({ admin: true });
      const name = unique('eml');
      await t.http().post('/user').set('Authorization', `Bearer ${a.jwt}`).send({ name, email: `${name}@example.test` }).expect(201);
      const dir = path.join(t.dataDir, 'outbox');
      await waitUntil(() => fs.existsSync(dir) && fs.readdirSync(dir).some((f) => f.endsWith('.eml')));
      const files = fs.readdirSync(dir).filter((f) => f.endsWith('.eml'));
      expect(files).toHaveLength(1);
      const parsed = await simpleParser(fs.readFileSync(path.join(dir, files[0])));
      expect(parsed.subject).toBe('Welcome to Accounts');
      expect(parsed.text).toMatch(/reset-password\?token=/);
      expect(JSON.stringify(parsed.to)).toContain(`${name}@example.test`);
    } finally {
      await t.close();
    }
  });
});

describe('restarts', () => {
  it('delivers what a stopped sender left behind when the next one starts', async () => {
    const t = await createTestApp();
    try {
      await t.container.outbox.stop(); // as if the process had died before sending
      await t.container.stores.outbox.enqueue({ to: ['later@example.test'], subject: 'kept', text: 'across restarts' });
      const catcher = new MailCatcher();
      await catcher.start();
      const next = new OutboxSender(t.container.stores.outbox, new SmtpTransport(catcher.url), t.clock, createLogger('silent'), {
        from: 'Accounts <noreply@localhost>',
        pollIntervalMs: 50,
        retryBaseMs: 50,
        retryMaxMs: 1000,
      });
      next.start();
      const [mail] = await catcher.waitFor((m) => m.subject === 'kept');
      expect(mail.text).toContain('across restarts');
      await next.stop();
      await catcher.stop();
    } finally {
      await t.close();
    }
  });
});
