import crypto from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type RegistrationResponseJSON,
  type WebAuthnCredential,
} from '@simplewebauthn/server';
import { SOFT_AAGUID, SoftAuthenticator, type SoftAlg, type Tweak } from '../helpers/soft-authenticator';

// The test software authenticator, checked against @simplewebauthn/server itself: what it makes
// is accepted as a browser's would be, and each tweak makes the library refuse for that reason.

const RP_ID = 'accounts.example.test';
const ORIGIN = 'https://accounts.example.test';

function authenticator(opts: { alg?: SoftAlg; zeroCounter?: boolean } = {}): SoftAuthenticator {
  return new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN, ...opts });
}

async function creationOptions(excludeCredentials: { id: string }[] = []): Promise<PublicKeyCredentialCreationOptionsJSON> {
  return generateRegistrationOptions({
    rpName: 'Accounts',
    rpID: RP_ID,
    userName: 'ada@example.test',
    userID: new Uint8Array(crypto.randomBytes(16)),
    attestationType: 'none',
    authenticatorSelection: { residentKey: 'required', userVerification: 'preferred' },
    excludeCredentials,
    supportedAlgorithmIDs: [-7, -257],
  });
}

function verifyCreate(response: RegistrationResponseJSON, expectedChallenge: string, more: { requireUserVerification?: boolean; supportedAlgorithmIDs?: number[] } = {}) {
  return verifyRegistrationResponse({
    response,
    expectedChallenge,
    expectedOrigin: [ORIGIN],
    expectedRPID: RP_ID,
    requireUserVerification: more.requireUserVerification ?? false,
    ...(more.supportedAlgorithmIDs ? { supportedAlgorithmIDs: more.supportedAlgorithmIDs } : {}),
  });
}

/** A registered credential: what a server would store from a verified registration. */
async function registered(a: SoftAuthenticator): Promise<{ credential: WebAuthnCredential; userHandle: string }> {
  const options = await creationOptions();
  const result = await verifyCreate(a.create(options), options.challenge);
  if (!result.verified) throw new Error('registration not verified');
  return { credential: result.registrationInfo.credential, userHandle: options.user.id };
}

function verifyGet(response: AuthenticationResponseJSON, expectedChallenge: string, credential: WebAuthnCredential, requireUserVerification = false) {
  return verifyAuthenticationResponse({ response, expectedChallenge, expectedOrigin: [ORIGIN], expectedRPID: RP_ID, credential, requireUserVerification });
}

describe('SoftAuthenticator: create', () => {
  test('a registration the library verifies: none attestation, ES256 key, AAGUID, flags, transports, the user handle kept', async () => {
    const a = authenticator();
    const options = await creationOptions();
    const response = a.create(options);
    expect(response.id).toBe(response.rawId);
    expect(response.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const result = await verifyCreate(response, options.challenge, { requireUserVerification: true, supportedAlgorithmIDs: [-7, -257] });
    expect(result.verified).toBe(true);
    const info = result.registrationInfo!;
    expect(info.fmt).toBe('none');
    expect(info.credential.id).toBe(response.id);
    expect(info.credential.counter).toBe(0);
    expect(info.credential.transports).toEqual(['internal']);
    expect(info.aaguid).toBe(SOFT_AAGUID);
    expect(info.userVerified).toBe(true);
    expect(info.credentialDeviceType).toBe('singleDevice');
    expect(info.credentialBackedUp).toBe(false);
    expect(info.origin).toBe(ORIGIN);
    expect(info.rpID).toBe(RP_ID);
    expect(response.response.publicKeyAlgorithm).toBe(-7);
    expect(a.credentials).toHaveLength(1);
    expect(a.credentials[0]).toMatchObject({ id: response.id, userHandle: options.user.id, rpId: RP_ID, counter: 0, alg: -7 });
    expect(a.credentials[0].publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  test.each([-257, -35] as const)('alg %d: a key the library accepts', async (alg) => {
    const a = authenticator({ alg });
    const options = await creationOptions();
    const result = await verifyCreate(a.create(options), options.challenge, { supportedAlgorithmIDs: [-7, -257, -35] });
    expect(result.verified).toBe(true);
    const { credential } = result.registrationInfo!;
    const request = await generateAuthenticationOptions({ rpID: RP_ID });
    expect((await verifyGet(a.get(request), request.challenge, credential)).verified).toBe(true);
  });

  test('alg -8 (Ed25519): refused where only ES256 and RS256 are allowed, a well-formed key otherwise', async () => {
    const a = authenticator({ alg: -8 });
    const options = await creationOptions();
    const response = a.create(options);
    await expect(verifyCreate(response, options.challenge, { supportedAlgorithmIDs: [-7, -257] })).rejects.toThrow(/alg "-8"/);
    const result = await verifyCreate(response, options.challenge);
    expect(result.verified).toBe(true);
    const request = await generateAuthenticationOptions({ rpID: RP_ID });
    expect((await verifyGet(a.get(request), request.challenge, result.registrationInfo!.credential)).verified).toBe(true);
  });

  // (every row has all four values: jest takes a parameter past a row's end for `done`)
  test.each<[string, Tweak, RegExp, boolean]>([
    ['type', { type: 'webauthn.get' }, /type/, false],
    ['challenge', { challenge: crypto.randomBytes(32).toString('base64url') }, /challenge/, false],
    ['origin', { origin: 'https://evil.example' }, /origin/, false],
    ['rpId', { rpId: 'evil.example' }, /RP ID/, false],
    ['up', { up: false }, /presence/, false],
    ['uv', { uv: false }, /verification/, true],
    ['bs without be', { be: false, bs: true }, /backed up/, false],
  ])('tweak %s: the library refuses the registration', async (_name, tweak, message, requireUserVerification) => {
    const options = await creationOptions();
    await expect(verifyCreate(authenticator().create(options, tweak), options.challenge, { requireUserVerification })).rejects.toThrow(message);
  });

  test('uv false is accepted where user verification is not required, and reported', async () => {
    const options = await creationOptions();
    const result = await verifyCreate(authenticator().create(options, { uv: false }), options.challenge);
    expect(result.registrationInfo!.userVerified).toBe(false);
  });

  test('be and bs: a backed-up multi-device credential', async () => {
    const options = await creationOptions();
    const result = await verifyCreate(authenticator().create(options, { be: true, bs: true }), options.challenge);
    expect(result.registrationInfo).toMatchObject({ credentialDeviceType: 'multiDevice', credentialBackedUp: true });
  });

  test('counter: the signCount sent at registration', async () => {
    const options = await creationOptions();
    const result = await verifyCreate(authenticator().create(options, { counter: 7 }), options.challenge);
    expect(result.registrationInfo!.credential.counter).toBe(7);
  });

  test('packed self attestation: a signature by the credential key the library verifies; corruptSignature spoils it', async () => {
    for (const alg of [-7, -257] as const) {
      const a = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN, alg, attestation: 'packed' });
      const options = await creationOptions();
      const result = await verifyCreate(a.create(options), options.challenge);
      expect(result).toMatchObject({ verified: true, registrationInfo: { fmt: 'packed' } });
      const request = await generateAuthenticationOptions({ rpID: RP_ID });
      expect((await verifyGet(a.get(request), request.challenge, result.registrationInfo!.credential)).verified).toBe(true);
      const spoiled = await creationOptions();
      expect((await verifyCreate(a.create(spoiled, { corruptSignature: true }), spoiled.challenge)).verified).toBe(false);
    }
  });

  test('credentialId: a given id again (another authenticator, or the same one past excludeCredentials)', async () => {
    const a = authenticator();
    const first = a.create(await creationOptions());
    // the same authenticator: the same credential (its key), the exclusion list ignored
    const options = await creationOptions([{ id: first.id }]);
    expect(() => a.create(options)).toThrow(/InvalidStateError/);
    const again = a.create(options, { credentialId: first.id });
    const result = await verifyCreate(again, options.challenge);
    expect(result.registrationInfo!.credential.id).toBe(first.id);
    expect(again.response.publicKey).toBe(first.response.publicKey);
    expect(a.credentials).toHaveLength(1);
    // another authenticator: the same id, a key of its own
    const b = authenticator();
    const other = await creationOptions();
    const copy = b.create(other, { credentialId: first.id });
    const copied = await verifyCreate(copy, other.challenge);
    expect(copied.registrationInfo!.credential.id).toBe(first.id);
    expect(copy.response.publicKey).not.toBe(first.response.publicKey);
    expect(b.credentials).toHaveLength(1);
  });
});

describe('SoftAuthenticator: get', () => {
  test('an assertion the library verifies, with the user handle and a counter that goes up', async () => {
    const a = authenticator();
    const { credential, userHandle } = await registered(a);
    const request = await generateAuthenticationOptions({ rpID: RP_ID, allowCredentials: [{ id: credential.id }], userVerification: 'preferred' });
    const response = a.get(request);
    expect(response.id).toBe(credential.id);
    expect(response.response.userHandle).toBe(userHandle);
    const result = await verifyGet(response, request.challenge, credential, true);
    expect(result.verified).toBe(true);
    expect(result.authenticationInfo).toMatchObject({ newCounter: 1, userVerified: true, credentialBackedUp: false, origin: ORIGIN, rpID: RP_ID });
    // the library's own counter check passes with the stored counter, and the next one is higher
    const next = await generateAuthenticationOptions({ rpID: RP_ID });
    const second = await verifyGet(a.get(next), next.challenge, { ...credential, counter: 1 });
    expect(second.authenticationInfo.newCounter).toBe(2);
    expect(a.credentials[0].counter).toBe(2);
  });

  test('discoverable (no allowCredentials): the credential it holds; tweak.credential picks another; none held: refused', async () => {
    const a = authenticator();
    const one = await registered(a);
    const two = await registered(a);
    const request = await generateAuthenticationOptions({ rpID: RP_ID, userVerification: 'required' });
    expect(a.get(request).id).toBe(one.credential.id);
    const response = a.get(request, { credential: two.credential.id });
    expect(response.id).toBe(two.credential.id);
    expect(response.response.userHandle).toBe(two.userHandle);
    expect((await verifyGet(response, request.challenge, two.credential, true)).verified).toBe(true);
    const elsewhere = await generateAuthenticationOptions({ rpID: RP_ID, allowCredentials: [{ id: crypto.randomBytes(32).toString('base64url') }] });
    expect(() => a.get(elsewhere)).toThrow(/NotAllowedError/);
  });

  test('zeroCounter: signCount stays 0 (the library accepts 0 after 0)', async () => {
    const a = authenticator({ zeroCounter: true });
    const { credential } = await registered(a);
    for (let i = 0; i < 2; i++) {
      const request = await generateAuthenticationOptions({ rpID: RP_ID });
      const result = await verifyGet(a.get(request), request.challenge, credential);
      expect(result.verified).toBe(true);
      expect(result.authenticationInfo.newCounter).toBe(0);
    }
  });

  test.each<[string, Tweak, RegExp, boolean]>([
    ['type', { type: 'webauthn.create' }, /type/, false],
    ['challenge', { challenge: crypto.randomBytes(32).toString('base64url') }, /challenge/, false],
    ['origin', { origin: 'https://evil.example' }, /origin/, false],
    ['rpId', { rpId: 'evil.example' }, /RP ID/, false],
    ['up', { up: false }, /not present/, false],
    ['uv', { uv: false }, /verification/, true],
    ['bs without be', { be: false, bs: true }, /backed up/, false],
  ])('tweak %s: the library refuses the assertion', async (_name, tweak, message, requireUv) => {
    const a = authenticator();
    const { credential } = await registered(a);
    const request = await generateAuthenticationOptions({ rpID: RP_ID });
    await expect(verifyGet(a.get(request, tweak), request.challenge, credential, requireUv)).rejects.toThrow(message);
  });

  test('uv false: accepted where not required, reported', async () => {
    const a = authenticator();
    const { credential } = await registered(a);
    const request = await generateAuthenticationOptions({ rpID: RP_ID });
    const result = await verifyGet(a.get(request, { uv: false }), request.challenge, credential);
    expect(result).toMatchObject({ verified: true, authenticationInfo: { userVerified: false } });
  });

  test('corruptSignature: a signature that does not verify', async () => {
    const a = authenticator();
    const { credential } = await registered(a);
    const request = await generateAuthenticationOptions({ rpID: RP_ID });
    const response = a.get(request, { corruptSignature: true });
    expect((await verifyGet(response, request.challenge, credential)).verified).toBe(false);
  });

  test('a signature by another key (a credential id copied to another authenticator) does not verify', async () => {
    const a = authenticator();
    const { credential } = await registered(a);
    const b = authenticator();
    b.create(await creationOptions(), { credentialId: credential.id });
    const request = await generateAuthenticationOptions({ rpID: RP_ID });
    const response = b.get(request);
    expect(response.id).toBe(credential.id);
    expect((await verifyGet(response, request.challenge, credential)).verified).toBe(false);
  });

  test('counter: the signCount sent (the library, not given the stored counter, does not check it)', async () => {
    const a = authenticator();
    const { credential } = await registered(a);
    for (let i = 0; i < 5; i++) a.get(await generateAuthenticationOptions({ rpID: RP_ID }));
    expect(a.credentials[0].counter).toBe(5);
    const request = await generateAuthenticationOptions({ rpID: RP_ID });
    const back = a.get(request, { counter: 3 });
    const result = await verifyGet(back, request.challenge, credential);
    expect(result).toMatchObject({ verified: true, authenticationInfo: { newCounter: 3 } });
    // given the stored counter, the library refuses one that went backwards
    await expect(verifyGet(back, request.challenge, { ...credential, counter: 5 })).rejects.toThrow(/counter/);
    // the stored counter does not go back with it: the next untweaked one is 6
    const next = await generateAuthenticationOptions({ rpID: RP_ID });
    expect((await verifyGet(a.get(next), next.challenge, credential)).authenticationInfo.newCounter).toBe(6);
  });

  test('userHandle: another one sent, or none', async () => {
    const a = authenticator();
    const { credential, userHandle } = await registered(a);
    const request = await generateAuthenticationOptions({ rpID: RP_ID });
    const other = crypto.randomBytes(16).toString('base64url');
    const swapped = a.get(request, { userHandle: other });
    expect(swapped.response.userHandle).toBe(other);
    expect(swapped.response.userHandle).not.toBe(userHandle);
    // the user handle is not signed: the library verifies the assertion all the same
    expect((await verifyGet(swapped, request.challenge, credential)).verified).toBe(true);
    const none = a.get(request, { userHandle: null });
    expect(none.response).not.toHaveProperty('userHandle');
    expect((await verifyGet(none, request.challenge, credential)).verified).toBe(true);
  });
});
