import crypto from 'node:crypto';
import { KeyRing } from '../../src/keys';
import { MfaSecrets } from '../../src/services/mfa-secrets';

const OLD = 'an-old-mfa-key-an-old-mfa-key-0123456789';
const NEW = 'a-new-mfa-key-a-new-mfa-key-abcdefghijkl';
const ring = (...keys: string[]) => new MfaSecrets(KeyRing.of('MFA_KEY', keys));

describe('MfaSecrets', () => {
  const user = crypto.randomUUID();
  const factor = crypto.randomUUID();

  it('encrypts a TOTP secret with AES-256-GCM (a fresh IV each time), never storing its bytes, and decrypts it', () => {
    const s = ring(OLD);
    const secret = s.newTotpSecret();
    expect(secret).toHaveLength(20);
    const a = s.encryptTotpSecret(secret, user, factor);
    const b = s.encryptTotpSecret(secret, user, factor);
    expect(a).not.toBe(b);
    expect(a).toMatch(/^[0-9a-f]{16}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]+$/);
    expect(Buffer.from(a.split(':')[2], 'base64url').includes(secret)).toBe(false);
    expect(s.decryptTotpSecret(a, user, factor)).toEqual(secret);
  });

  it('binds the secret to its row: another user or factor, an altered ciphertext or an unknown key decrypts to nothing', () => {
    const s = ring(OLD);
    const stored = s.encryptTotpSecret(s.newTotpSecret(), user, factor);
    expect(s.decryptTotpSecret(stored, crypto.randomUUID(), factor)).toBeUndefined();
    expect(s.decryptTotpSecret(stored, user, crypto.randomUUID())).toBeUndefined();
    const [id, iv, sealed] = stored.split(':');
    const flipped = Buffer.from(sealed, 'base64url');
    flipped[0] ^= 1;
    expect(s.decryptTotpSecret(`${id}:${iv}:${flipped.toString('base64url')}`, user, factor)).toBeUndefined();
    expect(ring(NEW).decryptTotpSecret(stored, user, factor)).toBeUndefined();
    for (const junk of ['', 'x', 'a:b', `${id}:${iv}`, `${id}:${iv}:${sealed}:more`, `${id}:${iv}:AA`]) expect(s.decryptTotpSecret(junk, user, factor)).toBeUndefined();
  });

  it('rotates: with MFA_KEY=new,old the new key makes new data and what the old one made still decrypts and matches', () => {
    const before = ring(OLD);
    const secret = before.newTotpSecret();
    const stored = before.encryptTotpSecret(secret, user, factor);
    const { codes, hashes } = before.newRecoveryCodes();
    const after = ring(NEW, OLD);
    expect(after.decryptTotpSecret(stored, user, factor)).toEqual(secret);
    const code = codes[0].replace(/-/g, '');
    expect(after.recoveryCodeCandidates(code)).toContain(hashes[0]);
    expect(after.encryptTotpSecret(secret, user, factor).split(':')[0]).not.toBe(stored.split(':')[0]);
    expect(after.newRecoveryCodes().hashes[0].split(':')[0]).not.toBe(hashes[0].split(':')[0]);
  });

  it('makes 10 distinct recovery codes of 60 bits (12 Crockford base32 characters), stored as keyed hashes only', () => {
    const s = ring(OLD);
    const { codes, hashes } = s.newRecoveryCodes();
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    for (const c of codes) expect(c).toMatch(/^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$/);
    codes.forEach((c, i) => {
      expect(hashes[i]).toMatch(/^[0-9a-f]{16}:[0-9a-f]{64}$/);
      expect(hashes[i]).not.toContain(c.replace(/-/g, ''));
      expect(s.recoveryCodeCandidates(c.replace(/-/g, ''))).toEqual([hashes[i]]);
    });
    // Another key's hash of the same code is another hash.
    expect(ring(NEW).recoveryCodeCandidates(codes[0].replace(/-/g, ''))).not.toContain(hashes[0]);
  });
});
