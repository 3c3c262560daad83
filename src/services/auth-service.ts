import crypto from 'node:crypto';
import { ConflictError, EmailUnverifiedError, ForbiddenError, MfaFailedError, RateLimitedError, UnauthenticatedError, ValidationError } from '../domain/errors';
import { MFA_PENDING_TOKEN_TTL_MS, parseMfaCode, WEBAUTHN_CHALLENGE_TTL_MS, type ChallengePurpose, type Factor, type FactorRef } from '../domain/mfa';
import { passkeyCounterMail, recoveryCodeUsedMail, type MailSettings } from '../mail/templates';
import { LOGIN_TOKEN_PREFIX } from '../domain/rules';
import { userTarget, type RequestMeta } from '../domain/audit';
import type { Aal, Caller, Clock, User, UserRef } from '../domain/types';
import type { Stores, Transactor } from '../stores';
import { accountThrottleKey, mfaThrottleKey, type LoginThrottlePolicy } from '../stores/login-throttle-store';
import type { MfaService } from './mfa-service';
import { counterWentBack, type AuthenticationResponseJSON, type PublicKeyCredentialRequestOptionsJSON } from './passkeys';
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
  /** The user has MFA: the token is `aal1`, for the second step; these are the verified factors. */
  mfaRequired?: FactorRef[];
  /** REQUIRE_MFA_FOR_ADMINS: a system admin without MFA, whose token may only set up a factor. */
  mfaEnrollmentRequired?: boolean;
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
    private readonly mfa: MfaService,
    private readonly options: { requireMfaForAdmins: boolean; mail: MailSettings },
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
      // A user with MFA gets a short aal1 token for the second step, and the factors to choose from.
      const factors = user.mfaEnabled ? (await s.mfa.listFactors(user.id, now)).filter((f) => f.verified).map(({ id, type, name }) => ({ id, type, name })) : undefined;
      return { ...(await this.issueLoginToken(s, user, ctx, 'aal1', factors ? MFA_PENDING_TOKEN_TTL_MS : undefined)), factors };
    });
    return {
      jwt: result.jwt,
      expires: result.expires,
      passwordChangeRequired: user.forcePasswordChange,
      mfaRequired: result.factors,
      mfaEnrollmentRequired: this.options.requireMfaForAdmins && user.isAdmin && !user.mfaEnabled ? true : undefined,
    };
  }

  /**
   * The second step of a login (API.md §2.8): the `aal1` token of a user with MFA and a code. The
   * attempt takes its slot of the account's MFA throttle first (429 once MFA_MAX_FAILURES are
   * spent). One transaction then accepts the code (a TOTP step recorded, or a recovery code
   * used, each in one statement: one winner), starts the count again and swaps the token for an
   * `aal2` one; of two concurrent successes with one token, the second finds it gone (401) and
   * its code is not spent. A wrong code leaves the token and an audit entry: `401 mfa_failed`.
   */
  async completeMfa(caller: Caller, proof: { code: string } | { webauthn: AuthenticationResponseJSON }, ctx: RequestMeta): Promise<LoginResult> {
    const { user, token } = caller;
    this.pendingSecondStep(caller);
    if ('webauthn' in proof) return this.completeMfaWithPasskey(caller, proof.webauthn, ctx);
    const code = parseMfaCode(proof.code);
    if (!code) throw new ValidationError('code must be 6 digits or a recovery code', [{ path: '/body/code', message: 'is neither a 6-digit code nor a recovery code' }]);
    const key = mfaThrottleKey(user.id);
    await this.mfa.takeSlot(key);
    const actor = { actor: { id: user.id, name: user.name }, ...ctx };
    const now = this.clock.now();
    const result = await this.transact(async (s) => {
      const accepted = await this.mfa.acceptLoginCode(s, user, code, now);
      if (!accepted) {
        s.audit.add(actor, { action: 'mfa.failed', target: userTarget(user), summary: { stage: 'login', kind: code.kind } });
        return undefined;
      }
      await s.loginThrottle.clear(key);
      const fresh = await s.tokens.replace(token.id, this.newLoginToken(user, ctx, 'aal2'));
      if (!fresh) throw new UnauthenticatedError(); // a concurrent second step (or a logout) won: nothing of this one stays
      s.audit.add(actor, {
        action: 'login.mfa_succeeded',
        target: userTarget(user),
        summary: accepted.method === 'totp' ? { method: 'totp', factor: accepted.factor.id } : { method: 'recovery_code' },
      });
      if (accepted.method === 'recovery_code') {
        s.audit.add(actor, { action: 'mfa.recovery_code_used', target: userTarget(user), summary: { remaining: accepted.remaining } });
        await s.outbox.enqueue(recoveryCodeUsedMail(this.options.mail, user, accepted.remaining));
      }
      return { jwt: this.signer.sign({ userId: user.id, tokenId: fresh.id }, fresh.expires), expires: fresh.expires };
    });
    if (!result) throw new MfaFailedError('login');
    return { ...result, passwordChangeRequired: user.forcePasswordChange };
  }

  /** 403 unless the caller's token is the `aal1` token of a user with MFA (a second step pending). */
  private pendingSecondStep(caller: Caller): void {
    const { user, token } = caller;
    if (token.kind !== 'login' || token.aal !== 'aal1' || !user.mfaEnabled) throw new ForbiddenError('no second step is pending for this token');
  }

  /**
   * WebAuthn request options for the second step (API.md §2.8): the user's verified passkeys,
   * a fresh challenge stored for this user (single use, 5 minutes). A user without a passkey:
   * `409 conflict`.
   */
  async mfaOptions(caller: Caller): Promise<PublicKeyCredentialRequestOptionsJSON> {
    this.pendingSecondStep(caller);
    const now = this.clock.now();
    const credentials = await this.mfa.credentialsOf(caller.user.id, now);
    if (credentials.length === 0) throw new ConflictError('you have no passkey: use a code of your authenticator app or a recovery code');
    const options = await this.mfa.passkeys.authenticationOptions(credentials, 'preferred');
    await this.issueChallenge(options.challenge, 'mfa', caller.user.id, now);
    return options;
  }

  /** Request options for a sign-in with a discoverable passkey: no user named; the challenge stored for none. */
  async passkeyOptions(): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const options = await this.mfa.passkeys.authenticationOptions(undefined, 'required');
    await this.issueChallenge(options.challenge, 'passkey', null, this.clock.now());
    return options;
  }

  private async issueChallenge(challenge: string, purpose: ChallengePurpose, userId: string | null, now: Date): Promise<void> {
    await this.stores.challenges.issue({ challenge, purpose, userId, factorId: null, expires: new Date(now.getTime() + WEBAUTHN_CHALLENGE_TTL_MS) });
  }

  /**
   * The second step with a passkey: the account's MFA slot taken first (as for codes); then, in
   * one transaction, the challenge spent (whatever follows), the assertion checked against one
   * of the user's verified passkeys (its user handle, if given, the user's), the counter
   * recorded in one conditional statement, and the token swapped for an `aal2` one. Anything
   * else: `401 mfa_failed`, the token stays.
   */
  private async completeMfaWithPasskey(caller: Caller, response: AuthenticationResponseJSON, ctx: RequestMeta): Promise<LoginResult> {
    const { user, token } = caller;
    const key = mfaThrottleKey(user.id);
    await this.mfa.takeSlot(key);
    const actor = { actor: { id: user.id, name: user.name }, ...ctx };
    const now = this.clock.now();
    const passkeys = this.mfa.passkeys;
    const challenge = passkeys.challengeOf(response);
    // Spent in a statement of its own, before the transaction: were it spent inside, a
    // transaction rolled back by a concurrent second step (the token gone) would bring it back.
    const spent = challenge !== undefined && (await this.stores.challenges.consume(challenge, 'mfa', user.id, now));
    const result = await this.transact(async (s) => {
      const fail = (factor?: Factor) => {
        s.audit.add(actor, { action: 'mfa.failed', target: userTarget(user), summary: { stage: 'login', kind: 'webauthn', ...(factor ? { factor: factor.id } : {}) } });
        return undefined;
      };
      if (!spent || challenge === undefined) return fail();
      const factor = typeof response.id === 'string' ? await s.mfa.findByCredentialId(response.id) : undefined;
      if (!factor?.webauthn || factor.userId !== user.id) return fail();
      const handle = response.response?.userHandle;
      if (handle !== undefined && handle !== null && handle !== passkeys.userHandleText(user.id)) return fail(factor);
      const checked = await passkeys.verifyAuthentication(response, challenge, factor.webauthn, false);
      if (!checked) return fail(factor);
      if (counterWentBack(factor.webauthn.counter, checked.newCounter)) {
        await this.counterRejected(s, actor, user, factor, checked.newCounter);
        return fail(factor);
      }
      if (!(await s.mfa.acceptWebauthnCounter(factor.id, checked.newCounter, now))) return fail(factor); // a concurrent use of one assertion won
      await s.loginThrottle.clear(key);
      const fresh = await s.tokens.replace(token.id, this.newLoginToken(user, ctx, 'aal2'));
      if (!fresh) throw new UnauthenticatedError(); // a concurrent second step (or a logout) won: nothing of this one stays
      s.audit.add(actor, { action: 'login.mfa_succeeded', target: userTarget(user), summary: { method: 'webauthn', factor: factor.id } });
      return { jwt: this.signer.sign({ userId: user.id, tokenId: fresh.id }, fresh.expires), expires: fresh.expires };
    });
    if (!result) throw new MfaFailedError('login', 'passkey');
    return { ...result, passwordChangeRequired: user.forcePasswordChange };
  }

  /**
   * A sign-in with a passkey and no password (API.md §2.8): the challenge spent first (of no
   * user: the options named none), the verified passkey found by its credential id, its user
   * active with a proven address, the user handle required and the user's, the account's MFA
   * slot taken (429 once spent), the assertion checked with user verification required, the
   * counter recorded in one conditional statement; then a new `aal2` login token (1 day, 30 for
   * admins). Anything else is the ordinary `401 unauthenticated`, saying nothing about why, and
   * changes nothing but the spent challenge, the slot and an audit entry (when the credential
   * named a user).
   */
  async passkeyLogin(response: AuthenticationResponseJSON, ctx: RequestMeta): Promise<LoginResult> {
    const passkeys = this.mfa.passkeys;
    const now = this.clock.now();
    const challenge = passkeys.challengeOf(response);
    if (challenge === undefined || !(await this.stores.challenges.consume(challenge, 'passkey', null, now))) throw new UnauthenticatedError();
    const factor = typeof response.id === 'string' ? await this.stores.mfa.findByCredentialId(response.id) : undefined;
    const user = factor ? await this.stores.users.findById(factor.userId) : undefined;
    if (!factor?.webauthn || !user || user.deactivated || !user.emailVerified) throw new UnauthenticatedError();
    const credential = factor.webauthn;
    const actor = { actor: { id: user.id, name: user.name }, ...ctx };
    // A refused attempt proved nothing about who made it: no actor, as a failed password login.
    const anonymous = { actor: null, ...ctx };
    const fail = async (counter?: number): Promise<never> => {
      await this.transact(async (s) => {
        s.audit.add(anonymous, { action: 'mfa.failed', target: userTarget(user), summary: { stage: 'passkey', factor: factor.id } });
        if (counter !== undefined) await this.counterRejected(s, anonymous, user, factor, counter);
      });
      throw new UnauthenticatedError();
    };
    if (response.response?.userHandle !== passkeys.userHandleText(user.id)) return fail();
    const key = mfaThrottleKey(user.id);
    await this.mfa.takeSlot(key);
    const checked = await passkeys.verifyAuthentication(response, challenge, credential, true);
    if (!checked) return fail();
    if (counterWentBack(credential.counter, checked.newCounter)) return fail(checked.newCounter);
    const issued = await this.transact(async (s) => {
      if (!(await s.users.lockActive(user.id))) return undefined;
      if (!(await s.mfa.acceptWebauthnCounter(factor.id, checked.newCounter, now))) return undefined; // a concurrent use of one assertion won
      await s.users.recordLogin(user.id, now);
      await s.loginThrottle.clear(key);
      s.audit.add(actor, { action: 'login.passkey_succeeded', target: userTarget(user), summary: { factor: factor.id } });
      return this.issueLoginToken(s, user, ctx, 'aal2');
    });
    if (!issued) return fail();
    return { ...issued, passwordChangeRequired: user.forcePasswordChange };
  }

  /** A counter that did not go up: the audit entry and the mail (the sign-in itself is refused by the caller). */
  private async counterRejected(s: Stores, actor: RequestMeta & { actor: { id: string; name: string } | null }, user: User, factor: Factor, presented: number): Promise<void> {
    s.audit.add(actor, { action: 'mfa.passkey_counter_rejected', target: userTarget(user), summary: { factor: factor.id, stored: factor.webauthn?.counter ?? 0, presented } });
    await s.outbox.enqueue(passkeyCounterMail(this.options.mail, user, factor.name));
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

  /** Swaps the presented login token for a new one (the policy, `tokens: login`, refuses API tokens). */
  async refresh(caller: Caller, ctx: RequestContext): Promise<LoginResult> {
    const fresh = this.newLoginToken(caller.user, ctx, caller.token.aal);
    // One statement swaps the tokens; of two refreshes of one token, the second finds it gone.
    const token = await this.stores.tokens.replace(caller.token.id, fresh);
    if (!token) throw new UnauthenticatedError();
    return { jwt: this.signer.sign({ userId: caller.user.id, tokenId: token.id }, token.expires), expires: token.expires, passwordChangeRequired: false };
  }

  private async issueLoginToken(s: Stores, user: User, ctx: RequestContext, aal: Aal, maxTtlMs?: number): Promise<{ jwt: string; expires: Date }> {
    const token = await s.tokens.insert({ userId: user.id, ...this.newLoginToken(user, ctx, aal, maxTtlMs) });
    return { jwt: this.signer.sign({ userId: user.id, tokenId: token.id }, token.expires), expires: token.expires };
  }

  /** A login token's row: 1 day (30 for admins), or less (`maxTtlMs`); issuing it is its first use. */
  private newLoginToken(user: User, ctx: RequestContext, aal: Aal, maxTtlMs = Infinity) {
    const now = this.clock.now();
    const ttl = Math.min(user.isAdmin ? this.lifetimes.adminLoginMs : this.lifetimes.loginMs, maxTtlMs);
    return {
      kind: 'login' as const,
      aal,
      name: LOGIN_TOKEN_PREFIX + crypto.randomBytes(12).toString('hex'),
      scopes: ['api' as const],
      expires: new Date(now.getTime() + ttl),
      userAgent: ctx.userAgent?.slice(0, 512) ?? null,
      used: { at: now, ip: ctx.ip },
    };
  }
}
