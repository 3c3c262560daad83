import ms from 'ms';
import { ConflictError, InvalidTokenError } from '../domain/errors';
import { SYSTEM, userTarget, type AuditContext, type RequestMeta } from '../domain/audit';
import type { Clock } from '../domain/types';
import { alreadyRegisteredMail, verifyEmailLink, verifyEmailMail, type MailSettings } from '../mail/templates';
import type { Stores, Transactor } from '../stores';
import { addressKey, mayMail } from './mail-limits';
import type { PasswordHasher } from './password-hasher';
import { hashLinkToken, newLinkToken } from './password-links';
import { checkName } from './user-service';

/** The background job that completes a registration. */
export const REGISTER_JOB = 'register';

/** At most one "you already have an account" mail a minute per account. */
const ALREADY_MAIL_INTERVAL_MS = 60_000;

export interface RegistrationJob {
  name: string;
  email: string;
  passwordHash: string;
  /** The request that asked (for the audit row). */
  meta?: RequestMeta;
}

/**
 * Self-service registration (API.md §2.4b, Hex's `user register`): an account whose address is
 * proven by a mailed link before it can log in. Whether the address already has an account is
 * found out after the answer, by a background job, so the answer and its timing tell nothing.
 */
export class RegistrationService {
  constructor(
    private readonly stores: Stores,
    private readonly transact: Transactor,
    private readonly hasher: PasswordHasher,
    private readonly clock: Clock,
    private readonly mail: MailSettings,
    private readonly ttlMs: number,
  ) {}

  /**
   * `POST /register`: checks what the caller may be told at once (the password's strength, and
   * whether the name, a public handle, is taken), hashes the password, and queues the rest. The
   * work is the same whether or not the address has an account: one lookup by name, one bcrypt
   * hash, one queued job.
   */
  async register(requestedName: string, email: string, password: string, meta: RequestMeta): Promise<void> {
    const name = checkName(requestedName);
    this.hasher.checkPolicy(password);
    // Taken: an active user has this name or one confusable with it (names are public handles).
    if (await this.stores.users.findActiveHolder(name, undefined)) throw new ConflictError('that name is taken');
    const passwordHash = await this.hasher.hash(password);
    const job: RegistrationJob = { name, email, passwordHash, meta: { ip: meta.ip, userAgent: meta.userAgent, requestId: meta.requestId } };
    await this.transact((s) => s.jobs.enqueue(REGISTER_JOB, { ...job }));
  }

  /**
   * The registration job: a new address gets an unverified account and a verification link; an
   * address that has an account gets "you already have an account" (at most once a minute) and
   * nothing is made. Of concurrent registrations of one address, one makes the account. A name
   * taken since the request was answered makes nothing (the registrant may try again). Beyond
   * MAIL_LIMIT_PER_HOUR registrations an hour with one address, nothing is made or mailed.
   */
  async complete(job: RegistrationJob): Promise<'created' | 'exists' | 'name_taken' | 'limited'> {
    return this.transact(async (s) => {
      const now = this.clock.now();
      if (!(await mayMail(s, [addressKey('register', job.email)], now))) return 'limited';
      const user = await s.users.insertUnverified(job);
      if (!user) {
        const holder = await s.users.findActiveHolder(undefined, job.email);
        if (!holder) return 'name_taken';
        const { hits } = await s.rateLimits.hit(`already-registered:${holder.id}`, ALREADY_MAIL_INTERVAL_MS, now);
        if (hits === 1) await s.outbox.enqueue(alreadyRegisteredMail(this.mail, holder));
        return 'exists';
      }
      const token = newLinkToken();
      await s.emailLinks.insert({ userId: user.id, tokenHash: hashLinkToken(token), purpose: 'verify', email: user.email, created: now, expires: new Date(now.getTime() + this.ttlMs) });
      await s.outbox.enqueue(verifyEmailMail(this.mail, user, verifyEmailLink(this.mail, token), ms(this.ttlMs, { long: true })));
      s.audit.add({ ...SYSTEM, ...job.meta }, { action: 'user.registered', target: userTarget(user), summary: { email: user.email } });
      return 'created';
    });
  }

  /** `POST /register/verify`: a live, unused link proves the address; the account can log in. */
  async verify(token: string, ctx: AuditContext): Promise<void> {
    await this.transact(async (s) => {
      const link = await s.emailLinks.consume(hashLinkToken(token), 'verify', this.clock.now());
      const user = link && (await s.users.findById(link.userId));
      if (!user || !(await s.users.markEmailVerified(user.id))) throw new InvalidTokenError();
      s.audit.add(ctx, { action: 'user.verified', target: userTarget(user), summary: { email: user.email } });
    });
  }
}
