import type { Knex } from 'knex';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { Config } from './config';
import { AuditChainer } from './background/audit-chainer';
import { AuditCheckpoints } from './background/audit-checkpoints';
import { Housekeeping, LOGIN_FAILURES_REMEMBERED_MS } from './background/housekeeping';
import { JobRunner } from './background/job-runner';
import { DatabaseAvailability } from './db/availability';
import type { RequestMeta } from './domain/audit';
import { CHAIN_KEY_PURPOSE, type ChainKeys } from './domain/audit-chain';
import { systemClock, type Clock } from './domain/types';
import { domainOf, OutboxSender } from './mail/outbox-sender';
import { Metrics } from './metrics';
import { DatabaseGauges } from './background/database-gauges';
import { EmlFileTransport, SmtpTransport, type MailTransport } from './mail/transports';
import { AuthService } from './services/auth-service';
import { CurrentPasswordCheck } from './services/current-password';
import { MfaSecrets } from './services/mfa-secrets';
import { MfaService } from './services/mfa-service';
import { Passkeys } from './services/passkeys';
import { AuditService } from './services/audit-service';
import { EmailChanges } from './services/email-change';
import { GroupService } from './services/group-service';
import { PasswordHasher } from './services/password-hasher';
import { PasswordLinks } from './services/password-links';
import { PasswordService, RESET_JOB } from './services/password-service';
import { REGISTER_JOB, RegistrationService, type RegistrationJob } from './services/registration-service';
import { SettingsService } from './services/settings-service';
import { TokenService } from './services/token-service';
import { TokenSigner } from './services/token-signer';
import { UserService } from './services/user-service';
import { createStores, createTransactor, type Stores, type Transactor } from './stores';
import { AUDIT_KEY, KeyRing, MFA_KEY } from './keys';
import { WebhookSecrets } from './services/webhook-secrets';
import { WebhookService } from './services/webhook-service';
import { WebhookFanOut } from './webhooks/fan-out';
import { WebhookSender } from './webhooks/sender';

export interface Services {
  auth: AuthService;
  users: UserService;
  passwords: PasswordService;
  tokens: TokenService;
  settings: SettingsService;
  groups: GroupService;
  registration: RegistrationService;
  emailChanges: EmailChanges;
  audit: AuditService;
  mfa: MfaService;
  webhooks: WebhookService;
}

export interface Container {
  services: Services;
  stores: Stores;
  transact: Transactor;
  hasher: PasswordHasher;
  signer: TokenSigner;
  outbox: OutboxSender;
  jobs: JobRunner;
  housekeeping: Housekeeping;
  auditChainer: AuditChainer;
  /** Turns chained audit entries into webhook deliveries. */
  webhookFanOut: WebhookFanOut;
  /** Sends the webhook deliveries. */
  webhookSender: WebhookSender;
  /** The keys of the audit chain's links and checkpoints (from AUDIT_KEY). */
  chainKeys: ChainKeys;
  /** The audit chain's signed checkpoints (memory, file, log). */
  auditCheckpoints: AuditCheckpoints;
  /** Database outages, logged once each. */
  availability: DatabaseAvailability;
  clock: Clock;
  /** What `GET /metrics` shows. */
  metrics: Metrics;
  /** The metrics read from the database, in the background (what `GET /metrics` shows of it). */
  databaseGauges: DatabaseGauges;
  /** Starts the background workers (mail, jobs, housekeeping, the audit chain, the database gauges). */
  start(): void;
  /** Stops them, after a last pass of each. */
  stop(): Promise<void>;
}

export interface ContainerOptions {
  clock?: Clock;
  transport?: MailTransport;
  /** MAIL retry backoff; tests shorten it. */
  mailRetryBaseMs?: number;
  /** The pool Knex runs on, for the hot path's prepared statements (without it they run through Knex). */
  pool?: Pool;
  /** How often housekeeping refreshes the planner's statistics (the embedded database has no autovacuum). */
  analyzeEveryMs?: number;
  /** The metrics include prom-client's process metrics (the server's; not the CLI's or tests'). */
  processMetrics?: boolean;
  /** How often the audit chainer looks for other processes' entries (AUDIT_CHAIN_POLL_MS; a test sets it out of reach to see the kick alone). */
  auditChainPollMs?: number;
  /** How often the metrics read from the database are read again (default 5 s). */
  databaseGaugesIntervalMs?: number;
  /** How often the webhook sender and fan-out look for work another process queued (default 1 s and 5 s; tests shorten it). */
  webhookPollMs?: number;
}

export type ContainerConfig = Pick<
  Config,
  | 'appName'
  | 'appUrl'
  | 'bcryptCost'
  | 'jwtSecrets'
  | 'loginTokenTtlMs'
  | 'adminLoginTokenTtlMs'
  | 'apiTokenTtlMs'
  | 'apiTokenMaxTtlMs'
  | 'welcomeLinkTtlMs'
  | 'resetLinkTtlMs'
  | 'registrationTtlMs'
  | 'auditRetentionDays'
  | 'auditLog'
  | 'auditKeys'
  | 'mfaKeys'
  | 'mfaMaxFailures'
  | 'requireMfaForAdmins'
  | 'webauthn'
  | 'auditCheckpointFile'
  | 'auditCheckpointIntervalMs'
  | 'smtpUrl'
  | 'mailOutboxDir'
  | 'mailFrom'
  | 'mailPollIntervalMs'
  | 'mailConcurrency'
  | 'throttleAccountFailures'
  | 'metrics'
  | 'webhooks'
>;

/**
 * The audit chainer's pass comes this long after the first commit that wrote an entry (the
 * entries of the requests in between go in the same pass), and every poll in any case (for
 * entries another process committed).
 */
const AUDIT_CHAIN_DELAY_MS = 100;
const AUDIT_CHAIN_POLL_MS = 5_000;
/** How often the webhook sender looks for deliveries another process queued or that came due. */
const WEBHOOK_POLL_MS = 1_000;
/** How often the metrics read from the database (the outbox's depth) are read again. */
const DATABASE_GAUGES_INTERVAL_MS = 5_000;

/** The one place that builds stores and services from a database handle. */
export function createContainer(db: Knex, config: ContainerConfig, log: Logger, options: ContainerOptions = {}): Container {
  const clock = options.clock ?? systemClock;
  const stores = createStores(db, options.pool, clock);
  const availability = new DatabaseAvailability(() => db.raw('select 1'), log);
  // Empty only when the caller did not resolve the key (runtime.ts generates the embedded default's).
  const chainKeys = KeyRing.of(AUDIT_KEY.variable, config.auditKeys).derive(CHAIN_KEY_PURPOSE);
  const auditCheckpoints = new AuditCheckpoints(chainKeys, stores.audit, clock, log, { file: config.auditCheckpointFile, intervalMs: config.auditCheckpointIntervalMs });
  auditCheckpoints.load();
  const databaseGauges = new DatabaseGauges(() => stores.outbox.backlog(clock.now()), clock, log, {
    intervalMs: options.databaseGaugesIntervalMs ?? DATABASE_GAUGES_INTERVAL_MS,
    availability,
    readWebhooks: () => stores.webhooks.backlog(clock.now()),
  });
  const metrics = new Metrics(
    {
      pool: options.pool,
      database: databaseGauges,
      auditChain: () => ({ head: auditCheckpoints.lastHead?.position, checkpoint: auditCheckpoints.latest }),
    },
    { process: options.processMetrics },
  );
  const transport = options.transport ?? (config.smtpUrl ? new SmtpTransport(config.smtpUrl, { maxConnections: config.mailConcurrency }) : new EmlFileTransport(config.mailOutboxDir));
  const outbox = new OutboxSender(stores.outbox, transport, clock, log, {
    from: config.mailFrom,
    concurrency: config.mailConcurrency,
    messageIdDomain: domainOf(config.mailFrom) ?? new URL(config.appUrl).hostname,
    pollIntervalMs: config.mailPollIntervalMs,
    retryBaseMs: options.mailRetryBaseMs ?? 1000,
    retryMaxMs: 15 * 60_000,
    availability,
    onFailure: () => metrics.mailFailed(),
  });
  let jobRunner: JobRunner | undefined; // made below, from the services it runs jobs for
  const auditChainer = new AuditChainer(stores.audit, chainKeys, auditCheckpoints, log, {
    intervalMs: options.auditChainPollMs ?? AUDIT_CHAIN_POLL_MS,
    kickDelayMs: AUDIT_CHAIN_DELAY_MS,
    availability,
    chained: () => webhookFanOut.kick(),
  });
  const onCommit = { mailQueued: () => outbox.kick(), jobQueued: () => jobRunner?.kick(), audited: () => auditChainer.kick() };
  const transact = createTransactor(db, onCommit, clock, { audit: config.auditLog });
  const hasher = new PasswordHasher(config.bcryptCost);
  const signer = new TokenSigner(config.jwtSecrets);
  const mail = { appName: config.appName, appUrl: config.appUrl };
  const webhookSecrets = new WebhookSecrets(KeyRing.of(MFA_KEY.variable, config.mfaKeys));
  const webhookSender = new WebhookSender(stores.webhooks, transact, webhookSecrets, clock, log, {
    concurrency: config.webhooks.concurrency,
    allowPrivate: config.webhooks.allowPrivate,
    pollIntervalMs: options.webhookPollMs ?? WEBHOOK_POLL_MS,
    mail,
    availability,
    metrics: {
      delivered: () => metrics.webhookDelivery('delivered'),
      retried: () => metrics.webhookDelivery('retried'),
      failed: () => metrics.webhookDelivery('failed'),
      disabled: () => metrics.webhookDisabled(),
    },
  });
  const webhookFanOut = new WebhookFanOut(stores.webhooks, clock, log, { intervalMs: options.webhookPollMs ?? AUDIT_CHAIN_POLL_MS, availability, queued: () => webhookSender.kick() });
  const links = new PasswordLinks(clock, mail, { welcomeMs: config.welcomeLinkTtlMs, resetMs: config.resetLinkTtlMs });
  const emailChanges = new EmailChanges(transact, clock, mail, links);
  // Failures in a row, then a delay doubling from 1 s up to 15 min (API.md §2.4b, §2.8).
  const throttlePolicy = (failures: number) => ({ failures, baseDelayMs: 1000, maxDelayMs: 15 * 60_000, forgetAfterMs: LOGIN_FAILURES_REMEMBERED_MS });
  const loginThrottle = throttlePolicy(config.throttleAccountFailures);
  const currentPassword = new CurrentPasswordCheck(stores, hasher, clock, loginThrottle);
  const users = new UserService(stores, transact, hasher, links, clock, mail, emailChanges, currentPassword);
  const groups = new GroupService(stores, transact);
  const passwords = new PasswordService(stores, transact, hasher, links, clock, mail, currentPassword);
  const mfaThrottle = throttlePolicy(Math.max(1, config.mfaMaxFailures)); // never off, unlike the password's
  const passkeys = new Passkeys(config.webauthn);
  const mfa = new MfaService(stores, transact, new MfaSecrets(KeyRing.of(MFA_KEY.variable, config.mfaKeys)), currentPassword, clock, mail, mfaThrottle, passkeys);
  const services: Services = {
    auth: new AuthService(
      stores,
      transact,
      hasher,
      signer,
      clock,
      { loginMs: config.loginTokenTtlMs, adminLoginMs: config.adminLoginTokenTtlMs },
      loginThrottle,
      mfa,
      { requireMfaForAdmins: config.requireMfaForAdmins, mail },
      config.metrics ? (valid) => metrics.tokenChecked(valid) : undefined,
    ),
    mfa,
    users,
    passwords,
    tokens: new TokenService(stores, transact, signer, clock, mail, {
      apiDefaultMs: config.apiTokenTtlMs,
      apiMaxMs: config.apiTokenMaxTtlMs,
    }),
    settings: new SettingsService(stores, transact),
    groups,
    registration: new RegistrationService(stores, transact, hasher, clock, mail, config.registrationTtlMs),
    emailChanges,
    webhooks: new WebhookService(stores, transact, webhookSecrets, clock, config.webhooks, () => webhookSender.kick()),
    audit: new AuditService(stores.audit, () => auditChainer.runOnce(), {
      keys: chainKeys,
      checkpoint: () => auditCheckpoints.latest,
      retentionMs: config.auditRetentionDays * 86_400_000,
      clock,
    }),
  };
  const handlers = {
    [RESET_JOB]: (p: Record<string, unknown>) => services.passwords.sendResetLink(String(p.email), jobMeta(p)),
    [REGISTER_JOB]: async (p: Record<string, unknown>) => {
      if ((await services.registration.complete(p as unknown as RegistrationJob)) === 'name_taken') {
        log.info('a registration made nothing: its name was taken after it was answered');
      }
    },
  };
  const jobs = new JobRunner(stores.jobs, handlers, clock, log, {
    pollIntervalMs: config.mailPollIntervalMs,
    retryBaseMs: options.mailRetryBaseMs ?? 1000,
    retryMaxMs: 15 * 60_000,
    availability,
  });
  jobRunner = jobs;
  const housekeeping = new Housekeeping(stores, clock, log, {
    intervalMs: 60_000,
    availability,
    analyzeEveryMs: options.analyzeEveryMs,
    registrationTtlMs: config.registrationTtlMs,
    auditRetentionMs: config.auditRetentionDays * 86_400_000,
  });
  return {
    metrics,
    databaseGauges,
    services,
    stores,
    transact,
    hasher,
    signer,
    outbox,
    jobs,
    housekeeping,
    auditChainer,
    webhookFanOut,
    webhookSender,
    auditCheckpoints,
    chainKeys,
    availability,
    clock,
    start: () => {
      outbox.start();
      jobs.start();
      housekeeping.start();
      auditChainer.start();
      webhookFanOut.start();
      webhookSender.start();
      databaseGauges.start();
    },
    stop: async () => {
      await databaseGauges.stop();
      await housekeeping.stop();
      await jobs.stop(); // its last jobs may queue mail and write audit entries: the outbox and the chain go last
      await auditChainer.stop();
      await webhookFanOut.stop();
      await webhookSender.stop(); // a disable's mail goes in the outbox: the outbox goes last
      await outbox.stop();
      availability.stop();
    },
  };
}

/** The request a job was queued by (its address, client and id), for the audit rows the job writes. */
function jobMeta(payload: Record<string, unknown>): RequestMeta {
  const m = (payload.meta ?? {}) as Partial<Record<keyof RequestMeta, unknown>>;
  const text = (v: unknown) => (typeof v === 'string' ? v : null);
  return { ip: text(m.ip), userAgent: text(m.userAgent), requestId: text(m.requestId) };
}
