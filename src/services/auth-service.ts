import crypto from 'node:crypto';
import { EmailUnverifiedError, ForbiddenError, RateLimitedError, UnauthenticatedError } from '../domain/errors';
import { LOGIN_TOKEN_PREFIX } from '../domain/rules';
import { userTarget, type RequestMeta } from '../domain/audit';
import type { Caller, Clock, User, UserRef } from '../domain/types';
import type { Stores, Transactor } from '../stores';
import { accountThrottleKey, type LoginThrottlePolicy } from '../stores/login-throttle-store';
import type { PasswordHasher } from './password-hasher';
import type { TokenSigner } from './token-signer';

export interface RequestContext {
  readonly ip: string | null;
  readonly userAgent: string | null;
}

export interface LoginResult {
  jwt: string;
  expires: Date;
  passwordChangeRequired: boolean;
}

export interface TokenLifetimes {
  loginMs: number;
  adminLoginMs: number;
}


export class AuthService {
  /** Tokens whose once-a-minute use record is being written by this process. */
  private readonly touching = new Set<string>();

  constructor(
    private readonly stores: Stores,
    private readonly transact: Transactor,
    private readonly hasher: PasswordHasher,
    private readonly signer: TokenSigner,
    private readonly clock: Clock,
    private readonly lifetimes: TokenLifetimes,
    private readonly throttle: LoginThrottlePolicy,
    /** Told of every presented token checked, valid or not (the metrics count them). */
    private readonly onTokenChecked: (valid: boolean) => void = () => undefined,
  ) {}

  /**
   * Unknown user, wrong or unusable password and deactivated user all fail alike, after the same
   * work (a lookup, one throttle statement, one bcrypt comparison at the configured cost), so
   * neither the answer nor its timing tells them apart. The throttle statement takes the
   * attempt's slot before bcrypt runs, counting it as a failure in advance: after
   * `throttle.failures` attempts in a row that were not successes, an account (or an identifier
   * nobody holds: the same answer) is refused with 429 for a delay that doubles with each further
   * failure, and no more than that many are evaluated however many arrive together, on however
   * many instances. The right password starts the count again. A hash of another cost than the
   * configured one is replaced at the first successful login.
   */
  async login(ref: UserRef, password: string, ctx: RequestMeta): Promise<LoginResult> {
    const user = await this.stores.users.findActiveWithPassword(ref);
    const key = user ? accountThrottleKey(user.id) : 'id' in ref ? `id:${ref.id}` : `email:${ref.email.toLowerCase()}`;
    // The identifier tried (never the password), and the account it names if there is one.
    const tried = { identifier: 'id' in ref ? ref.id : ref.email };
    const target = user ? userTarget(user) : null;
    const anonymous = { actor: null, ...ctx };
    const throttled = this.throttle.failures > 0;
    let failures = 0;
    if (throttled) {
      const now = this.clock.now();
      const slot = await this.stores.loginThrottle.take(key, now, this.throttle);
      if (!slot.allowed) throw new RateLimitedError(Math.ceil((slot.until.getTime() - now.getTime()) / 1000), this.throttle.failures);
      failures = slot.failures;
    }
    const ok = await this.hasher.verify(password, user?.passwordHash ?? null);
    if (!user || !ok) {
      // A failure changes nothing (its slot has counted it), and still leaves its audit row.
      await this.transact(async (s) => {
        s.audit.add(anonymous, { action: 'login.failed', target, summary: tried });
        if (throttled && failures === this.throttle.failures) s.audit.add(anonymous, { action: 'login.throttled', target, summary: { ...tried, failures } });
      });
      throw new UnauthenticatedError('Unauthorized');
    }
    // Only the right password learns this (a wrong one got the ordinary 401 above); no token.
    // The right password still starts the count again, as a login would.
    if (!user.emailVerified) {
      await this.transact(async (s) => {
        if (throttled) await s.loginThrottle.clear(key);
        s.audit.add(anonymous, { action: 'login.failed', target, summary: { ...tried, reason: 'email_unverified' } });
      });
      throw new EmailUnverifiedError();
    }
    const rehashed = user.passwordHash && this.hasher.needsRehash(user.passwordHash) ? await this.hasher.hash(password) : undefined;
    const now = this.clock.now();
    const result = await this.transact(async (s) => {
      await s.users.recordLogin(user.id, now);
      if (throttled) await s.loginThrottle.clear(key);
      if (rehashed) await s.users.replacePasswordHash(user.id, user.passwordHash!, rehashed);
      s.audit.add({ actor: { id: user.id, name: user.name }, ...ctx }, { action: 'login.succeeded', target, summary: tried });
      return this.issueLoginToken(s, user, ctx);
    });
    return { ...result, passwordChangeRequired: user.forcePasswordChange };
  }

  /**
   * Checks a presented JWT against its row: it exists, is the user's, is unexpired, the user
   * active. Written with `then` rather than `await`: it runs on every authenticated request, and
   * each await costs a promise and a turn of the microtask queue.
   */
  authenticate(jwt: string, ctx: RequestContext, via: Caller['via']): Promise<Caller> {
    const claims = this.signer.verify(jwt);
    if (!claims) {
      this.onTokenChecked(false);
      return Promise.reject(new UnauthenticatedError());
    }
    const now = this.clock.now();
    return this.stores.tokens.findLive(claims.tokenId, claims.userId, now).then((found) => {
      this.onTokenChecked(found !== undefined);
      if (!found) throw new UnauthenticatedError();
      const caller: Caller = { user: found.user, token: found.token, via, inGroups: found.inGroups };
      // last_used / last_seen: written at most once a minute per token, not on every request.
      // The requests that present a token while its write is under way leave it to that one:
      // else, under load, each of them queued a write of its own and the pile-up delayed every request.
      const { token } = caller;
      const due = !token.lastUsed || now.getTime() - token.lastUsed.getTime() >= 60_000;
      return due && !this.touching.has(token.id) ? this.touch(caller, now, ctx.ip) : caller;
    });
  }

  private async touch(caller: Caller, now: Date, ip: string | null): Promise<Caller> {
    this.touching.add(caller.token.id);
    try {
      if (await this.stores.tokens.touch(caller.token.id, now, ip)) {
        caller.token.lastUsed = now;
        caller.user.lastSeen = now;
      }
    } finally {
      this.touching.delete(caller.token.id);
    }
    return caller;
  }

  /** Ends the presented login token; an API token (or no token) is left alone. */
  async logout(caller: Caller | undefined, ctx: RequestMeta): Promise<void> {
    if (!caller || caller.token.kind !== 'login') return;
    await this.transact(async (s) => {
      if (!(await s.tokens.delete(caller.token.id))) return;
      s.audit.add({ actor: { id: caller.user.id, name: caller.user.name }, ...ctx }, { action: 'session.ended', target: userTarget(caller.user), summary: { how: 'logout' } });
    });
  }

  /** Swaps the presented login token for a new one. */
  async refresh(caller: Caller, ctx: RequestContext): Promise<LoginResult> {
    if (caller.token.kind !== 'login') throw new ForbiddenError('only a login token can be refreshed');
    const fresh = this.newLoginToken(caller.user, ctx);
    // One statement swaps the tokens; of two refreshes of one token, the second finds it gone.
    const token = await this.stores.tokens.replace(caller.token.id, fresh);
    if (!token) throw new UnauthenticatedError();
    return { jwt: this.signer.sign({ userId: caller.user.id, tokenId: token.id }, token.expires), expires: token.expires, passwordChangeRequired: false };
  }

  private async issueLoginToken(s: Stores, user: User, ctx: RequestContext): Promise<Omit<LoginResult, 'passwordChangeRequired'>> {
    const token = await s.tokens.insert({ userId: user.id, ...this.newLoginToken(user, ctx) });
    return { jwt: this.signer.sign({ userId: user.id, tokenId: token.id }, token.expires), expires: token.expires };
  }

  /** A login token's row: 1 day (30 for admins); issuing it is its first use. */
  private newLoginToken(user: User, ctx: RequestContext) {
    const now = this.clock.now();
    const ttl = user.isAdmin ? this.lifetimes.adminLoginMs : this.lifetimes.loginMs;
    return {
      kind: 'login' as const,
      name: LOGIN_TOKEN_PREFIX + crypto.randomBytes(12).toString('hex'),
      scopes: ['api' as const],
      expires: new Date(now.getTime() + ttl),
      userAgent: ctx.userAgent?.slice(0, 512) ?? null,
      used: { at: now, ip: ctx.ip },
    };
  }
}
