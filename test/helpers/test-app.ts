import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Express } from 'express';
import type { Knex } from 'knex';
import type { Pool } from 'pg';
import supertest from 'supertest';
import { loadApiSpec } from '../../src/api-spec';
import { createApp } from '../../src/app';
import { loadConfig, type Config } from '../../src/config';
import { createContainer, type Container } from '../../src/container';
import { createDrainingServer, type AnswerObserver, type RequestTimeouts } from '../../src/http/draining-server';
import { countAnswers } from '../../src/http/handlers/metrics';
import type { Clock, Scope, User } from '../../src/domain/types';
import { openDatabase } from '../../src/db/database';
import { createLogger } from '../../src/logger';
import { CLAIM, DELIVERED } from '../../src/stores/webhook-store';
import { MailCatcher } from './mail-catcher';
import { openTestDatabase } from './test-database';

/** Real time, plus whatever a test skips ahead; or stopped, while a test needs one instant. */
export class TestClock implements Clock {
  private offsetMs = 0;
  private stoppedAt: number | undefined;
  now(): Date {
    return new Date((this.stoppedAt ?? Date.now()) + this.offsetMs);
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
  /** Stops the clock (advance still moves it), so a burst of requests on a slow machine all happens at one instant. */
  stop(at = Date.now()): void {
    this.stoppedAt = at;
  }
  /** Real time again (plus what was advanced). */
  resume(): void {
    this.stoppedAt = undefined;
  }
}

export const JWT_SECRET = 'test-secret-test-secret-test-secret-0123456789';
/** The audit chain's key in tests (as JWT_SECRET: set, as a server's would be). */
export const AUDIT_KEY = 'test-audit-key-test-audit-key-0123456789abcdef';
/** The factor secrets' key in tests. */
export const MFA_KEY = 'test-mfa-key-test-mfa-key-0123456789abcdefghij';

export interface TestUser {
  user: User;
  email: string;
  password: string;
}

export interface TestApp {
  app: Express;
  /** Where the app is served (by the draining server, as in production). */
  baseUrl: string;
  knex: Knex;
  /** The database's URL on Postgres; undefined on PGlite. */
  databaseUrl?: string;
  pool?: Pool;
  config: Config;
  container: Container;
  clock: TestClock;
  mail: MailCatcher;
  dataDir: string;
  http(): supertest.Agent;
  factory: Factory;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** Extra environment for loadConfig. */
  env?: Record<string, string>;
  /** false: no SMTP_URL, mail goes to .eml files in dataDir/outbox. */
  smtp?: boolean;
  /** Where log lines go (with LOG_LEVEL from env); by default nowhere. */
  logDestination?: { write(line: string): void };
  /**
   * Another instance of the service over this app's database (on Postgres through a pool of its
   * own, as a second process would be), to show what the instances share.
   */
  sameDatabaseAs?: TestApp;
  /** The audit chainer's poll (default: the service's 5 s). */
  auditChainPollMs?: number;
  /**
   * How often the webhook fan-out and sender look for work beside their kicks (default: the
   * service's 5 s and 1 s). The webhook tests ask for 50 ms, to see a retry come due or another
   * instance's deliveries soon; every other test keeps the default, so that two workers polling a
   * test's database (one connection, with PGlite) do not slow every request of it.
   */
  webhookPollMs?: number;
  /**
   * Listen on this port and name the app by this host in `baseUrl` (default: a free port, and
   * 127.0.0.1). A browser takes no IP address as a WebAuthn relying party: the passkey tests use
   * `localhost`, with APP_URL to match.
   */
  listen?: { port: number; host: string };
}

let sequence = 0;

/** A unique suffix, so tests never share data. */
export function unique(prefix = 'u'): string {
  sequence += 1;
  return `${prefix}${sequence}${crypto.randomBytes(3).toString('hex')}`;
}

/**
 * The whole service over this test file's own database, with response validation on and a
 * real SMTP server catching the mail the outbox sends.
 */
export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const db = options.sameDatabaseAs ? await reopen(options.sameDatabaseAs) : await openTestDatabase();
  const mail = new MailCatcher();
  const smtp = options.smtp ?? true;
  if (smtp) await mail.start();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-app-'));
  const config = loadConfig({
    BCRYPT_COST: '4',
    JWT_SECRET,
    MFA_KEY,
    AUDIT_KEY,
    VALIDATE_RESPONSES: '1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    MAIL_POLL_INTERVAL_MS: '50',
    DATA_DIR: dataDir,
    APP_URL: 'https://accounts.example.test',
    COOKIE_SECURE: '0',
    THROTTLE_IP_PER_MINUTE: '0',
    THROTTLE_ACCOUNT_FAILURES: '0',
    ...(smtp ? { SMTP_URL: mail.url } : {}),
    ...options.env,
  });
  const log = createLogger(config.logLevel, options.logDestination);
  const clock = new TestClock();
  const container = createContainer(db.knex, config, log, { clock, mailRetryBaseMs: 100, pool: db.pool, auditChainPollMs: options.auditChainPollMs, webhookPollMs: options.webhookPollMs });
  container.start();
  const app = createApp({ config, services: container.services, maintenance: container.stores.maintenance, log, apiSpec: loadApiSpec(), availability: container.availability, rateLimits: container.stores.rateLimits, clock: container.clock, metrics: container.metrics });
  // Served as server.ts serves it (the draining server, its request and response objects), on a
  // free port, as supertest would listen (every interface).
  const served = await listen(app, countAnswers(container.metrics), config, options.listen);
  const testApp: TestApp = {
    app,
    knex: db.knex,
    pool: db.pool,
    databaseUrl: db.url,
    config,
    container,
    clock,
    mail,
    dataDir,
    baseUrl: served.baseUrl,
    http: () => supertest.agent(served.baseUrl),
    factory: undefined as unknown as Factory,
    close: async () => {
      await served.close();
      await container.stop();
      await mail.stop();
      await db.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  testApp.factory = new Factory(testApp);
  return testApp;
}

/** The app behind the draining server, listening on a free port; close() ends every connection. */
async function listen(app: http.RequestListener, answered: AnswerObserver, timeouts: RequestTimeouts, at?: { port: number; host: string }): Promise<{ baseUrl: string; close(): Promise<void> }> {
  const { server } = createDrainingServer(app, answered, timeouts);
  server.listen(at?.port ?? 0);
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    baseUrl: `http://${at?.host ?? '127.0.0.1'}:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A second handle on a test app's database: its own pool on Postgres; PGlite has one connection to share. */
async function reopen(other: TestApp): Promise<{ knex: Knex; pool?: Pool; url?: string; close(): Promise<void> }> {
  if (!other.databaseUrl) return { knex: other.knex, pool: other.pool, close: async () => undefined };
  const db = await openDatabase({ databaseUrl: other.databaseUrl, poolSize: 4 });
  return { ...db, url: other.databaseUrl };
}

/** Builds each test's own data. */
export class Factory {
  constructor(private readonly t: TestApp) {}

  async user(options: { admin?: boolean; password?: string | null; name?: string; email?: string; forcePasswordChange?: boolean } = {}): Promise<TestUser> {
    const name = options.name ?? unique('user');
    const email = options.email ?? `${name}@example.test`;
    const password = options.password === undefined ? `pw-${crypto.randomBytes(6).toString('hex')}` : options.password;
    const user = await this.t.container.stores.users.insert({
      name,
      email,
      firstName: null,
      lastName: null,
      passwordHash: password === null ? null : await this.t.container.hasher.hash(password),
      isAdmin: options.admin ?? false,
      forcePasswordChange: options.forcePasswordChange ?? false,
    });
    return { user, email, password: password ?? '' };
  }

  /** Logs in through the API and returns the JWT. */
  async login(u: { email: string; password: string }): Promise<string> {
    const res = await supertest(this.t.baseUrl).post('/login').send({ email: u.email, password: u.password });
    if (res.status !== 200) throw new Error(`login failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.jwt_token as string;
  }

  /** A user and a login token of theirs. */
  async loggedIn(options: Parameters<Factory['user']>[0] = {}): Promise<TestUser & { jwt: string }> {
    const u = await this.user(options);
    return { ...u, jwt: await this.login(u) };
  }

  /** An API token row and its JWT (the routes that mint them come with API tokens). */
  async apiToken(user: User, scopes: Scope[] = ['api'], expires = new Date(Date.now() + 86_400_000)): Promise<string> {
    const token = await this.t.container.stores.tokens.insert({
      userId: user.id,
      kind: 'api',
      name: unique('token'),
      scopes,
      expires,
      userAgent: null,
    });
    return this.t.container.signer.sign({ userId: user.id, tokenId: token.id }, expires);
  }
}

/** The header a bearer token goes in. */
export function bearer(token: string): { Authorization: string } {
  return { Authorization: `Bearer ${token}` };
}

/**
 * Stands for an object a `beforeAll` makes: every property read goes to it, so a test file can
 * name it at the top (`const { t, admin } = testAppWithAdmin()`). Read before the hook has run
 * (at the file's top level), it throws.
 */
function madeLater<T extends object>(get: () => T | undefined, what: string): T {
  const real = (): T => {
    const value = get();
    if (value === undefined) throw new Error(`${what} is made in beforeAll: use it inside a test or a hook`);
    return value;
  };
  return new Proxy({} as T, {
    get: (_target, prop) => Reflect.get(real(), prop),
    has: (_target, prop) => Reflect.has(real(), prop),
    ownKeys: () => Reflect.ownKeys(real()),
    getOwnPropertyDescriptor: (_target, prop) => {
      const d = Reflect.getOwnPropertyDescriptor(real(), prop);
      return d && { ...d, configurable: true };
    },
  });
}

/**
 * Most test files' set-up: the app over a database of the file's own and a signed-in system
 * admin, made in `beforeAll` and closed in `afterAll` (both registered here).
 */
export function testAppWithAdmin(options: TestAppOptions = {}): { t: TestApp; admin: TestUser & { jwt: string } } {
  let app: TestApp | undefined;
  let admin: (TestUser & { jwt: string }) | undefined;
  // Generous: a database of its own and a bcrypt login take a while on a loaded machine.
  beforeAll(async () => {
    app = await createTestApp(options);
    admin = await app.factory.loggedIn({ admin: true });
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  }, 60_000);
  return { t: madeLater(() => app, 'the test app'), admin: madeLater(() => admin, 'the admin') };
}

/** Waits until the background jobs queued so far have run (their rows are gone). */
export async function jobsDone(knex: Knex, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await countRows(knex, 'background_jobs')) > 0) {
    if (Date.now() > deadline) throw new Error('background jobs did not finish');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The mail queued for an address, sent or not, oldest first, once the background jobs that were
 * due have run (a password reset is a job that queues its mail): "no mail was sent" is a look at
 * the outbox, which a request or job writes in its own transaction, not at the SMTP server after
 * a pause (which passes under load without proving anything).
 */
export async function queuedMail(knex: Knex, address: string): Promise<{ subject: string; sent: Date | null }[]> {
  await jobsDone(knex);
  return knex('mail_outbox').select('subject', 'sent').whereRaw('lower(?) = any(select lower(r) from unnest(recipients) r)', [address]).orderBy('id');
}

/** Rows in a table (to show that a refused request changed nothing). */
export async function countRows(knex: Knex, table: string): Promise<number> {
  const row = await knex(table).count<{ count: string }>('* as count').first();
  return Number(row?.count ?? 0);
}

/** The background workers' polls (mail, jobs, housekeeping, the webhook sender's claim and gauges), which may fall in the same moment as a request. */
const BACKGROUND = /^update "mail_outbox"|^select .* from "mail_outbox"|^update "background_jobs"|^delete from "(rate_limits|login_throttle)" where "key" in|^select .* from "webhook_deliveries"|^update "webhook_deliveries"/;
/** The webhook sender's own statements (prepared: their text as the store sends it). */
const SENDER = new Set([CLAIM.text, DELIVERED.text]);
const background = (sql: string) => BACKGROUND.test(sql) || SENDER.has(sql);
/** A statement of the audit chainer's pass: its whole transaction is the chainer's. */
const CHAINER = /pg_advisory_xact_lock|audit_chain|pg_snapshot_xmin/;

/**
 * The SQL statements `work` sends through `knex` (to show how many queries a request costs),
 * less the background workers' polls and the audit chainer's passes (which may be under way
 * when the capture begins or ends).
 */
export async function captureQueries(knex: Knex, work: () => Promise<unknown>): Promise<string[]> {
  const statements: { sql: string; tx?: string }[] = [];
  const listener = (q: { sql: string; __knexTxId?: string }) => {
    statements.push({ sql: q.sql, tx: q.__knexTxId });
  };
  knex.on('query', listener);
  try {
    await work();
  } finally {
    knex.removeListener('query', listener);
  }
  // A transaction of `work`'s began and ended while it ran, and holds no background statement: one
  // that straddles either end of the capture, or holds a poll or a chain pass, is a worker's.
  const txs = new Map<string, { begun: boolean; ended: boolean; background: boolean }>();
  for (const s of statements) {
    if (s.tx === undefined) continue;
    const t = txs.get(s.tx) ?? { begun: false, ended: false, background: false };
    if (/^BEGIN/.test(s.sql)) t.begun = true;
    else if (/^(COMMIT|ROLLBACK)/.test(s.sql)) t.ended = true;
    else if (background(s.sql) || CHAINER.test(s.sql)) t.background = true;
    txs.set(s.tx, t);
  }
  const ours = (tx: string) => {
    const t = txs.get(tx)!;
    return t.begun && t.ended && !t.background;
  };
  return statements.filter((s) => !background(s.sql) && (s.tx === undefined || ours(s.tx))).map((s) => s.sql);
}

/**
 * One request with a body sent byte for byte (supertest JSON-encodes a Buffer when the type is
 * JSON), for bodies that are not valid UTF-8 and the like.
 */
export async function rawRequest(
  app: Express,
  options: { method: string; path: string; headers?: Record<string, string>; body?: Buffer | string },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any }> {
  const { server } = createDrainingServer(app);
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise((resolve, reject) => {
      const body = options.body === undefined ? undefined : Buffer.from(options.body);
      const headers = { ...(body ? { 'Content-Length': String(body.length) } : {}), ...options.headers };
      const req = http.request({ host: '127.0.0.1', port, method: options.method, path: options.path, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON: the text as it is
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  } finally {
    server.close();
  }
}
