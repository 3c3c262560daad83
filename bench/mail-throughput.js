'use strict';
/**
 * mail_throughput: how fast the outbox delivers (issue 21). The built service on a database of
 * its own, with SMTP_URL to an SMTP server in this process (smtp-server, on loopback, answering
 * at once); BENCH_MAIL_COUNT (2000) welcome mails queued the way they are in use: an admin
 * creates that many users (`POST /user`, BENCH_MAIL_CONNECTIONS (16) at a time), each commit
 * queueing its mail. Figure: mails/s from the first `POST /user` sent to the last mail received,
 * target >= 100/s; beside it how fast the users were created (the queueing side) and how long the
 * outbox took to drain after the last one. Every mail must arrive once: a Message-ID seen twice,
 * or a mail missing, fails the run. BENCH_MAIL_CONCURRENCY sets the service's MAIL_CONCURRENCY
 * (unset: its default).
 */
const path = require('node:path');
const { SMTPServer } = require('smtp-server');
const lib = require('./lib');

const { ROOT, HOST, PASSWORD, round2, http, expectStatus, mapLimit, range, table, heading, verdict } = lib;

const TARGET_MAILS_PER_SECOND = 100;

function config() {
  return {
    mails: lib.int('BENCH_MAIL_COUNT', 2000),
    connections: lib.int('BENCH_MAIL_CONNECTIONS', 16),
    concurrency: process.env.BENCH_MAIL_CONCURRENCY || undefined,
  };
}

/** An SMTP server that takes every message at once and keeps each one's recipient, Message-ID and arrival. */
async function startSink() {
  const received = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    closeTimeout: 500,
    onData: (stream, session, callback) => {
      let head = '';
      stream.on('data', (c) => {
        if (head.length < 16_384) head += c.toString('latin1');
      });
      stream.on('end', () => {
        const id = /^Message-ID:\s*(\S+)/im.exec(head);
        received.push({ to: session.envelope.rcptTo.map((r) => r.address).join(','), messageId: id ? id[1] : '', at: Date.now() });
        callback();
      });
    },
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, resolve);
  });
  server.on('error', (err) => console.error(`mail_throughput: the SMTP server: ${err.message}`));
  return { received, url: `smtp://${HOST}:${server.server.address().port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function scenario(ctx) {
  const cfg = config();
  heading('mail_throughput', `${cfg.mails} welcome mails queued by an admin creating users, delivered to an SMTP server on loopback`);
  const dbName = `acct_bench_mail_${process.pid}`;
  await lib.createDatabase(dbName);
  const sink = await startSink();
  const port = await lib.freePort();
  const adminEmail = 'bench-mail-admin@example.com';
  const service = lib.startChild(
    'service (mail_throughput)',
    path.join(ROOT, 'dist/src/server.js'),
    lib.serviceEnv(ctx, { dbName, appName: 'bench-mail', port, adminEmail, dataPrefix: 'acct-bench-mail-' }, {
      SMTP_URL: sink.url,
      MAIL_FROM: 'Accounts <noreply@bench.example.com>',
      ...(cfg.concurrency ? { MAIL_CONCURRENCY: cfg.concurrency } : {}),
    }),
    { nodeArgs: ctx.serviceNodeArgs, cpu: ctx.serverCpu },
  );
  const base = `http://${HOST}:${port}`;
  try {
    await lib.waitReady(service, base);
    const adminJwt = (await expectStatus(200, http(base, 'POST', '/login', { body: { email: adminEmail, password: PASSWORD } }), 'admin login')).jwt_token;
    const emails = range(cfg.mails).map((i) => `mail${i}@bench.example.com`);

    const t0 = Date.now();
    await mapLimit(emails, cfg.connections, (email, i) => expectStatus(201, http(base, 'POST', '/user', { token: adminJwt, body: { name: `mail${i}`, email } }), `create ${email}`));
    const queuedAt = Date.now();
    const backlogAtQueued = cfg.mails - sink.received.length;
    const deadline = queuedAt + 300_000;
    while (sink.received.length < cfg.mails) {
      lib.assertAlive();
      if (Date.now() > deadline) throw new Error(`mail_throughput: ${sink.received.length} of ${cfg.mails} mails received 300 s after the last was queued`);
      await lib.sleep(5);
    }
    const lastAt = Math.max(...sink.received.map((m) => m.at));
    await lib.sleep(2000); // a mail sent twice would show by now

    const wanted = new Set(emails);
    const ids = new Set(sink.received.map((m) => m.messageId));
    const delivered = sink.received.filter((m) => wanted.has(m.to));
    const missing = emails.length - new Set(delivered.map((m) => m.to)).size;
    if (missing || delivered.length !== cfg.mails || ids.size !== sink.received.length || ids.has('')) {
      throw new Error(`mail_throughput: ${sink.received.length} received for ${cfg.mails} queued (${missing} missing, ${sink.received.length - ids.size} Message-IDs seen twice)`);
    }

    const seconds = (lastAt - t0) / 1000;
    const mailsPerSecond = round2(cfg.mails / seconds);
    const queuedPerSecond = round2(cfg.mails / ((queuedAt - t0) / 1000));
    const drainMs = Math.max(0, lastAt - queuedAt);
    // The sender alone: the backlog left when the last user was created, over the time it took.
    const drainPerSecond = drainMs > 0 ? round2(backlogAtQueued / (drainMs / 1000)) : null;
    const pass = mailsPerSecond >= TARGET_MAILS_PER_SECOND;
    table([
      ['', 'mails', 'seconds', 'per second'],
      ['queued (POST /user)', cfg.mails, round2((queuedAt - t0) / 1000), queuedPerSecond],
      ['delivered (first request to last mail)', cfg.mails, round2(seconds), mailsPerSecond],
    ]);
    console.log(`\n${backlogAtQueued} mails still queued when the last user was created, delivered in ${drainMs} ms (${drainPerSecond ?? '-'}/s with nothing else to do); MAIL_CONCURRENCY ${cfg.concurrency ?? 'default'}; each mail once, Message-IDs all distinct`);
    console.log(`mail_throughput: ${mailsPerSecond} mails/s (target >= ${TARGET_MAILS_PER_SECOND}): ${verdict(pass)}`);
    return { mails: cfg.mails, connections: cfg.connections, mailConcurrency: cfg.concurrency ?? 'default', seconds: round2(seconds), mailsPerSecond, queuedPerSecond, backlogAtQueued, drainMs, drainPerSecond, target: TARGET_MAILS_PER_SECOND, pass };
  } finally {
    await lib.stopChild(service);
    await sink.close();
    await lib.dropDatabase(dbName);
  }
}

function summaryRows(r) {
  return [['mail_throughput', `${r.mailsPerSecond} mails/s (queued ${r.queuedPerSecond}/s; backlog of ${r.backlogAtQueued} then drained at ${r.drainPerSecond ?? '-'}/s)`, `>= ${r.target}/s`, verdict(r.pass)]];
}

/** Seconds the scenario may take: set-up, the users at 20/s on a busy machine, the drain's bound. */
function budgetSeconds() {
  return 120 + Math.ceil(config().mails / 20) + 300;
}

module.exports = { scenario, summaryRows, budgetSeconds, config };
