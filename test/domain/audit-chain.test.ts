import crypto from 'node:crypto';
import type { AuditEntry } from '../../src/domain/audit';
import { CHAIN_KEY_PURPOSE, checkpointJson, checkpointSigned, linkHash, makeLink, maxTime, parseCheckpoint, signCheckpoint, type ChainKeys, type Checkpoint } from '../../src/domain/audit-chain';
import { KeyRing } from '../../src/keys';

/** The audit chain's links and checkpoints alone: no database, no service. */

const KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const OTHER_KEY = Buffer.alloc(32, 7);

/** Keys for one id, or several (rotation): the first is current. */
function keys(...list: [string, Buffer][]): ChainKeys {
  const byId = new Map(list);
  return { current: { id: list[0][0], key: list[0][1] }, get: (id) => byId.get(id) };
}

const ENTRY: Omit<AuditEntry, 'seq'> = {
  id: '6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b',
  time: new Date('2026-03-04T05:06:07.089Z'),
  action: 'user.updated',
  actor: { id: '11111111-2222-4333-8444-555555555555', name: 'root' },
  target: { type: 'user', id: '66666666-7777-4888-9999-aaaaaaaaaaaa', name: 'ada' },
  ip: '192.0.2.1',
  userAgent: 'curl/8.5.0',
  requestId: 'req-1',
  summary: { name: { to: 'ada', from: 'ad' }, admin: true },
};

const LINK = { pos: 2, prevHash: 'ab'.repeat(32), prevMaxTime: new Date('2026-03-04T05:06:00.000Z') };

const hmac = (key: Buffer, text: string) => crypto.createHmac('sha256', key).update(text, 'utf8').digest('hex');

describe('linkHash: the format existing chains were made in', () => {
  it('is an HMAC-SHA256 over the canonical JSON array ["link", pos, prevHash, prevMaxTime, entry fields in insert order, summary with sorted keys]', () => {
    // Written out by hand: a change of serialisation breaks the verification of every existing chain.
    const input =
      '["link",2,"' +
      'ab'.repeat(32) +
      '","2026-03-04T05:06:00.000Z",' +
      '"6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b","2026-03-04T05:06:07.089Z","user.updated",' +
      '"11111111-2222-4333-8444-555555555555","root",' +
      '"user","66666666-7777-4888-9999-aaaaaaaaaaaa","ada",' +
      '"192.0.2.1","curl/8.5.0","req-1",' +
      '{"admin":true,"name":{"from":"ad","to":"ada"}}]';
    expect(linkHash(KEY, LINK, ENTRY)).toBe(hmac(KEY, input));
  });

  it('writes nulls for the first link and for an anonymous entry without target or request', () => {
    const anonymous = { ...ENTRY, actor: null, target: null, ip: null, userAgent: null, requestId: null, summary: {} };
    const input = '["link",1,"",null,"6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b","2026-03-04T05:06:07.089Z","user.updated",null,null,null,null,null,null,null,null,{}]';
    expect(linkHash(KEY, { pos: 1, prevHash: '', prevMaxTime: null }, anonymous)).toBe(hmac(KEY, input));
  });

  it('keeps a known vector (the same bytes on every machine and version)', () => {
    expect(linkHash(KEY, { pos: 1, prevHash: '', prevMaxTime: null }, { ...ENTRY, summary: {} })).toBe('6a20efdf67d4ca8f0bf64a0c74e0d237f5297f8f8520fd9b1f4c323e864c4c99');
  });

  it('does not depend on the order of the summary keys', () => {
    expect(linkHash(KEY, LINK, { ...ENTRY, summary: { admin: true, name: { from: 'ad', to: 'ada' } } })).toBe(linkHash(KEY, LINK, ENTRY));
  });
});

describe('linkHash: every covered field changes it', () => {
  const base = linkHash(KEY, LINK, ENTRY);
  const changed: [string, () => string][] = [
    ['the key', () => linkHash(OTHER_KEY, LINK, ENTRY)],
    ['pos', () => linkHash(KEY, { ...LINK, pos: 3 }, ENTRY)],
    ['prevHash', () => linkHash(KEY, { ...LINK, prevHash: 'ac'.repeat(32) }, ENTRY)],
    ['prevMaxTime (by a millisecond)', () => linkHash(KEY, { ...LINK, prevMaxTime: new Date(LINK.prevMaxTime.getTime() + 1) }, ENTRY)],
    ['prevMaxTime (null)', () => linkHash(KEY, { ...LINK, prevMaxTime: null }, ENTRY)],
    ['id', () => linkHash(KEY, LINK, { ...ENTRY, id: '6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5c' })],
    ['time (by a millisecond)', () => linkHash(KEY, LINK, { ...ENTRY, time: new Date(ENTRY.time.getTime() + 1) })],
    ['action', () => linkHash(KEY, LINK, { ...ENTRY, action: 'user.created' })],
    ['actor id', () => linkHash(KEY, LINK, { ...ENTRY, actor: { id: '11111111-2222-4333-8444-555555555556', name: 'root' } })],
    ['actor name', () => linkHash(KEY, LINK, { ...ENTRY, actor: { id: ENTRY.actor!.id, name: 'r00t' } })],
    ['actor (none)', () => linkHash(KEY, LINK, { ...ENTRY, actor: null })],
    ['target type', () => linkHash(KEY, LINK, { ...ENTRY, target: { ...ENTRY.target!, type: 'group' } })],
    ['target id', () => linkHash(KEY, LINK, { ...ENTRY, target: { ...ENTRY.target!, id: '66666666-7777-4888-9999-aaaaaaaaaaab' } })],
    ['target name', () => linkHash(KEY, LINK, { ...ENTRY, target: { ...ENTRY.target!, name: 'eve' } })],
    ['ip', () => linkHash(KEY, LINK, { ...ENTRY, ip: '192.0.2.2' })],
    ['user agent', () => linkHash(KEY, LINK, { ...ENTRY, userAgent: 'curl/8.5.1' })],
    ['request id', () => linkHash(KEY, LINK, { ...ENTRY, requestId: 'req-2' })],
    ['a summary value', () => linkHash(KEY, LINK, { ...ENTRY, summary: { ...ENTRY.summary, admin: false } })],
    ['a nested summary value', () => linkHash(KEY, LINK, { ...ENTRY, summary: { ...ENTRY.summary, name: { from: 'ad', to: 'adA' } } })],
    ['a summary key added', () => linkHash(KEY, LINK, { ...ENTRY, summary: { ...ENTRY.summary, email: null } })],
  ];

  it.each(changed)('%s', (_, other) => {
    expect(other()).not.toBe(base);
  });

  it('tells a field moved to its neighbour apart (ip and user agent swapped)', () => {
    expect(linkHash(KEY, LINK, { ...ENTRY, ip: 'x', userAgent: null })).not.toBe(linkHash(KEY, LINK, { ...ENTRY, ip: null, userAgent: 'x' }));
  });
});

describe('makeLink', () => {
  const ring = keys(['k1', KEY], ['k0', OTHER_KEY]);

  it('makes the first link with no previous hash or time, by the current key', () => {
    const link = makeLink(ring, 1, undefined, ENTRY);
    expect(link).toEqual({ pos: 1, id: ENTRY.id, keyId: 'k1', prevHash: '', prevMaxTime: null, hash: linkHash(KEY, { pos: 1, prevHash: '', prevMaxTime: null }, ENTRY) });
  });

  it('makes a later link over the previous hash and newest time', () => {
    const link = makeLink(ring, 2, { hash: LINK.prevHash, maxTime: LINK.prevMaxTime }, ENTRY);
    expect(link).toEqual({ pos: 2, id: ENTRY.id, keyId: 'k1', prevHash: LINK.prevHash, prevMaxTime: LINK.prevMaxTime, hash: linkHash(KEY, LINK, ENTRY) });
  });

  it('signs with the current key only', () => {
    expect(makeLink(keys(['k0', OTHER_KEY], ['k1', KEY]), 1, undefined, ENTRY).hash).toBe(linkHash(OTHER_KEY, { pos: 1, prevHash: '', prevMaxTime: null }, ENTRY));
  });
});

describe('maxTime', () => {
  const early = new Date('2026-01-01T00:00:00Z');
  const late = new Date('2026-01-02T00:00:00Z');

  it('is the entry time at the first link', () => {
    expect(maxTime({ prevMaxTime: null }, early)).toBe(early);
  });

  it('is the newer of the previous newest time and the entry time (an entry may be older than the one before it)', () => {
    expect(maxTime({ prevMaxTime: early }, late)).toBe(late);
    expect(maxTime({ prevMaxTime: late }, early)).toBe(late);
  });

  it('is the entry time on a tie', () => {
    const same = new Date(early.getTime());
    expect(maxTime({ prevMaxTime: early }, same)).toBe(same);
  });
});

describe('checkpoints', () => {
  const ring = keys(['k1', KEY]);
  const time = new Date('2026-03-04T06:00:00.000Z');
  const checkpoint = signCheckpoint(ring, { position: 42, hash: 'cd'.repeat(32) }, time);

  it('signs the head with an HMAC-SHA256 over ["checkpoint", position, hash, time]', () => {
    expect(checkpoint).toEqual({ position: 42, hash: 'cd'.repeat(32), time, keyId: 'k1', mac: hmac(KEY, `["checkpoint",42,"${'cd'.repeat(32)}","2026-03-04T06:00:00.000Z"]`) });
    expect(checkpointSigned(ring, checkpoint)).toBe(true);
  });

  it.each<[string, Partial<Checkpoint>]>([
    ['position', { position: 43 }],
    ['hash', { hash: 'ce'.repeat(32) }],
    ['time', { time: new Date(time.getTime() + 1) }],
    ['mac', { mac: 'ff'.repeat(32) }],
    ['mac cut short', { mac: 'ff'.repeat(16) }],
    ['mac not hex', { mac: 'zz' }],
  ])('refuses a tampered %s', (_, change) => {
    expect(checkpointSigned(ring, { ...checkpoint, ...change })).toBe(false);
  });

  it('refuses a checkpoint signed with a key not configured, or naming another key id', () => {
    expect(checkpointSigned(keys(['k1', OTHER_KEY]), checkpoint)).toBe(false);
    expect(checkpointSigned(keys(['k2', KEY]), checkpoint)).toBe(false);
    expect(checkpointSigned(ring, { ...checkpoint, keyId: 'k0' })).toBe(false);
  });

  it('accepts one signed by an older key still configured (rotation)', () => {
    expect(checkpointSigned(keys(['k2', OTHER_KEY], ['k1', KEY]), checkpoint)).toBe(true);
  });

  it('does not mistake a link for a checkpoint: the same key over the same numbers gives another MAC', () => {
    const asLink = hmac(KEY, `["link",42,"${'cd'.repeat(32)}","2026-03-04T06:00:00.000Z"]`);
    expect(checkpoint.mac).not.toBe(asLink);
  });

  it('round-trips through JSON', () => {
    const json = checkpointJson(checkpoint);
    expect(json).toEqual({ position: 42, hash: 'cd'.repeat(32), time: '2026-03-04T06:00:00.000Z', key_id: 'k1', mac: checkpoint.mac });
    const back = parseCheckpoint(JSON.parse(JSON.stringify(json)));
    expect(back).toEqual(checkpoint);
    expect(checkpointSigned(ring, back!)).toBe(true);
  });

  it.each<[string, unknown]>([
    ['null', null],
    ['text', 'checkpoint'],
    ['position 0', { ...checkpointJson(checkpoint), position: 0 }],
    ['position not whole', { ...checkpointJson(checkpoint), position: 1.5 }],
    ['position as text', { ...checkpointJson(checkpoint), position: '42' }],
    ['a bad time', { ...checkpointJson(checkpoint), time: 'yesterday' }],
    ['a mac in upper case', { ...checkpointJson(checkpoint), mac: checkpoint.mac.toUpperCase() }],
    ['no key id', { ...checkpointJson(checkpoint), key_id: undefined }],
  ])('parseCheckpoint refuses %s', (_, value) => {
    expect(parseCheckpoint(value)).toBeUndefined();
  });
});

describe('the chain key, derived from AUDIT_KEY per secret', () => {
  const secret = 'an-audit-key-of-at-least-32-characters!';
  const hkdf = (info: string, length: number) => Buffer.from(crypto.hkdfSync('sha256', secret, '', info, length));

  it('is HKDF-SHA256 of the secret for "accounts audit chain", named by an HKDF id of the secret', () => {
    const derived = KeyRing.of('AUDIT_KEY', [secret]).derive(CHAIN_KEY_PURPOSE);
    expect(CHAIN_KEY_PURPOSE).toBe('audit chain');
    expect(derived.current.key).toEqual(hkdf('accounts audit chain', 32));
    expect(derived.current.id).toBe(hkdf('accounts key id', 8).toString('hex'));
  });

  it('makes links an older secret can still be found for by its id', () => {
    const old = KeyRing.of('AUDIT_KEY', [secret]).derive(CHAIN_KEY_PURPOSE);
    const link = makeLink(old, 1, undefined, ENTRY);
    const rotated = KeyRing.of('AUDIT_KEY', ['a-newer-audit-key-of-at-least-32-chars', secret]).derive(CHAIN_KEY_PURPOSE);
    expect(rotated.current.id).not.toBe(link.keyId);
    expect(linkHash(rotated.get(link.keyId)!, link, ENTRY)).toBe(link.hash);
  });
});
