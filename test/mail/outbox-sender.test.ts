import fs from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { createLogger } from '../../src/logger';
import { OutboxSender, type OutboxSenderOptions } from '../../src/mail/outbox-sender';
import { SmtpTransport } from '../../src/mail/transports';
import { MailCatcher } from '../helpers/mail-catcher';
import { bearer, createTestApp, testAppWithAdmin, unique, type TestApp } from '../helpers/test-app';

const waitUntil = async (check: () => Promise<boolean> | boolean, timeoutMs = 8000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe('with SMTP_URL', () => {
  const { t, admin } = testAppWithAdmin();

  it('writes the mail row in the same transaction as the change, and delivers it after commit', async () => {
    const name = unique('tx');
    // A failing change writes no mail: the duplicate rolls the whole transaction back.
    await t.http().post('/user').set(bearer(admin.jwt)).send({ name: admin.user.name, email: `${name}@example.test` }).expect(409);
    expect(await t.knex('mail_outbox').whereRaw('? = any(recipients)', [`${name}@example.test`])).toHaveLength(0);
    await t.http().post('/user').set(bearer(admin.jwt)).send({ name, email: `${name}@example.test` }).expect(201);
    await t.mail.waitFor((m) => m.to.includes(`${name}@example.test`));
    await waitUntil(async () => (await t.knex('mail_outbox').whereRaw('? = any(recipients)', [`${name}@example.test`]).first())?.sent !== null);
    const row = await t.knex('mail_outbox').whereRaw('? = any(recipients)', [`${name}@example.test`]).first();
    expect(row.body_text).toBeNull(); // the link does not outlive delivery
  });

  it('answers at once while the SMTP server is down, and delivers once it is back (nothing lost)', async () => {
    const port = t.mail.port;
    await t.mail.stop();
    const name = unique('down');
    const started = Date.now();
    const res = await t.http().post('/user').set(bearer(admin.jwt)).send({ name, email: `${name}@example.test` });
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
  const lines: Record<string, unknown>[] = [];
  const { t, admin } = testAppWithAdmin({ env: { LOG_LEVEL: 'info' }, logDestination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
  it('logs the failures once when they start and once when they end, with a count, not at each attempt', async () => {
    const port = t.mail.port;
    await t.mail.stop();
    const names = [unique('quiet'), unique('quiet'), unique('quiet')];
    for (const name of names) await t.http().post('/user').set(bearer(admin.jwt)).send({ name, email: `${name}@example.test` }).expect(201);
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
  });
});

describe('without SMTP_URL', () => {
  const { t, admin } = testAppWithAdmin({ smtp: false });
  it('writes each message as an .eml file in the outbox folder', async () => {
    const name = unique('eml');
    await t.http().post('/user').set(bearer(admin.jwt)).send({ name, email: `${name}@example.test` }).expect(201);
    const dir = path.join(t.dataDir, 'outbox');
    await waitUntil(() => fs.existsSync(dir) && fs.readdirSync(dir).some((f) => f.endsWith('.eml')));
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.eml'));
    expect(files).toHaveLength(1);
    const parsed = await simpleParser(fs.readFileSync(path.join(dir, files[0])));
    expect(parsed.subject).toBe('Welcome to Accounts');
    expect(parsed.text).toMatch(/reset-password\?token=/);
    expect(JSON.stringify(parsed.to)).toContain(`${name}@example.test`);
    const row = await t.knex('mail_outbox').whereRaw('? = any(recipients)', [`${name}@example.test`]).first();
    expect(parsed.messageId).toBe(`<outbox.${row.id}.${new Date(row.created).getTime().toString(36)}@localhost>`);
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A sender of its own over the app's outbox (whose own sender is stopped), to a catcher. */
function senderTo(t: TestApp, catcher: MailCatcher, options: Partial<OutboxSenderOptions> = {}): OutboxSender {
  return new OutboxSender(t.container.stores.outbox, new SmtpTransport(catcher.url, { maxConnections: options.concurrency }), t.clock, createLogger('silent'), {
    from: 'Accounts <noreply@example.test>',
    pollIntervalMs: 60_000,
    retryBaseMs: 50,
    retryMaxMs: 1000,
    ...options,
  });
}

describe('several senders, one outbox', () => {
  let t: TestApp;
  let catcher: MailCatcher;
  let senders: OutboxSender[];
  let releases: (() => void)[];
  let passes: Promise<unknown>[];
  beforeEach(async () => {
    t = await createTestApp({ smtp: false });
    await t.container.outbox.stop(); // the messages below are for the senders each test makes
    catcher = new MailCatcher();
    await catcher.start();
    senders = [];
    releases = [];
    passes = [];
  });
  afterEach(async () => {
    // A test that failed midway may have left replies held and passes running.
    catcher.beforeReply = undefined;
    for (const release of releases) release();
    await Promise.allSettled(passes);
    for (const s of senders) await s.stop();
    await catcher.stop();
    await t.close();
  });
  const sender = (options: Partial<OutboxSenderOptions> = {}) => {
    const s = senderTo(t, catcher, options);
    senders.push(s);
    return s;
  };
  /** The catcher holds every reply until `release()`. */
  const holdReplies = () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    releases.push(release);
    catcher.beforeReply = () => held;
    return release;
  };
  /** A pass of the sender, awaited after the test even if the test failed first. */
  const passOf = (s: OutboxSender) => {
    const pass = s.runOnce();
    passes.push(pass);
    return pass;
  };
  const rows = (subjects: string[]) => t.knex('mail_outbox').whereIn('subject', subjects).orderBy('id');

  it('a sender whose claim another sender took over neither sends nor records the message', async () => {
    const outbox = t.container.stores.outbox;
    await outbox.enqueue({ to: ['first@example.test'], subject: 'fenced 1', text: 'one' });
    await outbox.enqueue({ to: ['second@example.test'], subject: 'fenced 2', text: 'two' });
    const release = holdReplies();
    // A claims both and sends the first; the SMTP server holds its reply.
    const a = sender({ concurrency: 1, leaseMs: 60_000 });
    const pass = passOf(a);
    await waitUntil(() => catcher.inFlight === 1);
    // Meanwhile A's lease runs out (the clock moves past it before A renews it) and B claims both.
    t.clock.advance(61_000);
    const byB = (await outbox.claimDue(t.clock.now(), 10, 60_000)).filter((m) => m.subject.startsWith('fenced'));
    expect(byB.map((m) => [m.subject, m.attempts])).toEqual([
      ['fenced 1', 2],
      ['fenced 2', 2],
    ]);
    release();
    expect(await pass).toBe(0);
    // A's send in flight went out, but A recorded nothing; A never sent the second one.
    expect(catcher.mails.map((m) => m.subject)).toEqual(['fenced 1']);
    expect((await rows(['fenced 1', 'fenced 2'])).map((r: { sent: Date | null; attempts: number; body_text: string | null }) => [r.sent, r.attempts, r.body_text])).toEqual([
      [null, 2, 'one'],
      [null, 2, 'two'],
    ]);
    // The claim B holds records; A's token no longer does.
    expect(await outbox.markSent(byB[1].id, 1, t.clock.now())).toBe(false);
    expect(await outbox.renewLease(byB[1].id, 1, t.clock.now(), 60_000)).toBe(false);
    expect(await outbox.markSent(byB[1].id, 2, t.clock.now())).toBe(true);
  });

  it('keeps the lease of a message whose send is slow, so no other sender takes it meanwhile', async () => {
    const outbox = t.container.stores.outbox;
    await outbox.enqueue({ to: ['slow@example.test'], subject: 'slow reply', text: 'take your time' });
    const leaseMs = 6000; // renewed every 2 s: a margin of 4 s for a busy machine
    const release = holdReplies();
    const pass = passOf(sender({ leaseMs }));
    await waitUntil(() => catcher.inFlight === 1);
    // Over two leases' time, another sender finds it claimed every time it looks.
    const until = Date.now() + 2 * leaseMs + 1000;
    let looks = 0;
    while (Date.now() < until) {
      const taken = (await outbox.claimDue(t.clock.now(), 10, leaseMs)).filter((m) => m.subject === 'slow reply');
      expect(taken).toEqual([]);
      looks++;
      await sleep(250);
    }
    expect(looks).toBeGreaterThan(5);
    release();
    expect(await pass).toBe(1);
    expect(catcher.mails.map((m) => m.subject)).toEqual(['slow reply']);
    const [row] = await rows(['slow reply']);
    expect(row.sent).not.toBeNull();
    expect(row.attempts).toBe(1);
  }, 60_000);

  it('sends a message again with the same Message-ID, one per message', async () => {
    const outbox = t.container.stores.outbox;
    await outbox.enqueue({ to: ['again@example.test'], subject: 'retried', text: 'twice' });
    await outbox.enqueue({ to: ['other@example.test'], subject: 'other', text: 'once' });
    catcher.beforeReply = (mail) => {
      if (mail.subject === 'retried' && catcher.refused.length === 0) throw Object.assign(new Error('try again later'), { responseCode: 451 });
    };
    const a = sender();
    expect(await a.runOnce()).toBe(1);
    t.clock.advance(1000); // past the retry's backoff
    expect(await a.runOnce()).toBe(1);
    const [retried, other] = await rows(['retried', 'other']);
    const id = (row: { id: string; created: Date }) => `<outbox.${row.id}.${new Date(row.created).getTime().toString(36)}@example.test>`;
    expect(catcher.refused.map((m) => m.messageId)).toEqual([id(retried)]);
    expect(catcher.to('again@example.test').map((m) => m.messageId)).toEqual([id(retried)]);
    expect(catcher.to('other@example.test').map((m) => m.messageId)).toEqual([id(other)]);
    expect(retried.attempts).toBe(2);
  });

  it('sends up to its concurrency at once, never more', async () => {
    const outbox = t.container.stores.outbox;
    const subjects = Array.from({ length: 12 }, (_, i) => `parallel ${i}`);
    for (const subject of subjects) await outbox.enqueue({ to: ['many@example.test'], subject, text: subject });
    let most = 0;
    catcher.beforeReply = async () => {
      most = Math.max(most, catcher.inFlight);
      // Each reply waits until three are in flight (or a second went by): more would show here.
      const until = Date.now() + 1000;
      while (catcher.inFlight < 3 && Date.now() < until) await sleep(10);
      most = Math.max(most, catcher.inFlight);
    };
    expect(await sender({ concurrency: 3 }).runOnce()).toBe(12);
    expect(most).toBe(3);
    expect(catcher.mails.map((m) => m.subject).sort()).toEqual([...subjects].sort());
  }, 60_000);
});
