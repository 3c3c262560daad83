import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * With no JWT_SECRET configured: a secret generated on first start and kept (mode 0600) in the
 * data directory, so tokens survive restarts. Created exclusively, so two processes starting
 * at once agree on one secret.
 */
export function loadOrCreateJwtSecret(dataDir: string): string {
  const file = path.join(dataDir, 'jwt-secret');
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    fs.writeFileSync(file, crypto.randomBytes(48).toString('base64url'), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const secret = fs.readFileSync(file, 'utf8').trim();
  if (secret.length < 32) throw new Error(`${file} holds no usable secret; delete it to make a new one`);
  return secret;
}
