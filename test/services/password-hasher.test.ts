import bcrypt from 'bcrypt';
import { WeakPasswordError } from '../../src/domain/errors';
import { PasswordHasher } from '../../src/services/password-hasher';

const costOf = (hash: string) => bcrypt.getRounds(hash);

describe('PasswordHasher', () => {
  it('refuses passwords that are not text: NUL characters, lone surrogates', () => {
    const hasher = new PasswordHasher(4);
    for (const password of ['\u0000'.repeat(8), 'long enough\u0000', 'long enough\ud800']) {
      expect(() => hasher.checkPolicy(password)).toThrow(WeakPasswordError);
    }
    expect(() => hasher.checkPolicy('long enough 😀')).not.toThrow();
  });

  it('makes a failure against a cheaper hash cost a comparison at the configured cost, as an unknown user does', async () => {
    const hasher = new PasswordHasher(5);
    const old = await bcrypt.hash('the right password', 4);
    const dummy = await hasher.dummy();
    const compare = jest.spyOn(bcrypt, 'compare');
    try {
      expect(await hasher.verify('a wrong password', old)).toBe(false);
      expect(compare.mock.calls.map((c) => costOf(c[1] as string))).toEqual([4, 5]);
      expect(compare.mock.calls[1][1]).toBe(dummy);
      compare.mockClear();
      expect(await hasher.verify('a wrong password', null)).toBe(false);
      expect(compare.mock.calls.map((c) => costOf(c[1] as string))).toEqual([5]);
      compare.mockClear();
      expect(await hasher.verify('the right password', old)).toBe(true);
      expect(compare).toHaveBeenCalledTimes(1); // a success is followed by a re-hash at the configured cost instead
    } finally {
      compare.mockRestore();
    }
    expect(hasher.needsRehash(old)).toBe(true);
    expect(hasher.needsRehash(await hasher.hash('x'.repeat(8)))).toBe(false);
  });
});
