import crypto from 'node:crypto';
import bcrypt from 'bcrypt';
import { WeakPasswordError } from '../domain/errors';

export const PASSWORD_MIN_CHARS = 8;
export const PASSWORD_MAX_BYTES = 256;
const BCRYPT_MAX_BYTES = 72;

/**
 * bcrypt through its async API (libuv's thread pool, never the event loop). Passwords longer
 * than bcrypt's 72 bytes are pre-hashed (SHA-256, base64) so that no byte is ignored.
 */
export class PasswordHasher {
  private dummyHash: Promise<string> | undefined;

  constructor(private readonly cost: number) {}

  /** Throws WeakPasswordError unless the password fits the policy. */
  checkPolicy(password: string): void {
    if ([...password].length < PASSWORD_MIN_CHARS) {
      throw new WeakPasswordError(`password must be at least ${PASSWORD_MIN_CHARS} characters`);
    }
    if (Buffer.byteLength(password, 'utf8') > PASSWORD_MAX_BYTES) {
      throw new WeakPasswordError(`password must be at most ${PASSWORD_MAX_BYTES} bytes of UTF-8`);
    }
  }

  async hash(password: string): Promise<string> {
    return bcrypt.hash(prepare(password), this.cost);
  }

  /**
   * Compares in constant time per call: with no hash (unknown user, unusable password) it
   * compares against a dummy hash of the same cost, so the answer takes as long either way.
   */
  async verify(password: string, hash: string | null): Promise<boolean> {
    if (!hash) {
      await bcrypt.compare(prepare(password), await this.dummy());
      return false;
    }
    return bcrypt.compare(prepare(password), hash);
  }

  /** Made once, at the configured cost; start-up calls this so no login pays for it. */
  dummy(): Promise<string> {
    this.dummyHash ??= bcrypt.hash(crypto.randomBytes(16).toString('hex'), this.cost);
    return this.dummyHash;
  }
}

function prepare(password: string): string {
  if (Buffer.byteLength(password, 'utf8') <= BCRYPT_MAX_BYTES) return password;
  return crypto.createHash('sha256').update(password, 'utf8').digest('base64');
}
