import path from 'node:path';
import ms from 'ms';
import { z } from 'zod';
import { normalizeName } from './domain/rules';

/**
 * The only reader of process.env. Every setting is typed and validated here; a bad value stops
 * start-up with a message naming the variable.
 */
export interface Config {
  port: number;
  host: string;
  logLevel: string;
  appName: string;
  appUrl: string;
  trustProxy: boolean | number | string;
  bcryptCost: number;
  dataDir: string;
  databaseUrl: string | undefined;
  databasePoolSize: number;
  /** How long a request waits for a pool connection (or a new one to be opened) before `503`. */
  databaseAcquireTimeoutMs: number;
  /**
   * Postgres's `statement_timeout` on the pool's connections; a query with no answer this long
   * after it (plus a second) ends its connection on our side (a frozen server). Twice it is the
   * connections' `idle_in_transaction_session_timeout`.
   */
  databaseStatementTimeoutMs: number;
  smtpUrl: string | undefined;
  mailFrom: string;
  mailOutboxDir: string;
  mailPollIntervalMs: number;
  /** Messages the outbox sender sends at once (over as many pooled SMTP connections). */
  mailConcurrency: number;
  /** Secrets for HS256: the first signs, all verify. Empty: generated and kept in dataDir. */
  jwtSecrets: string[];
  loginTokenTtlMs: number;
  adminLoginTokenTtlMs: number;
  apiTokenTtlMs: number;
  apiTokenMaxTtlMs: number;
  welcomeLinkTtlMs: number;
  resetLinkTtlMs: number;
  /** Self-service registration (`POST /register`) is served; off by default. */
  allowRegistration: boolean;
  /** How long a registration's verification link lives; unverified accounts older than this are removed. */
  registrationTtlMs: number;
  /** Audit entries older than this many days are removed; 0 keeps them all. */
  auditRetentionDays: number;
  /** false: no audit entries are written (only to measure what they cost; the contract wants them). */
  auditLog: boolean;
  /** Keys of the audit chain's links and checkpoints: the first signs, all verify. Empty: generated and kept in dataDir (embedded only). */
  auditKeys: string[];
  /** Keys of the factor secrets at rest (TOTP) and of the recovery codes' hashes: the first encrypts, all decrypt. Empty: generated and kept in dataDir (embedded only). */
  mfaKeys: string[];
  /** Wrong second-step codes in a row before an account's further tries are refused for a doubling delay (API.md §2.8). */
  mfaMaxFailures: number;
  /** An admin without a second factor may only set one up (API.md §2.8). */
  requireMfaForAdmins: boolean;
  /**
   * Passkeys' relying party (API.md §2.8): the RP ID (WEBAUTHN_RP_ID, default the host of
   * APP_URL), its name (APP_NAME) and the origins a ceremony may come from (WEBAUTHN_ORIGINS,
   * default the origin of APP_URL).
   */
  webauthn: { rpId: string; rpName: string; origins: string[] };
  /** Where the audit chain's signed checkpoint is kept (a file outside the database). */
  auditCheckpointFile: string;
  /** A checkpoint is written (the file and a log line) at most this often, when the chain has grown. */
  auditCheckpointIntervalMs: number;
  cookieSecure: boolean;
  /** The largest request body of an operation that declares none of its own (`x-body-limit`). */
  bodyLimit: string;
  /** A client has this long to send a request's headers, */
  headersTimeoutMs: number;
  /** and this long to send the whole request, body included; then `408` and the connection closes. */
  requestTimeoutMs: number;
  shutdownTimeoutMs: number;
  /** Requests a minute per client IP on /login and /password/reset; 0 turns it off. */
  throttleIpPerMinute: number;
  /** Failed logins in a row before an account's attempts are refused for a while; 0 turns it off. */
  throttleAccountFailures: number;
  admin: { email: string; password: string; name: string } | undefined;
  /** Validate responses against openapi.yaml (on in tests). */
  validateResponses: boolean;
  /** Browser origins allowed to call the API (CORS, with credentials); none by default. */
  corsOrigins: string[];
  /** When set, `GET /metrics` wants it as a bearer token. */
  metricsToken: string | undefined;
  /** `/docs` (the interactive API documentation) is served. */
  docs: boolean;
  /** false: requests and token checks are not counted (only to measure what counting costs). */
  metrics: boolean;
  /** Where the built web console is (`npm run build` puts it in dist/console); undefined: there. */
  consoleDir: string | undefined;
  /**
   * Webhooks (API.md §2.9): `allowHttp` (WEBHOOK_ALLOW_HTTP) takes `http://` endpoints,
   * `allowPrivate` (WEBHOOK_ALLOW_PRIVATE) endpoints on loopback, private and other internal
   * addresses, at registration and at delivery (both for local development and tests only: the
   * start-up log warns); `concurrency` (WEBHOOK_CONCURRENCY) deliveries in flight per instance.
   */
  webhooks: { allowHttp: boolean; allowPrivate: boolean; concurrency: number };
}

export class ConfigError extends Error {}

/**
 * JWT_SECRET values copied from an example rather than generated: the one docker-compose.yml
 * offered before it required a secret, and the words such examples are made of. Signing with a
 * published value lets anyone mint tokens.
 */
const PLACEHOLDER_SECRETS: ReadonlySet<string> = new Set(['replace-this-with-48-random-characters-0123456789']);
const PLACEHOLDER_WORDS = /replace[-_ ]?(this|me)|change[-_ ]?(this|me)|placeholder|your[-_ ]?(jwt[-_ ]?)?secret/i;

export function isPlaceholderSecret(secret: string): boolean {
  return PLACEHOLDER_SECRETS.has(secret) || PLACEHOLDER_WORDS.test(secret);
}

/**
 * A key outside the database (API.md §5): a comma-separated list (the first is used for new data,
 * all are tried), each at least 32 characters and none a placeholder. `noun` words the messages.
 */
const keyList = (noun: 'secret' | 'key') =>
  z
    .string()
    .optional()
    .refine((v) => v === undefined || v.split(',').every((s) => s.trim().length >= 32), {
      message: `each comma-separated ${noun} must be at least 32 characters`,
    })
    .refine((v) => v === undefined || !v.split(',').some((s) => isPlaceholderSecret(s.trim())), {
      message: `a placeholder, not a ${noun}: set 32 or more random characters (openssl rand -base64 48)`,
    });

const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      const parsed = /^\d+$/.test(value) ? Number(value) * 1000 : ms(value as ms.StringValue);
      if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed <= 0) {
        ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration (seconds, or like 30m, 12h, 7d)` });
        return z.NEVER;
      }
      return parsed;
    });

const flag = (fallback: '0' | '1') =>
  z
    .enum(['0', '1', 'true', 'false', 'yes', 'no'], { message: 'expected 0 or 1' })
    .default(fallback)
    .transform((v) => v === '1' || v === 'true' || v === 'yes');

const url = (message: string) =>
  z.string().refine((v) => {
    try {
      new URL(v);
      return true;
    } catch {
      return false;
    }
  }, message);

const schema = z
  .object({
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    HOST: z.string().min(1).default('127.0.0.1'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    APP_NAME: z.string().min(1).default('Accounts'),
    APP_URL: url('expected an absolute URL such as https://accounts.example.com').optional(),
    TRUST_PROXY: z.string().default('0'),
    BCRYPT_COST: z.coerce.number().int().min(4).max(15).default(12),
    DATA_DIR: z.string().min(1).default('./data'),
    DATABASE_URL: url('expected postgres://user:password@host:port/database').optional(),
    DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
    DATABASE_ACQUIRE_TIMEOUT: duration('3s'),
    DATABASE_STATEMENT_TIMEOUT: duration('5s'),
    SMTP_URL: url('expected smtp://user:password@host:port or smtps://...').optional(),
    MAIL_FROM: z.string().min(3).default('Accounts <noreply@localhost>'),
    MAIL_OUTBOX_DIR: z.string().min(1).optional(),
    MAIL_POLL_INTERVAL_MS: z.coerce.number().int().min(10).max(600_000).default(2000),
    MAIL_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(8),
    JWT_SECRET: keyList('secret'),
    LOGIN_TOKEN_TTL: duration('1d'),
    ADMIN_LOGIN_TOKEN_TTL: duration('30d'),
    API_TOKEN_TTL: duration('365d'),
    API_TOKEN_MAX_TTL: duration('365d'),
    WELCOME_LINK_TTL: duration('7d'),
    RESET_LINK_TTL: duration('1h'),
    ALLOW_REGISTRATION: flag('0'),
    REGISTRATION_TTL: duration('24h'),
    AUDIT_RETENTION_DAYS: z.coerce.number().int().min(0).max(100_000).default(365),
    AUDIT_LOG: flag('1'),
    AUDIT_KEY: keyList('key'),
    AUDIT_CHECKPOINT_FILE: z.string().min(1).optional(),
    MFA_KEY: keyList('key'),
    MFA_MAX_FAILURES: z.coerce.number().int().min(1).max(1000).default(5),
    REQUIRE_MFA_FOR_ADMINS: flag('0'),
    WEBAUTHN_RP_ID: z.string().optional(),
    WEBAUTHN_ORIGINS: z.string().optional(),
    AUDIT_CHECKPOINT_INTERVAL: duration('10s'),
    COOKIE_SECURE: flag('1'),
    BODY_LIMIT: z.string().regex(/^\d+(b|kb|mb)$/i, 'expected a size such as 100kb or 5mb').default('64kb'),
    HEADERS_TIMEOUT: duration('10s'),
    REQUEST_TIMEOUT: duration('30s'),
    SHUTDOWN_TIMEOUT: duration('10s'),
    THROTTLE_IP_PER_MINUTE: z.coerce.number().int().min(0).max(1_000_000).default(300),
    THROTTLE_ACCOUNT_FAILURES: z.coerce.number().int().min(0).max(1000).default(10),
    ADMIN_EMAIL: z.email().optional(),
    ADMIN_PASSWORD: z.string().min(1).optional(),
    ADMIN_NAME: z
      .string()
      .default('admin')
      .refine((v) => normalizeName(v) !== undefined, 'expected a user name (1 to 255 visible characters)')
      .transform((v) => normalizeName(v) as string),
    VALIDATE_RESPONSES: flag('0'),
    CORS_ORIGINS: z
      .string()
      .default('')
      .transform((value, ctx) => {
        const origins = value.split(',').map((o) => o.trim()).filter(Boolean);
        for (const origin of origins) {
          if (!parseOrigin(origin)) {
            ctx.addIssue({ code: 'custom', message: `"${origin}" is not an origin (expected like https://app.example.com, no path or trailing slash)` });
            return z.NEVER;
          }
        }
        return origins;
      }),
    METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    DOCS: flag('1'),
    METRICS: flag('1'),
    CONSOLE_DIR: z.string().min(1).optional(),
    WEBHOOK_ALLOW_HTTP: flag('0'),
    WEBHOOK_ALLOW_PRIVATE: flag('0'),
    WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(32),
  })
  .superRefine((env, ctx) => {
    if (env.API_TOKEN_TTL > env.API_TOKEN_MAX_TTL) {
      ctx.addIssue({ code: 'custom', path: ['API_TOKEN_TTL'], message: 'must not exceed API_TOKEN_MAX_TTL' });
    }
    if (env.HEADERS_TIMEOUT > env.REQUEST_TIMEOUT) {
      ctx.addIssue({ code: 'custom', path: ['HEADERS_TIMEOUT'], message: 'must not exceed REQUEST_TIMEOUT' });
    }
    checkWebauthn(env, ctx);
    if ((env.ADMIN_EMAIL === undefined) !== (env.ADMIN_PASSWORD === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [env.ADMIN_EMAIL === undefined ? 'ADMIN_EMAIL' : 'ADMIN_PASSWORD'],
        message: 'ADMIN_EMAIL and ADMIN_PASSWORD go together',
      });
    }
    // A key generated into one host's DATA_DIR is not shared by the other instances of a server
    // database, nor kept apart from the data it protects by a backup of that directory.
    if (env.DATABASE_URL !== undefined) {
      for (const variable of ['JWT_SECRET', 'MFA_KEY', 'AUDIT_KEY'] as const) {
        if (env[variable] !== undefined) continue;
        ctx.addIssue({ code: 'custom', path: [variable], message: 'required with DATABASE_URL: 32 or more random characters (openssl rand -base64 48), the same on every instance' });
      }
    }
  });

/**
 * An origin is scheme://host[:port], nothing more (exactly what a browser sends in `Origin`):
 * the parsed http(s) URL, or undefined when `origin` is anything else (a path, a trailing slash).
 */
function parseOrigin(origin: string): URL | undefined {
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return undefined;
  }
  return ['http:', 'https:'].includes(parsed.protocol) && parsed.origin === origin ? parsed : undefined;
}

/** The service's own URL: APP_URL, else http://localhost:PORT. */
function appUrlOf(env: { APP_URL?: string; PORT: number }): string {
  return (env.APP_URL ?? `http://localhost:${env.PORT}`).replace(/\/+$/, '');
}

/** WEBAUTHN_RP_ID (default: APP_URL's host) and WEBAUTHN_ORIGINS (default: APP_URL's origin). */
function webauthnOf(env: { APP_URL?: string; PORT: number; WEBAUTHN_RP_ID?: string; WEBAUTHN_ORIGINS?: string }): { rpId: string; origins: string[] } {
  const app = new URL(appUrlOf(env));
  const origins = env.WEBAUTHN_ORIGINS === undefined ? [app.origin] : env.WEBAUTHN_ORIGINS.split(',').map((o) => o.trim()).filter(Boolean);
  return { rpId: env.WEBAUTHN_RP_ID?.trim() ?? app.hostname, origins };
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Passkeys' relying party, checked at start: each origin is a bare origin (scheme, host, port;
 * no path, query or trailing slash), `https:` (or `http:` for localhost alone); the RP ID is a
 * lowercase host name (no scheme, port or path) that is each origin's host or a parent domain of
 * it, as browsers require (WebAuthn §5.1.3). Checked when either is set.
 */
function checkWebauthn(env: { APP_URL?: string; PORT: number; WEBAUTHN_RP_ID?: string; WEBAUTHN_ORIGINS?: string }, ctx: z.RefinementCtx): void {
  // Both from APP_URL: they agree by construction, and a deployment that does not use passkeys
  // (an http APP_URL on an internal host, say) still starts.
  if (env.WEBAUTHN_RP_ID === undefined && env.WEBAUTHN_ORIGINS === undefined) return;
  let webauthn: { rpId: string; origins: string[] };
  try {
    webauthn = webauthnOf(env);
  } catch {
    return; // a bad APP_URL is reported as such
  }
  const { rpId, origins } = webauthn;
  if (origins.length === 0) ctx.addIssue({ code: 'custom', path: ['WEBAUTHN_ORIGINS'], message: 'names no origin (expected like https://accounts.example.com)' });
  const hosts: string[] = [];
  for (const origin of origins) {
    const parsed = parseOrigin(origin);
    if (!parsed) {
      ctx.addIssue({ code: 'custom', path: ['WEBAUTHN_ORIGINS'], message: `"${origin}" is not an origin (expected like https://accounts.example.com, no path or trailing slash)` });
      continue;
    }
    if (parsed.protocol === 'http:' && !LOOPBACK_HOSTS.has(parsed.hostname) && env.WEBAUTHN_ORIGINS !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['WEBAUTHN_ORIGINS'], message: `"${origin}": passkeys need https (http only for localhost and 127.0.0.1)` });
      continue;
    }
    hosts.push(parsed.hostname);
  }
  const variable = env.WEBAUTHN_RP_ID === undefined ? 'APP_URL' : 'WEBAUTHN_RP_ID';
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(rpId)) {
    ctx.addIssue({ code: 'custom', path: [variable], message: `"${rpId}" is not a passkey RP ID (expected a lowercase host name such as example.com: no scheme, port or path)` });
    return;
  }
  for (const host of hosts) {
    if (host !== rpId && !host.endsWith(`.${rpId}`)) {
      ctx.addIssue({ code: 'custom', path: [variable], message: `"${rpId}" is neither the host of the origin ${host} nor a parent domain of it (WEBAUTHN_ORIGINS)` });
    }
  }
}

function parseTrustProxy(value: string): boolean | number | string {
  if (['0', 'false', 'no', ''].includes(value)) return false;
  if (['1', 'true', 'yes'].includes(value)) return true;
  if (/^\d+$/.test(value)) return Number(value); // number of hops
  return value; // 'loopback', addresses, subnets: as Express understands them
}

/** Reads the environment once; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const blankless = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(blankless);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const e = result.data;
  const dataDir = path.resolve(e.DATA_DIR);
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    appName: e.APP_NAME,
    appUrl: appUrlOf(e),
    trustProxy: parseTrustProxy(e.TRUST_PROXY),
    bcryptCost: e.BCRYPT_COST,
    dataDir,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    databaseAcquireTimeoutMs: e.DATABASE_ACQUIRE_TIMEOUT,
    databaseStatementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT,
    smtpUrl: e.SMTP_URL,
    mailFrom: e.MAIL_FROM,
    mailOutboxDir: path.resolve(e.MAIL_OUTBOX_DIR ?? path.join(dataDir, 'outbox')),
    mailPollIntervalMs: e.MAIL_POLL_INTERVAL_MS,
    mailConcurrency: e.MAIL_CONCURRENCY,
    jwtSecrets: e.JWT_SECRET ? e.JWT_SECRET.split(',').map((s) => s.trim()) : [],
    loginTokenTtlMs: e.LOGIN_TOKEN_TTL,
    adminLoginTokenTtlMs: e.ADMIN_LOGIN_TOKEN_TTL,
    apiTokenTtlMs: e.API_TOKEN_TTL,
    apiTokenMaxTtlMs: e.API_TOKEN_MAX_TTL,
    welcomeLinkTtlMs: e.WELCOME_LINK_TTL,
    resetLinkTtlMs: e.RESET_LINK_TTL,
    allowRegistration: e.ALLOW_REGISTRATION,
    registrationTtlMs: e.REGISTRATION_TTL,
    auditRetentionDays: e.AUDIT_RETENTION_DAYS,
    auditLog: e.AUDIT_LOG,
    auditKeys: e.AUDIT_KEY ? e.AUDIT_KEY.split(',').map((s) => s.trim()) : [],
    mfaKeys: e.MFA_KEY ? e.MFA_KEY.split(',').map((s) => s.trim()) : [],
    mfaMaxFailures: e.MFA_MAX_FAILURES,
    requireMfaForAdmins: e.REQUIRE_MFA_FOR_ADMINS,
    webauthn: Object.freeze({ ...webauthnOf(e), rpName: e.APP_NAME }),
    auditCheckpointFile: path.resolve(e.AUDIT_CHECKPOINT_FILE ?? path.join(dataDir, 'audit-checkpoint.json')),
    auditCheckpointIntervalMs: e.AUDIT_CHECKPOINT_INTERVAL,
    cookieSecure: e.COOKIE_SECURE,
    bodyLimit: e.BODY_LIMIT,
    headersTimeoutMs: e.HEADERS_TIMEOUT,
    requestTimeoutMs: e.REQUEST_TIMEOUT,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT,
    throttleIpPerMinute: e.THROTTLE_IP_PER_MINUTE,
    throttleAccountFailures: e.THROTTLE_ACCOUNT_FAILURES,
    admin: e.ADMIN_EMAIL && e.ADMIN_PASSWORD ? { email: e.ADMIN_EMAIL, password: e.ADMIN_PASSWORD, name: e.ADMIN_NAME } : undefined,
    validateResponses: e.VALIDATE_RESPONSES,
    corsOrigins: e.CORS_ORIGINS,
    metricsToken: e.METRICS_TOKEN,
    docs: e.DOCS,
    metrics: e.METRICS,
    consoleDir: e.CONSOLE_DIR,
    webhooks: Object.freeze({ allowHttp: e.WEBHOOK_ALLOW_HTTP, allowPrivate: e.WEBHOOK_ALLOW_PRIVATE, concurrency: e.WEBHOOK_CONCURRENCY }),
  });
}

/** The start-up warnings a configuration calls for: the relaxing webhook flags (local development and tests only). */
export function configWarnings(config: Pick<Config, 'webhooks'>): string[] {
  const warnings: string[] = [];
  if (config.webhooks.allowHttp) warnings.push('WEBHOOK_ALLOW_HTTP=1: webhook endpoints may be plain http (events and signatures travel unencrypted); for local development only');
  if (config.webhooks.allowPrivate) warnings.push('WEBHOOK_ALLOW_PRIVATE=1: webhook endpoints may be on loopback, private and internal addresses (no SSRF protection); for local development only');
  return warnings;
}
