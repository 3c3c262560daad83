import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AUDIT_KEY, KeyError, KeyRing, loadKeys } from '../src/keys';

describe('keys outside the database', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-keys-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('takes the configured list as it is', () => {
    const keys = ['k'.repeat(32), 'l'.repeat(40)];
    expect(loadKeys(AUDIT_KEY, keys, { dataDir: dir, required: true, create: true })).toEqual(keys);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('generates one into the data directory on the embedded default, private to the service, and keeps it', () => {
    const [made] = loadKeys(AUDIT_KEY, [], { dataDir: dir, required: false, create: true });
    expect(made.length).toBeGreaterThanOrEqual(32);
    const file = path.join(dir, 'audit-key');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(loadKeys(AUDIT_KEY, [], { dataDir: dir, required: false, create: true })).toEqual([made]);
    expect(loadKeys(AUDIT_KEY, [], { dataDir: dir, required: false, create: false })).toEqual([made]);
  });

  it('is required with Postgres (naming the variable), and never made up where it must already exist', () => {
    expect(() => loadKeys(AUDIT_KEY, [], { dataDir: dir, required: true, create: true })).toThrow(new KeyError('AUDIT_KEY is required with DATABASE_URL: set 32 or more random characters (openssl rand -base64 48), the same on every instance'));
    expect(() => loadKeys(AUDIT_KEY, [], { dataDir: dir, required: false, create: false })).toThrow(/^AUDIT_KEY is not set and .*audit-key does not exist$/);
    expect(fs.readdirSync(dir)).toEqual([]);
    fs.writeFileSync(path.join(dir, 'audit-key'), 'too short');
    expect(() => loadKeys(AUDIT_KEY, [], { dataDir: dir, required: false, create: true })).toThrow(/holds no usable key/);
  });

  it('derives a key per purpose from each secret, named by an id of the secret: the first for new data, all found again', () => {
    const a = 'a'.repeat(32);
    const b = 'b'.repeat(32);
    expect(() => KeyRing.of('AUDIT_KEY', [])).toThrow(KeyError);
    expect(() => KeyRing.of('AUDIT_KEY', ['short'])).toThrow(/at least 32 characters/);
    const ring = KeyRing.of('AUDIT_KEY', [b, a]);
    const chain = ring.derive('audit chain');
    const other = ring.derive('mfa factor');
    expect(chain.current.id).toBe(KeyRing.of('AUDIT_KEY', [b]).derive('audit chain').current.id);
    expect(chain.current.id).toBe(other.current.id); // the id names the secret
    expect(chain.current.key.equals(other.current.key)).toBe(false); // each purpose its own key
    expect(chain.current.key.equals(Buffer.from(b))).toBe(false); // never the secret itself
    const old = KeyRing.of('AUDIT_KEY', [a]).derive('audit chain').current;
    expect(chain.get(old.id)?.equals(old.key)).toBe(true);
    expect(chain.get('0000000000000000')).toBeUndefined();
    expect(chain.all.map((k) => k.id)).toEqual([chain.current.id, old.id]);
  });
});
