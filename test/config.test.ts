import path from 'node:path';
import { ConfigError, configWarnings, loadConfig } from '../src/config';

describe('loadConfig', () => {
  it('runs with no configuration at all', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      appName: 'Accounts',
      appUrl: 'http://localhost:3000',
      bcryptCost: 12,
      databaseUrl: undefined,
      smtpUrl: undefined,
      mailFrom: 'Accounts <noreply@localhost>',
      jwtSecrets: [],
      trustProxy: false,
      cookieSecure: true,
      admin: undefined,
      validateResponses: false,
    });
    expect(c.dataDir).toBe(path.resolve('data'));
    expect(c.mailOutboxDir).toBe(path.resolve('data/outbox'));
    expect(c.loginTokenTtlMs).toBe(86_400_000);
    expect(c.adminLoginTokenTtlMs).toBe(30 * 86_400_000);
    expect(c.apiTokenTtlMs).toBe(365 * 86_400_000);
    expect(c.welcomeLinkTtlMs).toBe(7 * 86_400_000);
    expect(c.resetLinkTtlMs).toBe(3_600_000);
    expect([c.allowRegistration, c.registrationTtlMs, c.auditRetentionDays, c.auditLog]).toEqual([false, 86_400_000, 365, true]);
    expect([c.bodyLimit, c.headersTimeoutMs, c.requestTimeoutMs]).toEqual(['64kb', 10_000, 30_000]);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reads typed values', () => {
    const c = loadConfig({
      PORT: '8080',
      BCRYPT_COST: '10',
      JWT_SECRET: `${'a'.repeat(32)}, ${'b'.repeat(40)}`,
      LOGIN_TOKEN_TTL: '12h',
      API_TOKEN_TTL: '3600',
      TRUST_PROXY: 'loopback',
      ADMIN_EMAIL: 'root@example.test',
      ADMIN_PASSWORD: 'secret password',
      APP_URL: 'https://accounts.example.com/',
      ALLOW_REGISTRATION: '1',
      REGISTRATION_TTL: '2d',
      AUDIT_RETENTION_DAYS: '0',
    });
    expect([c.allowRegistration, c.registrationTtlMs, c.auditRetentionDays]).toEqual([true, 2 * 86_400_000, 0]);
    expect(c.port).toBe(8080);
    expect(c.bcryptCost).toBe(10);
    expect(c.jwtSecrets).toEqual(['a'.repeat(32), 'b'.repeat(40)]);
    expect(c.loginTokenTtlMs).toBe(12 * 3_600_000);
    expect(c.apiTokenTtlMs).toBe(3_600_000);
    expect(c.trustProxy).toBe('loopback');
    expect(c.admin).toEqual({ email: 'root@example.test', password: 'secret password', name: 'admin' });
    expect(c.appUrl).toBe('https://accounts.example.com');
  });

  it.each([
    ['PORT', 'eighty'],
    ['BCRYPT_COST', '99'],
    ['LOG_LEVEL', 'loud'],
    ['DATABASE_URL', 'not a url'],
    ['JWT_SECRET', 'short'],
    ['LOGIN_TOKEN_TTL', 'forever'],
    ['COOKIE_SECURE', 'maybe'],
    ['ADMIN_EMAIL', 'not-an-email'],
    ['ALLOW_REGISTRATION', 'perhaps'],
    ['REGISTRATION_TTL', 'a while'],
    ['AUDIT_RETENTION_DAYS', '-1'],
    ['AUDIT_LOG', 'off-ish'],
    ['BODY_LIMIT', '1gb'],
    ['REQUEST_TIMEOUT', 'when it comes'],
  ])('stops on a bad %s, naming it', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^Invalid configuration:\\n  ${name}: `));
  });

  it.each([
    'replace-this-with-48-random-characters-0123456789',
    `${'a'.repeat(32)},replace-this-with-48-random-characters-0123456789`,
    'change-me-change-me-change-me-change-me',
    'your_jwt_secret_goes_here_at_least_32_chars',
    'PLACEHOLDER-0123456789abcdefghijklmnopqrstuvwxyz',
  ])('refuses a placeholder JWT_SECRET (%s), even when long enough', (value) => {
    expect(() => loadConfig({ JWT_SECRET: value })).toThrow(/^Invalid configuration:\n  JWT_SECRET: a placeholder, not a secret/);
  });

  it('takes a generated JWT_SECRET', () => {
    const secret = 'q3J6mU1x8bZ0c+Yw/HfT2nLkPa9sVdRe4GiBo7XjCl5NtMy0uEzK1WpQhS6rIv3A';
    expect(loadConfig({ JWT_SECRET: secret }).jwtSecrets).toEqual([secret]);
  });

  it('requires every key with DATABASE_URL (JWT_SECRET, MFA_KEY, AUDIT_KEY), naming each missing one', () => {
    const DATABASE_URL = 'postgres://accounts@db.example.test/accounts';
    const key = 'k'.repeat(32);
    expect(() => loadConfig({ DATABASE_URL })).toThrow(
      /^Invalid configuration:\n {2}JWT_SECRET: required with DATABASE_URL[^\n]*\n {2}MFA_KEY: required with DATABASE_URL[^\n]*\n {2}AUDIT_KEY: required with DATABASE_URL[^\n]*$/,
    );
    expect(() => loadConfig({ DATABASE_URL, JWT_SECRET: key, AUDIT_KEY: key })).toThrow(/^Invalid configuration:\n {2}MFA_KEY: required with DATABASE_URL[^\n]*$/);
    expect(() => loadConfig({ DATABASE_URL, MFA_KEY: key, AUDIT_KEY: key })).toThrow(/^Invalid configuration:\n {2}JWT_SECRET: required with DATABASE_URL[^\n]*$/);
    expect(loadConfig({ DATABASE_URL, JWT_SECRET: key, MFA_KEY: key, AUDIT_KEY: key })).toMatchObject({ jwtSecrets: [key], mfaKeys: [key], auditKeys: [key] });
    // The embedded default makes each in DATA_DIR.
    expect(loadConfig({})).toMatchObject({ jwtSecrets: [], mfaKeys: [], auditKeys: [] });
  });

  it('takes MFA_KEY as a comma-separated list of keys of 32+ characters, none a placeholder', () => {
    const keys = ['m'.repeat(32), 'n'.repeat(48)];
    expect(loadConfig({ MFA_KEY: keys.join(' , ') }).mfaKeys).toEqual(keys);
    expect(() => loadConfig({ MFA_KEY: `${'m'.repeat(32)},short` })).toThrow(/^Invalid configuration:\n {2}MFA_KEY: each comma-separated key must be at least 32 characters/);
    expect(() => loadConfig({ MFA_KEY: 'replace-me-replace-me-replace-me-replace-me' })).toThrow(/^Invalid configuration:\n {2}MFA_KEY: a placeholder/);
  });

  it('reads MFA_MAX_FAILURES (default 5, at least 1) and REQUIRE_MFA_FOR_ADMINS (default off)', () => {
    expect(loadConfig({})).toMatchObject({ mfaMaxFailures: 5, requireMfaForAdmins: false });
    expect(loadConfig({ MFA_MAX_FAILURES: '3', REQUIRE_MFA_FOR_ADMINS: '1' })).toMatchObject({ mfaMaxFailures: 3, requireMfaForAdmins: true });
    expect(() => loadConfig({ MFA_MAX_FAILURES: '0' })).toThrow(/^Invalid configuration:\n {2}MFA_MAX_FAILURES: /);
    expect(() => loadConfig({ REQUIRE_MFA_FOR_ADMINS: 'maybe' })).toThrow(/^Invalid configuration:\n {2}REQUIRE_MFA_FOR_ADMINS: expected 0 or 1/);
  });

  it('reads MAIL_CONCURRENCY (default 8, 1 to 64)', () => {
    expect(loadConfig({}).mailConcurrency).toBe(8);
    expect(loadConfig({ MAIL_CONCURRENCY: '1' }).mailConcurrency).toBe(1);
    expect(loadConfig({ MAIL_CONCURRENCY: '64' }).mailConcurrency).toBe(64);
    for (const bad of ['0', '65', '2.5', 'many']) expect(() => loadConfig({ MAIL_CONCURRENCY: bad })).toThrow(/^Invalid configuration:\n {2}MAIL_CONCURRENCY: /);
  });

  it('takes AUDIT_KEY as a comma-separated list of keys of 32+ characters', () => {
    const keys = ['k'.repeat(32), 'l'.repeat(48)];
    const c = loadConfig({ DATABASE_URL: 'postgres://accounts@db.example.test/accounts', JWT_SECRET: 'j'.repeat(32), MFA_KEY: 'm'.repeat(32), AUDIT_KEY: keys.join(', ') });
    expect(c.auditKeys).toEqual(keys);
    expect(c.auditCheckpointFile).toBe(path.resolve('data/audit-checkpoint.json'));
    expect(c.auditCheckpointIntervalMs).toBe(10_000);
    expect(() => loadConfig({ AUDIT_KEY: `${'k'.repeat(32)},short` })).toThrow(/^Invalid configuration:\n {2}AUDIT_KEY: each comma-separated key must be at least 32 characters/);
    expect(() => loadConfig({ AUDIT_KEY: 'change-me-change-me-change-me-change-me' })).toThrow(/^Invalid configuration:\n {2}AUDIT_KEY: a placeholder/);
    expect(loadConfig({ AUDIT_CHECKPOINT_FILE: '/srv/shipped/audit-checkpoint.json', AUDIT_CHECKPOINT_INTERVAL: '1m' })).toMatchObject({ auditCheckpointFile: '/srv/shipped/audit-checkpoint.json', auditCheckpointIntervalMs: 60_000 });
  });

  it('takes the passkey relying party from APP_URL by default: its host as RP ID, its origin as the one origin, APP_NAME as the name', () => {
    expect(loadConfig({}).webauthn).toEqual({ rpId: 'localhost', rpName: 'Accounts', origins: ['http://localhost:3000'] });
    expect(loadConfig({ APP_URL: 'https://Accounts.Example.com:8443/base/', APP_NAME: 'Acme' }).webauthn).toEqual({
      rpId: 'accounts.example.com',
      rpName: 'Acme',
      origins: ['https://accounts.example.com:8443'],
    });
    // Both from APP_URL: a deployment without passkeys on an http APP_URL still starts.
    expect(loadConfig({ APP_URL: 'http://accounts.internal:3000' }).webauthn).toMatchObject({ rpId: 'accounts.internal', origins: ['http://accounts.internal:3000'] });
  });

  it('reads WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS: a parent domain of every origin, several origins', () => {
    expect(loadConfig({ APP_URL: 'https://accounts.example.com', WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://accounts.example.com, https://app.example.com,https://example.com' }).webauthn).toEqual({
      rpId: 'example.com',
      rpName: 'Accounts',
      origins: ['https://accounts.example.com', 'https://app.example.com', 'https://example.com'],
    });
    // Behind a proxy: the public origin, not the listening one.
    expect(loadConfig({ APP_URL: 'http://10.0.0.5:3000', WEBAUTHN_RP_ID: 'id.example.org', WEBAUTHN_ORIGINS: 'https://id.example.org' }).webauthn).toMatchObject({ rpId: 'id.example.org', origins: ['https://id.example.org'] });
    // http for localhost alone (development).
    expect(loadConfig({ WEBAUTHN_RP_ID: 'localhost', WEBAUTHN_ORIGINS: 'http://localhost:5173,http://localhost:3000' }).webauthn.origins).toEqual(['http://localhost:5173', 'http://localhost:3000']);
  });

  it.each([
    [{ WEBAUTHN_ORIGINS: 'https://accounts.example.com/login' }, 'WEBAUTHN_ORIGINS', /is not an origin/],
    [{ WEBAUTHN_ORIGINS: 'https://accounts.example.com/' }, 'WEBAUTHN_ORIGINS', /is not an origin/],
    [{ WEBAUTHN_ORIGINS: 'https://accounts.example.com?x=1' }, 'WEBAUTHN_ORIGINS', /is not an origin/],
    [{ WEBAUTHN_ORIGINS: 'ftp://accounts.example.com' }, 'WEBAUTHN_ORIGINS', /is not an origin/],
    [{ WEBAUTHN_ORIGINS: 'accounts.example.com' }, 'WEBAUTHN_ORIGINS', /is not an origin/],
    [{ WEBAUTHN_ORIGINS: ' , ' }, 'WEBAUTHN_ORIGINS', /names no origin/],
    [{ WEBAUTHN_ORIGINS: 'http://accounts.example.com', WEBAUTHN_RP_ID: 'accounts.example.com' }, 'WEBAUTHN_ORIGINS', /need https/],
    [{ WEBAUTHN_RP_ID: 'https://example.com' }, 'WEBAUTHN_RP_ID', /is not a passkey RP ID/],
    [{ WEBAUTHN_RP_ID: 'example.com:443' }, 'WEBAUTHN_RP_ID', /is not a passkey RP ID/],
    [{ WEBAUTHN_RP_ID: 'example.com/x' }, 'WEBAUTHN_RP_ID', /is not a passkey RP ID/],
    [{ WEBAUTHN_RP_ID: 'Example.com' }, 'WEBAUTHN_RP_ID', /is not a passkey RP ID/],
    [{ WEBAUTHN_RP_ID: 'other.example.com', APP_URL: 'https://accounts.example.com' }, 'WEBAUTHN_RP_ID', /neither the host of the origin accounts.example.com nor a parent domain/],
    [{ WEBAUTHN_RP_ID: 'ample.com', APP_URL: 'https://accounts.example.com' }, 'WEBAUTHN_RP_ID', /nor a parent domain/],
    [{ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://accounts.example.com,https://evil.test' }, 'WEBAUTHN_RP_ID', /origin evil.test/],
    [{ APP_URL: 'https://accounts.example.com', WEBAUTHN_ORIGINS: 'https://example.com' }, 'APP_URL', /neither the host of the origin example.com/],
  ])('stops on a passkey setting that browsers would refuse (%j), naming %s', (env, name, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(new RegExp(`^Invalid configuration:\\n  ${name}: `));
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('reads the slow-sender timeouts, and wants the headers in no later than the whole request', () => {
    expect(loadConfig({ HEADERS_TIMEOUT: '2s', REQUEST_TIMEOUT: '1m' })).toMatchObject({ headersTimeoutMs: 2000, requestTimeoutMs: 60_000 });
    expect(() => loadConfig({ HEADERS_TIMEOUT: '1m', REQUEST_TIMEOUT: '30s' })).toThrow(/HEADERS_TIMEOUT: must not exceed REQUEST_TIMEOUT/);
  });

  it('reads the database timeouts (a connection wait of 3 s, a statement timeout of 5 s by default)', () => {
    expect(loadConfig({})).toMatchObject({ databaseAcquireTimeoutMs: 3000, databaseStatementTimeoutMs: 5000 });
    expect(loadConfig({ DATABASE_ACQUIRE_TIMEOUT: '1500ms', DATABASE_STATEMENT_TIMEOUT: '10' })).toMatchObject({ databaseAcquireTimeoutMs: 1500, databaseStatementTimeoutMs: 10_000 });
    expect(() => loadConfig({ DATABASE_ACQUIRE_TIMEOUT: '0' })).toThrow(/DATABASE_ACQUIRE_TIMEOUT: "0" is not a duration/);
    expect(() => loadConfig({ DATABASE_STATEMENT_TIMEOUT: 'soon' })).toThrow(/DATABASE_STATEMENT_TIMEOUT: "soon" is not a duration/);
  });

  it('wants ADMIN_EMAIL and ADMIN_PASSWORD together', () => {
    expect(() => loadConfig({ ADMIN_EMAIL: 'root@example.test' })).toThrow(/ADMIN_PASSWORD/);
  });

  it('holds ADMIN_NAME to the name rule and stores its NFKC form', () => {
    const admin = { ADMIN_EMAIL: 'root@example.test', ADMIN_PASSWORD: 'a long password' };
    expect(() => loadConfig({ ...admin, ADMIN_NAME: 'root\u200b' })).toThrow(/^Invalid configuration:\n  ADMIN_NAME: expected a user name/);
    expect(() => loadConfig({ ...admin, ADMIN_NAME: 'root ' })).toThrow(/ADMIN_NAME/);
    expect(loadConfig({ ...admin, ADMIN_NAME: '\uff52\uff4f\uff4f\uff54' }).admin?.name).toBe('root');
  });

  it('reads the webhook settings (API.md §2.9): strict by default, each relaxing flag a start-up warning', () => {
    const strict = loadConfig({});
    expect(strict.webhooks).toEqual({ allowHttp: false, allowPrivate: false, concurrency: 32 });
    expect(configWarnings(strict)).toEqual([]);
    const relaxed = loadConfig({ WEBHOOK_ALLOW_HTTP: '1', WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_CONCURRENCY: '4' });
    expect(relaxed.webhooks).toEqual({ allowHttp: true, allowPrivate: true, concurrency: 4 });
    expect(configWarnings(relaxed)).toEqual([expect.stringMatching(/^WEBHOOK_ALLOW_HTTP=1: /), expect.stringMatching(/^WEBHOOK_ALLOW_PRIVATE=1: /)]);
    expect(() => loadConfig({ WEBHOOK_CONCURRENCY: '0' })).toThrow(/WEBHOOK_CONCURRENCY/);
    expect(() => loadConfig({ WEBHOOK_ALLOW_PRIVATE: 'maybe' })).toThrow(/WEBHOOK_ALLOW_PRIVATE/);
  });
});
