import crypto from 'node:crypto';
import os from 'node:os';
import bcrypt from 'bcrypt';
import pLimit from 'p-limit';
import { WeakPasswordError } from '../domain/errors';

export const PASSWORD_MIN_CHARS = 8;
export const PASSWORD_MAX_BYTES = 256;
const BCRYPT_MAX_BYTES = 72;

/**
 * bcrypt through its async API (libuv's thread pool, never the event loop). Passwords longer
 * than bcrypt's 72 bytes are pre-hashed (SHA-256, base64) so that no byte is ignored.
 *
 * At most one hash per core runs at once: hashing is bound by cores anyway, and more hashing
 * threads than cores (libuv has 4) only take CPU from the main thread, which then answers every
 * other request late while logins pour in.
 */
export class PasswordHasher {
  private dummyHash: Promise<string> | undefined;
  private readonly limit: pLimit.Limit;

  constructor(
    private readonly cost: number,
    concurrency = os.availableParallelism(),
  ) {
    this.limit = pLimit(concurrency);
  }

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
    return this.limit(() => bcrypt.hash(prepare(password), this.cost));
  }

  /**
   * Compares in constant time per call: with no hash (unknown user, unusable password) it
   * compares against a dummy hash of the same cost, so the answer takes as long either way.
   */
  async verify(password: string, hash: string | null): Promise<boolean> {
    const against = hash ?? (await this.dummy());
    const matches = await this.limit(() => bcrypt.compare(prepare(password), against));
    return hash !== null && matches;
  }

  /** Made once, at the configured cost; start-up calls this so no login pays for it. */
  dummy(): Promise<string> {
    this.dummyHash ??= this.limit(() => bcrypt.hash(crypto.randomBytes(16).toString('hex'), this.cost));
    return this.dummyHash;
  }
}

function prepare(password: string): string {
  if (Buffer.byteLength(password, 'utf8') <= BCRYPT_MAX_BYTES) return password;
  return crypto.createHash('sha256').update(password, 'utf8').digest('base64');
}
