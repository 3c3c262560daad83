import crypto from 'node:crypto';
import { Secret, TOTP } from 'otpauth';
import QRCode from 'qrcode';
import { userTarget, type AuditContext } from '../domain/audit';
import { ConflictError, MfaFailedError, NotFoundError, RateLimitedError, UnauthenticatedError, ValidationError } from '../domain/errors';
import { MAX_FACTORS, PENDING_FACTOR_TTL_MS, WEBAUTHN_CHALLENGE_TTL_MS, type Factor, type FactorType, type MfaCodeInput, type WebauthnCredential } from '../domain/mfa';
import type { Caller, Clock, User } from '../domain/types';
import { factorAddedMail, factorRemovedMail, mfaResetMail, type MailSettings } from '../mail/templates';
import type { Stores, Transactor } from '../stores';
import { mfaThrottleKey, type LoginThrottlePolicy } from '../stores/login-throttle-store';
import type { CurrentPasswordCheck } from './current-password';
import type { MfaSecrets } from './mfa-secrets';
import type { Passkeys, PublicKeyCredentialCreationOptionsJSON, RegistrationResponseJSON } from './passkeys';

/** RFC 6238 as API.md §2.8 fixes it: SHA-1, 6 digits, 30 s steps, the step before and after accepted. */
const TOTP_PARAMS = { algorithm: 'SHA1', digits: 6, period: 30 } as const;
const TOTP_WINDOW = 1;

export interface NewTotpFactor {
  factor: Factor;
  /** base32, to type by hand; shown once. */
  secret: string;
  uri: string;
  qrSvg: string;
}

export interface NewWebauthnFactor {
  factor: Factor;
  /** WebAuthn creation options for the browser (`navigator.credentials.create`), with a fresh challenge. */
  options: PublicKeyCredentialCreationOptionsJSON;
}

/** What confirms a pending factor: a code (totp) or a registration response (webauthn). */
export type FactorProof = { code: string } | { credential: RegistrationResponseJSON };

/** A code that checked out at the second step of a login. */
export type AcceptedCode = { method: 'totp'; factor: Factor } | { method: 'recovery_code'; remaining: number };

/**
 * Two-factor sign-in's use cases (API.md §2.8): adding, confirming and removing factors,
 * recovery codes, an admin's reset, and checking a code at the second step of a login (for
 * AuthService, in its transaction). Every change to a user's factors runs with the user's row
 * locked, so concurrent ones run one after the other (one set of recovery codes, one
 * `mfa_enabled` flip). Type-specific work goes through the `type` switch (`totp` here, the
 * WebAuthn checks in Passkeys).
 */
export class MfaService {
  constructor(
    private readonly stores: Pick<Stores, 'users' | 'mfa' | 'loginThrottle'>,
    private readonly transact: Transactor,
    private readonly secrets: MfaSecrets,
    private readonly currentPassword: CurrentPasswordCheck,
    private readonly clock: Clock,
    private readonly mail: MailSettings,
    /** Wrong codes per account (MFA_MAX_FAILURES), apart from the password's count. */
    readonly throttle: LoginThrottlePolicy,
    readonly passkeys: Passkeys,
  ) {}

  /** Verified factors and pending ones not yet dropped, oldest first. */
  async list(user: User): Promise<Factor[]> {
    return this.stores.mfa.listFactors(user.id, this.pendingSince());
  }

  /**
   * Adds a pending factor, with the current password: an authenticator app (its secret, URI and
   * QR code returned this once) or a passkey (WebAuthn creation options, whose challenge is
   * stored for this user and factor, single use, 5 minutes).
   */
  async enrol(caller: Caller, input: { type: 'totp'; name: string; currentPassword: string }, ctx: AuditContext): Promise<NewTotpFactor>;
  async enrol(caller: Caller, input: { type: 'webauthn'; name: string; currentPassword: string }, ctx: AuditContext): Promise<NewWebauthnFactor>;
  async enrol(caller: Caller, input: { type: FactorType; name: string; currentPassword: string }, ctx: AuditContext): Promise<NewTotpFactor | NewWebauthnFactor>;
  async enrol(caller: Caller, input: { type: FactorType; name: string; currentPassword: string }, ctx: AuditContext): Promise<NewTotpFactor | NewWebauthnFactor> {
    const user = caller.user;
    const withPassword = await this.stores.users.findActiveWithPassword({ id: user.id });
    if (!withPassword) throw new UnauthenticatedError();
    await this.currentPassword.check(user.id, withPassword.passwordHash, input.currentPassword);
    const id = crypto.randomUUID();
    const now = this.clock.now();
    let secret: Buffer | undefined;
    let options: PublicKeyCredentialCreationOptionsJSON | undefined;
    switch (input.type) {
      case 'totp':
        secret = this.secrets.newTotpSecret();
        break;
      case 'webauthn':
        options = await this.passkeys.registrationOptions(user, await this.credentialsOf(user.id, now));
        break;
    }
    const factor = await this.transact(async (s) => {
      if (!(await s.users.lockActive(user.id))) throw new UnauthenticatedError();
      await s.mfa.deletePendingBefore(user.id, this.pendingSince());
      if ((await s.mfa.countFactors(user.id, this.pendingSince())) >= MAX_FACTORS) throw new ConflictError(`at most ${MAX_FACTORS} factors a user; remove one first`);
      const totpSecret = secret ? this.secrets.encryptTotpSecret(secret, user.id, id) : null;
      const made = await s.mfa.insertFactor({ id, userId: user.id, type: input.type, name: input.name, totpSecret, created: now });
      if (options) {
        await s.challenges.issue({ challenge: options.challenge, purpose: 'registration', userId: user.id, factorId: id, expires: new Date(now.getTime() + WEBAUTHN_CHALLENGE_TTL_MS) });
      }
      s.audit.add(ctx, { action: 'mfa.factor_added', target: userTarget(user), summary: { factor: made.id, type: made.type, name: made.name } });
      return made;
    });
    if (options) return { factor, options };
    const totp = this.totp(secret!, user.email);
    const uri = totp.toString();
    return { factor, secret: totp.secret.base32, uri, qrSvg: await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M' }) };
  }

  /** The user's verified passkeys' credentials. */
  async credentialsOf(userId: string, now: Date): Promise<WebauthnCredential[]> {
    return (await this.stores.mfa.listFactors(userId, now)).flatMap((f) => (f.verified && f.webauthn ? [f.webauthn] : []));
  }

  /**
   * Confirms a pending factor: an authenticator app with a code, a passkey with the registration
   * response to its options (its challenge spent by any attempt; the credential stored, a
   * credential id already stored refused). The user's first verified factor turns MFA on, makes
   * ten recovery codes (returned this once), ends the user's other login sessions and raises the
   * presented one to `aal2`. A wrong code or response counts on the account's MFA throttle.
   */
  async verify(caller: Caller, factorId: string, proof: FactorProof, ctx: AuditContext): Promise<{ factor: Factor; recoveryCodes?: string[] }> {
    const user = caller.user;
    // The body's kind must be the factor's type: told before anything is counted.
    const known = await this.stores.mfa.findFactor(user.id, factorId);
    if (known) {
      if (known.type === 'totp' && !('code' in proof)) throw new ValidationError('an authenticator app is confirmed with a code', [{ path: '/body/code', message: 'is required for an authenticator app' }]);
      if (known.type === 'webauthn' && !('credential' in proof)) throw new ValidationError('a passkey is confirmed with the credential its options made', [{ path: '/body/credential', message: 'is required for a passkey' }]);
    }
    const key = mfaThrottleKey(user.id);
    await this.takeSlot(key);
    const now = this.clock.now();
    const challenge = 'credential' in proof ? this.passkeys.challengeOf(proof.credential) : undefined;
    const outcome = await this.transact(async (s) => {
      const locked = await s.users.lockActive(user.id);
      if (!locked) throw new UnauthenticatedError();
      const factor = await s.mfa.findFactor(user.id, factorId);
      if (!factor || (!factor.verified && factor.created.getTime() <= this.pendingSince().getTime())) throw new NotFoundError('no such factor');
      if (factor.verified) throw new ConflictError('the factor is verified already');
      const fail = () => {
        s.audit.add(ctx, { action: 'mfa.failed', target: userTarget(user), summary: { stage: 'enrolment', factor: factor.id } });
        return undefined;
      };
      let step: number | null = null;
      let credential: WebauthnCredential | undefined;
      if ('credential' in proof) {
        // Spent by any attempt, right or wrong; then the library checks the response against it.
        if (challenge === undefined || !(await s.challenges.consume(challenge, 'registration', user.id, now, factor.id))) return fail();
        credential = await this.passkeys.verifyRegistration(proof.credential, challenge);
        if (!credential) return fail();
        const marked = await s.mfa.markWebauthnVerified(factor.id, credential, now);
        if (marked === 'duplicate') return fail(); // a credential registered twice
        if (!marked) throw new ConflictError('the factor is verified already');
      } else {
        const accepted = this.totpStep(factor, proof.code, now);
        if (accepted === undefined) return fail();
        step = accepted;
        await s.mfa.markVerified(factor.id, step, now);
      }
      await s.loginThrottle.clear(key);
      let recoveryCodes: string[] | undefined;
      let sessionsEnded = 0;
      if (!locked.mfaEnabled) {
        await s.users.setMfaEnabled(user.id, true);
        const made = this.secrets.newRecoveryCodes();
        await s.mfa.replaceRecoveryCodes(user.id, made.hashes);
        recoveryCodes = made.codes;
        sessionsEnded = await s.tokens.deleteOtherLogins(user.id, caller.token.id);
        await s.tokens.raiseToAal2(caller.token.id);
      }
      s.audit.add(ctx, {
        action: 'mfa.factor_verified',
        target: userTarget(user),
        summary: { factor: factor.id, type: factor.type, name: factor.name, first: recoveryCodes !== undefined, sessions_ended: sessionsEnded },
      });
      if (recoveryCodes) s.audit.add(ctx, { action: 'mfa.recovery_codes_created', target: userTarget(user), summary: { count: recoveryCodes.length } });
      await s.outbox.enqueue(factorAddedMail(this.mail, locked, factor.name, factor.type));
      return { factor: { ...factor, verified: true, lastUsed: now, totpLastStep: step, webauthn: credential ?? null }, recoveryCodes };
    });
    if (!outcome) throw new MfaFailedError('enrolment', 'credential' in proof ? 'passkey' : 'code');
    return outcome;
  }

  /** Removes one of the user's factors; the last verified one turns MFA off and deletes the recovery codes. */
  async remove(caller: Caller, factorId: string, ctx: AuditContext): Promise<void> {
    const user = caller.user;
    await this.transact(async (s) => {
      const locked = await s.users.lockActive(user.id);
      if (!locked) throw new UnauthenticatedError();
      const gone = await s.mfa.deleteFactor(user.id, factorId);
      if (!gone) throw new NotFoundError('no such factor');
      let mfaOff = false;
      if (gone.verified && (await s.mfa.countVerified(user.id)) === 0) {
        mfaOff = true;
        await s.users.setMfaEnabled(user.id, false);
        await s.mfa.deleteRecoveryCodes(user.id);
        // A login waiting for its second step (someone who had the password) must not become a
        // full session now that none is asked for.
        await s.tokens.deletePendingLogins(user.id);
      }
      s.audit.add(ctx, { action: 'mfa.factor_removed', target: userTarget(user), summary: { factor: gone.id, type: gone.type, name: gone.name, verified: gone.verified, mfa_off: mfaOff } });
      if (gone.verified) await s.outbox.enqueue(factorRemovedMail(this.mail, locked, gone.name, mfaOff, gone.type));
    });
  }

  /** Renames one of the user's factors (any type, pending or verified); the name is unique among theirs. */
  async rename(caller: Caller, factorId: string, name: string, ctx: AuditContext): Promise<Factor> {
    const user = caller.user;
    return this.transact(async (s) => {
      const factor = await s.mfa.findFactor(user.id, factorId);
      if (!factor || (!factor.verified && factor.created.getTime() <= this.pendingSince().getTime())) throw new NotFoundError('no such factor');
      if (factor.name === name) return factor;
      const renamed = await s.mfa.renameFactor(user.id, factorId, name);
      if (!renamed) throw new NotFoundError('no such factor');
      s.audit.add(ctx, { action: 'mfa.factor_renamed', target: userTarget(user), summary: { factor: factor.id, type: factor.type, name, previous: factor.name } });
      return renamed;
    });
  }

  /** Unused recovery codes (0 without MFA: they go when it is turned off). */
  async recoveryCodesRemaining(user: User): Promise<number> {
    return this.stores.mfa.countUnusedRecoveryCodes(user.id);
  }

  /** Ten new recovery codes (returned this once); the old ones stop working. Needs the current password and MFA on. */
  async regenerateRecoveryCodes(caller: Caller, currentPassword: string, ctx: AuditContext): Promise<string[]> {
    const user = caller.user;
    if (!user.mfaEnabled) throw new ConflictError('two-factor sign-in is off: recovery codes come with the first factor');
    const withPassword = await this.stores.users.findActiveWithPassword({ id: user.id });
    if (!withPassword) throw new UnauthenticatedError();
    await this.currentPassword.check(user.id, withPassword.passwordHash, currentPassword);
    return this.transact(async (s) => {
      const locked = await s.users.lockActive(user.id);
      if (!locked) throw new UnauthenticatedError();
      if (!locked.mfaEnabled) throw new ConflictError('two-factor sign-in is off: recovery codes come with the first factor');
      const made = this.secrets.newRecoveryCodes();
      await s.mfa.replaceRecoveryCodes(user.id, made.hashes);
      s.audit.add(ctx, { action: 'mfa.recovery_codes_created', target: userTarget(user), summary: { count: made.codes.length, replaced: true } });
      return made.codes;
    });
  }

  /**
   * An admin's reset (a lost device): every factor and recovery code goes, MFA is off, the
   * user's login sessions end and the count of wrong codes starts again; the user is mailed.
   * Nothing at all (no mail, no audit entry) when the user had none.
   */
  async reset(target: User, ctx: AuditContext): Promise<void> {
    await this.transact(async (s) => {
      const locked = await s.users.lockActive(target.id);
      if (!locked) throw new NotFoundError('user not found');
      const { factors, codes } = await s.mfa.deleteAll(target.id);
      if (factors.length === 0 && codes === 0 && !locked.mfaEnabled) return;
      await s.users.setMfaEnabled(target.id, false);
      const sessions = await s.tokens.deleteForUser(target.id, 'login');
      await s.loginThrottle.clear(mfaThrottleKey(target.id));
      s.audit.add(ctx, {
        action: 'mfa.reset',
        target: userTarget(locked),
        summary: { factors: factors.map((f) => ({ id: f.id, type: f.type, name: f.name, verified: f.verified })), recovery_codes: codes, sessions_ended: sessions.length },
      });
      if (factors.some((f) => f.verified)) await s.outbox.enqueue(mfaResetMail(this.mail, locked));
    });
  }

  /**
   * The second step of a login, in the caller's transaction: a TOTP code of one of the user's
   * verified factors (its step recorded in one statement, so a code is accepted once per factor
   * and a code of an earlier step never), or an unused recovery code (used in one statement).
   * undefined when the code is none of these.
   */
  async acceptLoginCode(s: Stores, user: User, code: MfaCodeInput, now: Date): Promise<AcceptedCode | undefined> {
    if (code.kind === 'recovery') {
      if (!(await s.mfa.useRecoveryCode(user.id, this.secrets.recoveryCodeCandidates(code.code), now))) return undefined;
      return { method: 'recovery_code', remaining: await s.mfa.countUnusedRecoveryCodes(user.id) };
    }
    for (const factor of await s.mfa.listFactors(user.id, now)) {
      if (!factor.verified) continue;
      const step = this.totpStep(factor, code.code, now);
      if (step !== undefined && (await s.mfa.acceptTotpStep(factor.id, step, now))) return { method: 'totp', factor };
    }
    return undefined;
  }

  /** Takes a wrong-code slot of the account's MFA throttle before a code is checked (429 once they are spent). */
  async takeSlot(key: string): Promise<void> {
    const now = this.clock.now();
    const slot = await this.stores.loginThrottle.take(key, now, this.throttle);
    if (!slot.allowed) throw new RateLimitedError(Math.ceil((slot.until.getTime() - now.getTime()) / 1000), this.throttle.failures);
  }

  /** The 30 s step a code is of, for a factor of a type that has codes; undefined when it is not a current code of the factor. */
  private totpStep(factor: Factor, code: string, now: Date): number | undefined {
    switch (factor.type) {
      case 'totp': {
        const secret = factor.totpSecret ? this.secrets.decryptTotpSecret(factor.totpSecret, factor.userId, factor.id) : undefined;
        if (!secret) return undefined; // made with a key no longer configured, or not this row's
        const timestamp = now.getTime();
        const delta = TOTP.validate({ ...TOTP_PARAMS, token: code.replace(/ /g, ''), secret: toSecret(secret), timestamp, window: TOTP_WINDOW });
        return delta === null ? undefined : TOTP.counter({ period: TOTP_PARAMS.period, timestamp }) + delta;
      }
      default:
        return undefined; // passkeys have no codes
    }
  }

  private totp(secret: Buffer, email: string): TOTP {
    return new TOTP({ ...TOTP_PARAMS, issuer: this.mail.appName, label: email, secret: toSecret(secret) });
  }

  private pendingSince(): Date {
    return new Date(this.clock.now().getTime() - PENDING_FACTOR_TTL_MS);
  }
}

/** otpauth's Secret over a copy of the bytes (a Buffer may be a view of a larger shared one). */
function toSecret(bytes: Buffer): Secret {
  return new Secret({ buffer: Uint8Array.from(bytes).buffer });
}
