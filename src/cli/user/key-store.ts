import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CliFailure } from './cli-failure';

const scrypt = promisify(crypto.scrypt) as (password: string, salt: Buffer, keylen: number, options: crypto.ScryptOptions) => Promise<Buffer>;

/** scrypt's cost: about 32 MiB and a tenth of a second, once per use of the stored key. */
const SCRYPT = { N: 2 ** 15, r: 8, p: 1 } as const;
const SCRYPT_MAXMEM = 64 * 1024 * 1024;

/** A key sealed under the local password: AES-256-GCM with a key from scrypt(password, salt). */
export interface SealedKey {
  cipher: 'aes-256-gcm';
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  iv: string;
  tag: string;
  ciphertext: string;
}

/** One server's entry: the key's name, and its token sealed or (with an empty local password) in clear. */
export interface KeyEntry {
  key_name: string;
  /** Whose key it is (the email the user gave auth), for the messages. */
  user?: string;
  stored: string;
  sealed?: SealedKey;
  token?: string;
}

interface KeyFile {
  version: 1;
  keys: Record<string, KeyEntry>;
}

/** The local password did not open the stored key (exit status 1). */
export class WrongLocalPasswordError extends CliFailure {
  constructor(url: string) {
    super(`wrong local password for the key stored for ${url}`);
  }
}

/**
 * Where the keys live: `$XDG_CONFIG_HOME/accounts`, else the platform's configuration directory
 * (`~/.config/accounts` on Linux, `~/Library/Application Support/accounts` on macOS,
 * `%APPDATA%\accounts` on Windows).
 */
export function configDir(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string {
  const home = env.HOME || os.homedir();
  if (env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME)) return path.join(env.XDG_CONFIG_HOME, 'accounts');
  if (platform === 'win32') return path.join(env.APPDATA || path.join(home, 'AppData', 'Roaming'), 'accounts');
  if (platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'accounts');
  return path.join(home, '.config', 'accounts');
}

/** The user's stored API keys, one per server URL, in one JSON file of mode 0600, written atomically. */
export class KeyStore {
  constructor(readonly file: string) {}

  static in(dir: string): KeyStore {
    return new KeyStore(path.join(dir, 'keys.json'));
  }

  get(url: string): KeyEntry | undefined {
    return this.read().keys[url];
  }

  put(url: string, entry: KeyEntry): void {
    const data = this.read();
    data.keys[url] = entry;
    this.write(data);
  }

  /** Removes the entry for `url`; false when there was none. */
  remove(url: string): boolean {
    const data = this.read();
    if (!(url in data.keys)) return false;
    delete data.keys[url];
    this.write(data);
    return true;
  }

  private read(): KeyFile {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, keys: {} };
      throw new CliFailure(`cannot read ${this.file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    try {
      const data = JSON.parse(text) as KeyFile;
      if (data?.version !== 1 || typeof data.keys !== 'object' || data.keys === null) throw new Error('not a key file');
      return data;
    } catch {
      throw new CliFailure(`${this.file} is not a key file of this CLI (move it away to start afresh)`);
    }
  }

  /** Written to a temporary file of mode 0600 in the same directory, synced, then renamed over the old one. */
  private write(data: KeyFile): void {
    const dir = path.dirname(this.file);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const temp = path.join(dir, `.keys.json.${process.pid}.${crypto.randomBytes(4).toString('hex')}`);
    try {
      const fd = fs.openSync(temp, 'wx', 0o600);
      try {
        fs.writeFileSync(fd, `${JSON.stringify(data, null, 2)}\n`);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(temp, this.file);
    } catch (err) {
      fs.rmSync(temp, { force: true });
      throw new CliFailure(`cannot write ${this.file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
}

/** Seals `token` under `localPassword`; `context` (the server URL and key name) is bound in as associated data. */
export async function sealKey(token: string, localPassword: string, context: string): Promise<SealedKey> {
  const salt = crypto.randomBytes(16);
  const iv = crypto.randomBytes(12);
  const key = await scrypt(localPassword, salt, 32, { ...SCRYPT, maxmem: SCRYPT_MAXMEM });
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(token, 'utf8'), cipher.final()]);
  return {
    cipher: 'aes-256-gcm',
    kdf: 'scrypt',
    ...SCRYPT,
    salt: salt.toString('base64'),
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    ciphertext: ciphertext.toString('base64'),
  };
}

/** Opens a sealed key; a wrong password (or a changed file) fails the tag check: `WrongLocalPasswordError`. */
export async function openKey(sealed: SealedKey, localPassword: string, context: string, url: string): Promise<string> {
  if (sealed.cipher !== 'aes-256-gcm' || sealed.kdf !== 'scrypt') throw new CliFailure(`the key stored for ${url} is sealed in a way this CLI does not know`);
  const key = await scrypt(localPassword, Buffer.from(sealed.salt, 'base64'), 32, { N: sealed.N, r: sealed.r, p: sealed.p, maxmem: SCRYPT_MAXMEM });
  const decipher = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.iv, 'base64'));
  decipher.setAAD(Buffer.from(context, 'utf8'));
  decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
  try {
    return Buffer.concat([decipher.update(Buffer.from(sealed.ciphertext, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new WrongLocalPasswordError(url);
  }
}
