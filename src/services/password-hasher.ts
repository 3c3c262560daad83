import crypto from 'node:crypto';
import os from 'node:os';
import bcrypt from 'bcrypt';
import pLimit from 'p-limit';
import { WeakPasswordError } from '../domain/errors';
import { isText } from '../domain/text';

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
    if (!isText(password)) {
      throw new WeakPasswordError('a password is text: no NUL characters, no lone surrogates');
    }
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
   * A failure takes as long as a comparison at the configured cost, whatever was stored: with no
   * hash (unknown user, unusable password) it compares against a dummy hash of that cost, and a
   * failed comparison against a cheaper hash (made before BCRYPT_COST went up) is followed by one
   * against the dummy. (A dearer hash, made before the cost went down, still costs its own time
   * until its user next logs in and it is replaced.)
   */
  async verify(password: string, hash: string | null): Promise<boolean> {
    const against = hash ?? (await this.dummy());
    const matches = await this.limit(() => bcrypt.compare(prepare(password), against));
    if (hash !== null && !matches && costOf(hash) < this.cost) {
      const dummy = await this.dummy();
      await this.limit(() => bcrypt.compare(prepare(password), dummy));
    }
    return hash !== null && matches;
  }

  /** Whether a hash was made at another cost than the configured one (then replaced at the next login). */
  needsRehash(hash: string): boolean {
    return costOf(hash) !== this.cost;
  }

  /** Made once, at the configured cost; start-up calls this so no login pays for it. */
  dummy(): Promise<string> {
    this.dummyHash ??= this.limit(() => bcrypt.hash(crypto.randomBytes(16).toString('hex'), this.cost));
    return this.dummyHash;
  }
}

/** A bcrypt hash's cost; NaN for anything else. */
function costOf(hash: string): number {
  const m = /^\$2[abxy]?\$(\d{2})\$/.exec(hash);
  return m ? Number(m[1]) : Number.NaN;
}

function prepare(password: string): string {
  if (Buffer.byteLength(password, 'utf8') <= BCRYPT_MAX_BYTES) return password;
  return crypto.createHash('sha256').update(password, 'utf8').digest('base64');
}
