import type { Knex } from 'knex';
import type { Pool } from 'pg';
import { systemClock, type Clock } from '../domain/types';
import { KnexAuditStore, type AuditStore } from './audit-store';
import { KnexEmailLinkStore, type EmailLinkStore } from './email-link-store';
import { KnexGroupStore, type GroupStore } from './group-store';
import { KnexJobStore, type JobStore } from './job-store';
import { KnexLoginThrottleStore, type LoginThrottleStore } from './login-throttle-store';
import { KnexMaintenanceStore, type MaintenanceStore } from './maintenance-store';
import { KnexMfaStore, type MfaStore } from './mfa-store';
import { KnexOutboxStore, type OutboxStore } from './outbox-store';
import { KnexPasswordTokenStore, type PasswordTokenStore } from './password-token-store';
import { KnexRateLimitStore, type RateLimitStore } from './rate-limit-store';
import { KnexSettingsStore, type SettingsStore } from './settings-store';
import { KnexTokenStore, type TokenStore } from './token-store';
import { KnexUserStore, type UserStore } from './user-store';
import { KnexWebauthnChallengeStore, type WebauthnChallengeStore } from './webauthn-challenge-store';
import { KnexWebhookStore, type WebhookStore } from './webhook-store';

export interface Stores {
  users: UserStore;
  tokens: TokenStore;
  passwordTokens: PasswordTokenStore;
  emailLinks: EmailLinkStore;
  outbox: OutboxStore;
  settings: SettingsStore;
  groups: GroupStore;
  loginThrottle: LoginThrottleStore;
  rateLimits: RateLimitStore;
  jobs: JobStore;
  maintenance: MaintenanceStore;
  audit: AuditStore;
  mfa: MfaStore;
  challenges: WebauthnChallengeStore;
  webhooks: WebhookStore;
}

/**
 * The stores over a database handle. `pool` (the pool Knex runs on) lets the hot path run its
 * prepared statements directly; stores bound to a transaction go without it.
 */
export function createStores(db: Knex, pool?: Pool, clock: Clock = systemClock, inTransaction = false, audit = true): Stores {
  return {
    users: new KnexUserStore(db, pool),
    tokens: new KnexTokenStore(db, pool),
    passwordTokens: new KnexPasswordTokenStore(db),
    emailLinks: new KnexEmailLinkStore(db),
    outbox: new KnexOutboxStore(db),
    settings: new KnexSettingsStore(db),
    groups: new KnexGroupStore(db),
    loginThrottle: new KnexLoginThrottleStore(db),
    rateLimits: new KnexRateLimitStore(db),
    jobs: new KnexJobStore(db),
    maintenance: new KnexMaintenanceStore(db),
    audit: new KnexAuditStore(db, clock, inTransaction, audit),
    mfa: new KnexMfaStore(db),
    challenges: new KnexWebauthnChallengeStore(db),
    webhooks: new KnexWebhookStore(db, pool),
  };
}

/** Runs a use case in one transaction, with stores bound to it. */
export type Transactor = <T>(work: (stores: Stores) => Promise<T>) => Promise<T>;

/** A transaction Postgres gave up on to let another through (deadlock, serialization): try it again. */
function isRetryable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001';
}

const ATTEMPTS = 3;

/** Told after a commit what it queued, so the background workers start at once. */
export interface CommitListener {
  mailQueued(): void;
  jobQueued(): void;
  /** Audit entries were written: the chainer chains them soon. */
  audited?(): void;
}

/**
 * `onCommit` hears after a commit whether it queued mail or jobs or wrote audit entries, so they
 * are handled soon. The audit entries the work added are written last, just before the commit. A
 * transaction that lost a deadlock or a serialization conflict runs again (with fresh stores, so
 * nothing of the failed attempt, its mail included, survives), at most three times in all.
 */
export function createTransactor(db: Knex, onCommit?: CommitListener, clock: Clock = systemClock, options: { audit?: boolean } = {}): Transactor {
  return async (work) => {
    for (let attempt = 1; ; attempt++) {
      let stores: Stores | undefined;
      let audited = 0;
      try {
        const result = await db.transaction(async (trx) => {
          const bound = (stores = createStores(trx, undefined, clock, true, options.audit ?? true));
          const value = await work(bound);
          audited = await bound.audit.flush();
          return value;
        });
        if (stores && stores.outbox.enqueued > 0) onCommit?.mailQueued();
        if (stores && stores.jobs.enqueued > 0) onCommit?.jobQueued();
        if (audited > 0) onCommit?.audited?.();
        return result;
      } catch (err) {
        if (attempt >= ATTEMPTS || !isRetryable(err)) throw err;
      }
    }
  };
}
