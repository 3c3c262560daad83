import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Keys kept outside the database (API.md §5: `JWT_SECRET`, `MFA_KEY`, `AUDIT_KEY`): each variable a
 * comma-separated list of secrets of at least 32 characters, the first used for new data and all
 * tried. Generated into the data directory (mode 0600) by the embedded default; required with
 * Postgres, where several instances share the data and a file of one host's would not be shared.
 * Nothing uses a configured secret directly: each use derives its own key from it with HKDF.
 */
export const KEY_MIN_LENGTH = 32;

/** A key variable and the file in DATA_DIR that the embedded default keeps it in. */
export interface KeySpec {
  variable: string;
  file: string;
}

export const AUDIT_KEY: KeySpec = { variable: 'AUDIT_KEY', file: 'audit-key' };
/** Factor secrets at rest and recovery codes' hashes (API.md §2.8). */
export const MFA_KEY: KeySpec = { variable: 'MFA_KEY', file: 'mfa-key' };
/** The tokens' signing secret: used as configured (jsonwebtoken's HS256 key), not derived. */
export const JWT_SECRET: KeySpec = { variable: 'JWT_SECRET', file: 'jwt-secret' };

/** A key derived for one purpose, and the id of the configured secret it comes from. */
export interface DerivedKey {
  /** Names the configured secret (not the purpose): stored beside what the key made, to find it again after a rotation. */
  id: string;
  key: Buffer;
}

export class KeyError extends Error {
  override readonly name = 'KeyError';
}

/** One key variable's secrets: the first for new data, all tried. */
export class KeyRing {
  private constructor(
    readonly variable: string,
    private readonly secrets: readonly string[],
  ) {}

  static of(variable: string, secrets: readonly string[]): KeyRing {
    if (secrets.length === 0) throw new KeyError(`${variable}: no key`);
    for (const s of secrets) if (s.length < KEY_MIN_LENGTH) throw new KeyError(`${variable}: each comma-separated key must be at least ${KEY_MIN_LENGTH} characters`);
    return new KeyRing(variable, [...secrets]);
  }

  /** The keys for `purpose` (HKDF-SHA256 of each secret, with the purpose as its info): the first for new data. */
  derive(purpose: string): DerivedKeys {
    return new DerivedKeys(
      this.secrets.map((s) => ({
        id: Buffer.from(crypto.hkdfSync('sha256', s, '', 'accounts key id', 8)).toString('hex'),
        key: Buffer.from(crypto.hkdfSync('sha256', s, '', `accounts ${purpose}`, 32)),
      })),
    );
  }
}

/** One purpose's keys: `current` makes new data, `get(id)` finds the one that made old data. */
export class DerivedKeys {
  private readonly byId: ReadonlyMap<string, Buffer>;

  constructor(readonly all: readonly DerivedKey[]) {
    this.byId = new Map(all.map((k) => [k.id, k.key]));
  }

  get current(): DerivedKey {
    return this.all[0];
  }

  get(id: string): Buffer | undefined {
    return this.byId.get(id);
  }
}

/**
 * The secrets of `spec`: as configured; else, unless `required`, the one kept in `dataDir`
 * (made on first use when `create`, exclusively, so two processes starting at once agree on one).
 */
export function loadKeys(spec: KeySpec, configured: readonly string[], options: { dataDir: string; required: boolean; create: boolean }): string[] {
  if (configured.length > 0) return [...configured];
  if (options.required) throw new KeyError(`${spec.variable} is required with DATABASE_URL: set 32 or more random characters (openssl rand -base64 48), the same on every instance`);
  const file = path.join(options.dataDir, spec.file);
  if (options.create) {
    fs.mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    try {
      fs.writeFileSync(file, crypto.randomBytes(48).toString('base64url'), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  let secret: string;
  try {
    secret = fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new KeyError(`${spec.variable} is not set and ${file} does not exist`);
    throw err;
  }
  if (secret.length < KEY_MIN_LENGTH) throw new KeyError(`${file} holds no usable key (${KEY_MIN_LENGTH} or more characters)`);
  return [secret];
}
