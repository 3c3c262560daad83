import { NotFoundError, ValidationError } from '../domain/errors';
import { LOGIN_TOKEN_PREFIX } from '../domain/rules';
import { userTarget, type AuditContext } from '../domain/audit';
import type { Caller, Clock, Scope, Token, TokenKind, User } from '../domain/types';
import { tokensRevokedMail, type MailSettings } from '../mail/templates';
import type { Stores, Transactor } from '../stores';
import type { TokenSigner } from './token-signer';


export interface NewApiToken {
  name: string;
  scopes?: Scope[];
  expires?: Date;
}

export type RevokeMode = 'all' | 'login_only' | 'api_only';

export interface Session extends Token {
  current: boolean;
}

/** API tokens (named, scoped), login sessions, and revocation. */
export class TokenService {
  constructor(
    private readonly stores: Stores,
    private readonly transact: Transactor,
    private readonly signer: TokenSigner,
    private readonly clock: Clock,
    private readonly mail: MailSettings,
    private readonly lifetimes: { apiDefaultMs: number; apiMaxMs: number },
  ) {}

  async list(owner: User): Promise<Token[]> {
    return this.stores.tokens.listLive(owner.id, 'api', this.clock.now());
  }

  async get(owner: User, name: string): Promise<Token> {
    const token = await this.stores.tokens.findLiveByName(owner.id, 'api', name, this.clock.now());
    if (!token) throw new NotFoundError('no such token');
    return token;
  }

  /** Mints an API token; the JWT is returned this once and never stored. */
  async create(owner: User, input: NewApiToken, ctx: AuditContext): Promise<{ token: Token; jwt: string }> {
    if (input.name.startsWith(LOGIN_TOKEN_PREFIX)) {
      throw new ValidationError(`token names starting with ${LOGIN_TOKEN_PREFIX} are reserved`, [{ path: '/body/name', message: 'is reserved' }]);
    }
    const now = this.clock.now();
    const latest = now.getTime() + this.lifetimes.apiMaxMs;
    let expires = new Date(Math.min(now.getTime() + this.lifetimes.apiDefaultMs, latest));
    if (input.expires) {
      if (input.expires.getTime() <= now.getTime() || input.expires.getTime() > latest) {
        throw new ValidationError(`expires must be in the future and at most ${new Date(latest).toISOString()}`, [
          { path: '/body/expires', message: 'is out of range' },
        ]);
      }
      expires = input.expires;
    }
    const token = await this.transact(async (s) => {
      await s.tokens.deleteExpiredByName(owner.id, input.name, now);
      const made = await s.tokens.insert({ userId: owner.id, kind: 'api', name: input.name, scopes: input.scopes ?? ['api'], expires, userAgent: null });
      s.audit.add(ctx, { action: 'token.created', target: userTarget(owner), summary: { name: made.name, scopes: made.scopes, expires: made.expires.toISOString() } });
      return made;
    });
    return { token, jwt: this.signer.sign({ userId: owner.id, tokenId: token.id }, expires) };
  }

  /** Expires an API token by name; its JWT is refused from the next request on. */
  async delete(owner: User, name: string, ctx: AuditContext): Promise<void> {
    const token = await this.get(owner, name);
    await this.transact(async (s) => {
      if (!(await s.tokens.delete(token.id))) throw new NotFoundError('no such token');
      s.audit.add(ctx, { action: 'token.deleted', target: userTarget(owner), summary: { name: token.name } });
    });
  }

  /** The caller's live login sessions, the presented one marked. */
  async sessions(caller: Caller): Promise<Session[]> {
    const tokens = await this.stores.tokens.listLive(caller.user.id, 'login', this.clock.now());
    return tokens.map((t) => ({ ...t, current: t.id === caller.token.id })).sort((a, b) => a.created.getTime() - b.created.getTime());
  }

  async endSession(caller: Caller, id: string, ctx: AuditContext): Promise<void> {
    const session = await this.stores.tokens.findLiveById(caller.user.id, 'login', id, this.clock.now());
    if (!session) throw new NotFoundError('no such session');
    await this.transact(async (s) => {
      if (!(await s.tokens.delete(session.id))) throw new NotFoundError('no such session');
      s.audit.add(ctx, { action: 'session.ended', target: userTarget(caller.user), summary: { how: 'ended', session: session.id } });
    });
  }

  /**
   * Expires a user's tokens in one statement. When an admin revokes someone else's, a mail
   * names the API tokens and counts the login tokens (if any were revoked and sendMail).
   */
  async revoke(actor: User, target: User, mode: RevokeMode, sendMail: boolean, ctx: AuditContext): Promise<void> {
    await this.transact(async (s) => {
      const kind = mode === 'login_only' ? 'login' : mode === 'api_only' ? 'api' : undefined;
      const revoked = await s.tokens.deleteForUser(target.id, kind);
      if (revoked.length > 0) s.audit.add(ctx, { action: 'tokens.revoked', target: userTarget(target), summary: revokedSummary(mode, revoked) });
      if (sendMail && actor.id !== target.id && revoked.length > 0) {
        const apiNames = revoked.filter((t) => t.kind === 'api').map((t) => t.name).sort();
        await s.outbox.enqueue(tokensRevokedMail(this.mail, target, apiNames, revoked.length - apiNames.length));
      }
    });
  }
}

/** How many tokens of each kind went, and the API tokens' names (never a secret). */
export function revokedSummary(mode: string, revoked: { kind: TokenKind; name: string }[]): Record<string, unknown> {
  const api = revoked.filter((t) => t.kind === 'api').map((t) => t.name).sort();
  return { mode, login_tokens: revoked.length - api.length, api_tokens: api };
}
