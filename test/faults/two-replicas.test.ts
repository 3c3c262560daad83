import http from 'node:http';
import pg from 'pg';
import { MailCatcher, type CaughtMail } from '../helpers/mail-catcher';
import { startCluster, type Cluster } from '../helpers/pg-cluster';
import { ADMIN, baseEnv, call, dumpRun, killAllServices, login, sleep, startService, stopService, type Outcome, type Service } from './harness';

/**
 * Two replicas on one Postgres (docs/scaling.md), every request going to the other one than the
 * last: what one replica does, the other sees at once, and what runs in the background runs once
 * between them. Mail goes out once per cause (whichever sender takes it), a queued job runs once
 * (a registration makes one account and one verification mail, never a second "you already have
 * an account"), the audit chain the two chainers build together has no gap and verifies on
 * either, a token ended on one is refused by the other, and the login throttle and the per-IP
 * limits count the attempts made on both.
 */

const USERS = 6;
const REGISTRATIONS = 4;
/** Failed logins in a row before an account is held back (THROTTLE_ACCOUNT_FAILURES). */
const ACCOUNT_FAILURES = 4;
/** Requests a minute per IP and route (THROTTLE_IP_PER_MINUTE). */
const IP_LIMIT = 40;
const APP = 'Accounts';
const SUBJECT = {
  welcome: `Welcome to ${APP}`,
  changed: `Your ${APP} password has been changed`,
  confirm: `Confirm your new ${APP} email address`,
  changing: `Your ${APP} email address is changing`,
  reset: `Reset your ${APP} password`,
  verify: `Verify your ${APP} email address`,
  already: `You already have an ${APP} account`,
};

let cluster: Cluster | undefined;
let mail: MailCatcher | undefined;
let replicas: Service[] = [];
let db: pg.Client | undefined;
const agent = new http.Agent({ keepAlive: false });
/** Every request sent, in order, with the replica that got it. */
const sent: { replica: number; outcome: Outcome }[] = [];
let turn = 0;

/** The next request goes to the other replica than the last one. */
async function send(method: string, path: string, options: { token?: string; body?: unknown; replica?: number } = {}): Promise<Outcome> {
  const replica = options.replica ?? turn++ % 2;
  const outcome = await call({ port: replicas[replica]!.port, agent, method, path, token: options.token, body: options.body });
  sent.push({ replica, outcome });
  return outcome;
}

async function expectStatus(o: Outcome, status: number): Promise<Outcome> {
  if (o.status !== status) throw new Error(`${o.method} ${o.path}: expected ${status}, got ${o.status ?? o.error} ${o.body ?? ''}`);
  return o;
}

const json = <T>(o: Outcome) => o.json as T;

/** The link's token in a mail (`...?token=<token>`). */
function linkToken(m: CaughtMail): string {
  const found = /[?&]token=([A-Za-z0-9_-]+)/.exec(m.text);
  if (!found) throw new Error(`no link in the mail "${m.subject}":\n${m.text}`);
  return found[1]!;
}

async function pollUntil<T>(what: string, read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not so within ${timeoutMs} ms (last: ${JSON.stringify(value)})`);
    await sleep(100);
  }
}


beforeAll(async () => {
  mail = new MailCatcher();
  await mail.start();
  cluster = await startCluster();
  const env = (name: string) =>
    baseEnv({
      DATABASE_URL: cluster!.url,
      DATA_DIR: `${cluster!.dir}/replica-${name}`,
      SMTP_URL: mail!.url,
      APP_NAME: APP,
      ALLOW_REGISTRATION: '1',
      THROTTLE_ACCOUNT_FAILURES: String(ACCOUNT_FAILURES),
      THROTTLE_IP_PER_MINUTE: String(IP_LIMIT),
      MAIL_POLL_INTERVAL_MS: '200',
      DATABASE_POOL_SIZE: '4',
    });
  // Both at once on the empty database, as a deployment starts them: one migrates, the other waits for it.
  replicas = await Promise.all([startService(env('a')), startService(env('b'))]);
  db = new pg.Client({ connectionString: cluster.url });
  await db.connect();
});

afterAll(async () => {
  dumpRun('two-replicas', { sent, mails: mail?.mails.map((m) => ({ to: m.to, subject: m.subject })) });
  await db?.end();
  await Promise.all(replicas.map((r) => stopService(r)));
  await killAllServices();
  await mail?.stop();
  await cluster?.destroy();
});

interface Person {
  name: string;
  email: string;
  newEmail: string;
  id: string;
  password: string;
}

const people: Person[] = [];
let adminToken = '';

describe('two replicas behind alternating requests', () => {
  test('users made, passwords changed and email addresses moved, each step on the other replica', async () => {
    adminToken = await login(replicas[turn++ % 2]!.port);
    for (let i = 0; i < USERS; i++) {
      const name = `replica-user-${i}`;
      const person: Person = { name, email: `${name}@scale.example.test`, newEmail: `${name}-moved@scale.example.test`, id: '', password: `first password ${i}` };
      const created = await expectStatus(await send('POST', '/user', { token: adminToken, body: { name, email: person.email, password: person.password } }), 201);
      person.id = json<{ id: string }>(created).id;
      people.push(person);
    }
    for (const p of people) {
      // Created with a password: the first login must change it.
      const first = json<{ jwt_token: string }>(await expectStatus(await send('POST', '/login', { body: { email: p.email, password: p.password } }), 200));
      const old = p.password;
      p.password = `${old} changed`;
      await expectStatus(await send('POST', '/user/me/password', { token: first.jwt_token, body: { password: p.password, current_password: old } }), 204);
      const second = json<{ jwt_token: string }>(await expectStatus(await send('POST', '/login', { body: { email: p.email, password: p.password } }), 200));
      await expectStatus(await send('POST', '/user/me', { token: second.jwt_token, body: { email: p.newEmail, current_password: p.password } }), 200);
    }
    for (const p of people) {
      const [confirm] = await mail!.waitFor((m) => m.subject === SUBJECT.confirm && m.to.includes(p.newEmail), 1, 60_000);
      await expectStatus(await send('POST', '/user/me/email/confirm', { body: { token: linkToken(confirm!) } }), 204);
    }
    for (const p of people) {
      const me = await expectStatus(await send('GET', `/user/${p.id}`, { token: adminToken }), 200);
      expect(json<{ email: string }>(me).email).toBe(p.newEmail);
    }
  });

  test('password resets asked on both replicas and registrations: each job runs once, its effect once', async () => {
    // Each account's reset asked twice, once on each replica: one link (the service mails one a minute).
    for (const p of people) {
      await expectStatus(await send('POST', '/password/reset', { body: { email: p.newEmail }, replica: 0 }), 202);
      await expectStatus(await send('POST', '/password/reset', { body: { email: p.newEmail }, replica: 1 }), 202);
    }
    for (let i = 0; i < REGISTRATIONS; i++) {
      const name = `replica-registrant-${i}`;
      await expectStatus(await send('POST', '/register', { body: { name, email: `${name}@scale.example.test`, password: `registrant password ${i}` } }), 202);
    }
    // Every queued job done (a done job's row goes) and every mail handed to SMTP.
    await pollUntil('background_jobs empty', async () => Number((await db!.query('select count(*)::int as n from background_jobs')).rows[0].n), (n) => n === 0);
    await pollUntil('mail_outbox all sent', async () => Number((await db!.query('select count(*)::int as n from mail_outbox where sent is null')).rows[0].n), (n) => n === 0);
    const registered = await db!.query<{ name: string; n: number }>("select name, count(*)::int as n from users where name like 'replica-registrant-%' group by name order by name");
    expect(registered.rows).toEqual(Array.from({ length: REGISTRATIONS }, (_v, i) => ({ name: `replica-registrant-${i}`, n: 1 })));
    // Each job ran once: a reset job takes the account's minute first (a rate_limits row counting
    // its runs: two requests, two runs), and a registration job run again finds the account made
    // and queues "you already have an account".
    const resetRuns = await db!.query<{ key: string; hits: number }>("select key, hits from rate_limits where key like 'reset-mail:%' order by key");
    expect(resetRuns.rows.map((r) => r.hits)).toEqual(people.map(() => 2));
    const already = await db!.query<{ n: number }>('select count(*)::int as n from mail_outbox where subject = $1', [SUBJECT.already]);
    expect(already.rows[0]!.n).toBe(0);
    // Each job's audited effect once: one registration made per registrant, one reset link per account.
    const effects = await db!.query<{ action: string; target_name: string; n: number }>(
      `select action, target_name, count(*)::int as n from audit_log
        where action in ('user.registered', 'password.reset_requested') group by action, target_name order by action, target_name`,
    );
    expect(effects.rows).toEqual([
      ...people.map((p) => ({ action: 'password.reset_requested', target_name: p.name, n: 1 })),
      ...Array.from({ length: REGISTRATIONS }, (_v, i) => ({ action: 'user.registered', target_name: `replica-registrant-${i}`, n: 1 })),
    ]);
  });

  test('every mail was delivered exactly once: per recipient and subject, and nothing else went out', async () => {
    // The outbox says all are sent; SMTP's last DATA may still be parsed by the catcher: give it a moment.
    const expected = new Map<string, number>();
    const expect1 = (to: string, subject: string) => expected.set(`${to} | ${subject}`, 1);
    for (const p of people) {
      expect1(p.email, SUBJECT.welcome);
      expect1(p.email, SUBJECT.changed);
      expect1(p.newEmail, SUBJECT.confirm);
      expect1(p.email, SUBJECT.changing);
      expect1(p.newEmail, SUBJECT.reset);
    }
    for (let i = 0; i < REGISTRATIONS; i++) expect1(`replica-registrant-${i}@scale.example.test`, SUBJECT.verify);
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    await pollUntil('the catcher has every mail', async () => mail!.mails.length, (n) => n >= total);
    await sleep(1000); // a duplicate would come right behind
    const counted = new Map<string, number>();
    for (const m of mail!.mails) for (const to of m.to) counted.set(`${to} | ${m.subject}`, (counted.get(`${to} | ${m.subject}`) ?? 0) + 1);
    expect(Object.fromEntries([...counted].sort())).toEqual(Object.fromEntries([...expected].sort()));
    expect(mail!.mails.filter((m) => m.subject === SUBJECT.already)).toEqual([]);
    const outbox = await db!.query<{ n: number; sent: number }>('select count(*)::int as n, count(sent)::int as sent from mail_outbox');
    expect(outbox.rows[0]).toEqual({ n: total, sent: total });
  });

  test('a token ended on one replica is refused by the other at once', async () => {
    const made = await expectStatus(await send('POST', '/user/me/token', { token: adminToken, body: { name: 'replica-api-token' }, replica: 0 }), 201);
    const apiToken = json<{ token: string }>(made).token;
    await expectStatus(await send('GET', '/user/me', { token: apiToken, replica: 1 }), 200);
    await expectStatus(await send('GET', '/user/me', { token: apiToken, replica: 0 }), 200);
    await expectStatus(await send('DELETE', '/user/me/token/replica-api-token', { token: adminToken, replica: 0 }), 204);
    await expectStatus(await send('GET', '/user/me', { token: apiToken, replica: 1 }), 401);

    // A login token ended by logout on B, and a user's tokens revoked by an admin on A.
    const session = json<{ jwt_token: string }>(await expectStatus(await send('POST', '/login', { body: ADMIN, replica: 0 }), 200)).jwt_token;
    await expectStatus(await send('GET', '/user/me', { token: session, replica: 0 }), 200);
    await expectStatus(await send('POST', '/logout', { token: session, replica: 1 }), 204);
    await expectStatus(await send('GET', '/user/me', { token: session, replica: 0 }), 401);

    const p = people[0]!;
    const userToken = json<{ jwt_token: string }>(await expectStatus(await send('POST', '/login', { body: { email: p.newEmail, password: p.password }, replica: 1 }), 200)).jwt_token;
    await expectStatus(await send('GET', '/user/me', { token: userToken, replica: 1 }), 200);
    await expectStatus(await send('POST', `/user/${p.id}/revoke?send_mail=0`, { token: adminToken, replica: 0 }), 204);
    await expectStatus(await send('GET', '/user/me', { token: userToken, replica: 1 }), 401);
  });

  test("an account's failed logins on both replicas add up to one throttle", async () => {
    const p = people[1]!;
    const statuses: number[] = [];
    for (let i = 0; i < 2 * ACCOUNT_FAILURES && !statuses.includes(429); i++) {
      const o = await send('POST', '/login', { body: { email: p.newEmail, password: 'not the password' }, replica: i % 2 });
      statuses.push(o.status ?? 0);
    }
    // Counted apart, each replica would see its ACCOUNT_FAILURES-th failure only at attempt 2 * ACCOUNT_FAILURES
    // and refuse from the one after; counted together, the attempt after the ACCOUNT_FAILURES-th is refused
    // (or one a little later, should a second pass between two attempts on a slow machine and the hold end).
    expect(statuses.slice(0, ACCOUNT_FAILURES)).toEqual(Array(ACCOUNT_FAILURES).fill(401));
    expect(statuses).toContain(429);
    // The right password is held back too while the hold lasts, on either replica.
    const right = await send('POST', '/login', { body: { email: p.newEmail, password: p.password }, replica: statuses.length % 2 });
    expect([429, 200]).toContain(right.status);
    const rows = await db!.query<{ failures: number }>('select failures from login_throttle');
    expect(rows.rows.some((r) => r.failures >= ACCOUNT_FAILURES)).toBe(true);
  });

  test('the per-IP limit of a route counts the requests of both replicas', async () => {
    const path = '/password/reset';
    const perReplica = [0, 0];
    for (const s of sent) if (s.outcome.path === path) perReplica[s.replica]!++;
    let refused: { replica: number; counts: number[] } | undefined;
    for (let i = 0; i < 2 * IP_LIMIT && !refused; i++) {
      const replica = i % 2;
      const o = await send('POST', path, { body: { email: `nobody-${i}@scale.example.test` }, replica });
      perReplica[replica]!++;
      if (o.status === 429) refused = { replica, counts: [...perReplica] };
      else expect(o.status).toBe(202);
    }
    // Refused while neither replica had itself seen more than the limit: the count is shared.
    expect(refused).toBeDefined();
    expect(Math.max(...refused!.counts)).toBeLessThanOrEqual(IP_LIMIT);
  });

  test('the audit chain the two replicas built together is contiguous and verifies on either', async () => {
    await pollUntil('background_jobs empty', async () => Number((await db!.query('select count(*)::int as n from background_jobs')).rows[0].n), (n) => n === 0);
    const checks = [];
    for (const replica of [0, 1]) {
      const o = await expectStatus(await send('GET', '/audit/verify', { token: adminToken, replica }), 200);
      checks.push(json<{ ok: boolean; rows: number; pending: number }>(o));
    }
    const entries = Number((await db!.query('select count(*)::int as n from audit_log')).rows[0].n);
    const chain = (await db!.query<{ n: number; first: string; last: string; linked: number }>(
      `select count(*)::int as n, min(pos)::text as first, max(pos)::text as last,
              count(*) filter (where c.id in (select id from audit_log))::int as linked
         from audit_chain c`,
    )).rows[0]!;
    // Every entry linked once, positions 1..n with no gap, no link to an entry that is not there.
    expect(chain).toEqual({ n: entries, first: '1', last: String(entries), linked: entries });
    // Each replica verified the whole chain (nothing left to link: no request is under way).
    for (const c of checks) expect(c).toMatchObject({ ok: true, rows: entries, pending: 0 });
    // Both replicas did work that is audited: their entries are interleaved in the one chain.
    expect(entries).toBeGreaterThan(USERS * 4);
  });
});
