import crypto from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  AuthenticatorTransportFuture,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { isoCBOR } from '@simplewebauthn/server/helpers';

/**
 * A software passkey authenticator for tests: what `navigator.credentials.create()` and `.get()`
 * give a page (as `@simplewebauthn/browser` hands them to the server: the JSON forms), with the
 * authenticator and the browser in one object. "none" attestation (or packed self attestation); ES256 keys (P-256, DER
 * signatures) unless told another algorithm. Every `Tweak` makes one thing wrong on purpose, for
 * the server's refusals.
 */

/** COSE algorithms it can make keys for: ES256, EdDSA (Ed25519), RS256, ES384. */
export type SoftAlg = -7 | -8 | -257 | -35;

/** The AAGUID it reports unless told another (a software authenticator has none of its own). */
export const SOFT_AAGUID = '50f7a0e1-5e5c-4a7e-9d1b-20c0ffee2020';

export interface StoredCredential {
  /** base64url, as the server sees it. */
  id: string;
  privateKey: crypto.KeyObject;
  publicKey: crypto.KeyObject;
  alg: SoftAlg;
  /** base64url of the `user.id` of the creation options (the user handle). */
  userHandle: string;
  rpId: string;
  /** The signature counter: the last one sent. */
  counter: number;
}

/** One thing made wrong (or chosen) in a create or a get. */
export interface Tweak {
  /** clientDataJSON.type (default `webauthn.create` / `webauthn.get`). */
  type?: string;
  /** clientDataJSON.challenge (default: the options'). */
  challenge?: string;
  /** clientDataJSON.origin (default: the constructor's). */
  origin?: string;
  /** The RP ID whose SHA-256 goes into authenticatorData (default: the constructor's). */
  rpId?: string;
  /** User present (default true). */
  up?: boolean;
  /** User verified (default true). */
  uv?: boolean;
  /** Backup eligible (default false). */
  be?: boolean;
  /** Backed up (default false). */
  bs?: boolean;
  /** signCount to send (default at create 0; at get the stored one + 1, or 0 with `zeroCounter`). */
  counter?: number;
  /** The user handle sent at get (default the credential's; null: none sent). */
  userHandle?: string | null;
  /** At create: this credential id instead of a new one (a credential registered twice). */
  credentialId?: string;
  /** A well-formed signature over other bytes (at get; at create, the packed attestation's). */
  corruptSignature?: boolean;
  /** At get: which stored credential (its id) signs. */
  credential?: string;
}

export interface SoftAuthenticatorOptions {
  rpId: string;
  /** The page's origin the "browser" puts in clientDataJSON. */
  origin: string;
  /** The key algorithm of the credentials it creates (default -7, ES256). */
  alg?: SoftAlg;
  /** Its AAGUID, as a UUID string (default SOFT_AAGUID). */
  aaguid?: string;
  /** Transports it reports at create (default ['internal']). */
  transports?: AuthenticatorTransportFuture[];
  /** Never counts signatures (signCount always 0), as many synced passkeys do. */
  zeroCounter?: boolean;
  /**
   * The attestation statement at create: 'none' (default, what the service asks for) or 'packed'
   * self attestation (signed with the credential's own key, no certificate), which a client may
   * send whatever it was asked; `corruptSignature` then spoils that signature.
   */
  attestation?: 'none' | 'packed';
}

const FLAG_UP = 0x01;
const FLAG_UV = 0x04;
const FLAG_BE = 0x08;
const FLAG_BS = 0x10;
const FLAG_AT = 0x40;

export class SoftAuthenticator {
  readonly rpId: string;
  readonly origin: string;
  readonly alg: SoftAlg;
  readonly aaguid: string;
  readonly transports: AuthenticatorTransportFuture[];
  readonly zeroCounter: boolean;
  readonly attestation: 'none' | 'packed';
  credentials: StoredCredential[] = [];

  constructor(opts: SoftAuthenticatorOptions) {
    this.rpId = opts.rpId;
    this.origin = opts.origin;
    this.alg = opts.alg ?? -7;
    this.aaguid = opts.aaguid ?? SOFT_AAGUID;
    this.transports = opts.transports ?? ['internal'];
    this.zeroCounter = opts.zeroCounter ?? false;
    this.attestation = opts.attestation ?? 'none';
  }

  /**
   * navigator.credentials.create: a RegistrationResponseJSON for these creation options. Refuses
   * (throws, as a browser's InvalidStateError) when `excludeCredentials` lists a credential it
   * holds, unless `tweak.credentialId` asks for a credential id on purpose.
   */
  create(options: PublicKeyCredentialCreationOptionsJSON, tweak: Tweak = {}): RegistrationResponseJSON {
    if (tweak.credentialId === undefined) {
      const held = (options.excludeCredentials ?? []).find((d) => this.credentials.some((c) => c.id === d.id));
      if (held) throw new Error(`InvalidStateError: the authenticator already holds credential ${held.id}`);
    }
    const existing = tweak.credentialId === undefined ? undefined : this.credentials.find((c) => c.id === tweak.credentialId);
    const keys = existing ? { privateKey: existing.privateKey, publicKey: existing.publicKey } : generateKeys(this.alg);
    const alg = existing?.alg ?? this.alg;
    const id = tweak.credentialId ?? crypto.randomBytes(32).toString('base64url');
    const counter = tweak.counter ?? 0;
    const rawId = Buffer.from(id, 'base64url');
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(rawId.length);
    const authData = Buffer.concat([
      this.authDataHead(tweak, FLAG_AT, counter),
      uuidBytes(this.aaguid),
      idLength,
      rawId,
      Buffer.from(isoCBOR.encode(coseKey(keys.publicKey, alg))),
    ]);
    const clientDataJSON = this.clientData(tweak, 'webauthn.create', options.challenge);
    const stored: StoredCredential = existing ?? { id, ...keys, alg, userHandle: options.user.id, rpId: this.rpId, counter };
    // packed self attestation: the credential's own signature over authData and the clientDataJSON's hash
    const attStmt =
      this.attestation === 'packed'
        ? new Map<string, number | Uint8Array>([
            ['alg', alg],
            ['sig', new Uint8Array(sign(stored, signatureBase(authData, clientDataJSON, tweak)))],
          ])
        : new Map<string, number | Uint8Array>();
    const attestationObject = isoCBOR.encode(
      new Map<string, Uint8Array | string | Map<string, number | Uint8Array>>([
        ['fmt', this.attestation],
        ['attStmt', attStmt],
        ['authData', new Uint8Array(authData)],
      ]),
    );
    if (!existing) this.credentials.push(stored);
    return {
      id,
      rawId: id,
      type: 'public-key',
      response: {
        clientDataJSON,
        attestationObject: Buffer.from(attestationObject).toString('base64url'),
        authenticatorData: authData.toString('base64url'),
        transports: [...this.transports],
        publicKeyAlgorithm: alg,
        publicKey: keys.publicKey.export({ type: 'spki', format: 'der' }).toString('base64url'),
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    };
  }

  /**
   * navigator.credentials.get: an AuthenticationResponseJSON. With `allowCredentials`, the first
   * credential it holds of that list; without (a discoverable credential), the first it holds for
   * its RP ID; `tweak.credential` picks one. Throws (as a browser's NotAllowedError) when it holds
   * none that fits.
   */
  get(options: PublicKeyCredentialRequestOptionsJSON, tweak: Tweak = {}): AuthenticationResponseJSON {
    const allowed = options.allowCredentials ?? [];
    const credential =
      tweak.credential !== undefined
        ? this.credentials.find((c) => c.id === tweak.credential)
        : this.credentials.find((c) => c.rpId === this.rpId && (allowed.length === 0 || allowed.some((d) => d.id === c.id)));
    if (!credential) throw new Error('NotAllowedError: the authenticator holds no credential for these options');
    const counter = tweak.counter ?? (this.zeroCounter ? 0 : credential.counter + 1);
    credential.counter = Math.max(credential.counter, counter);
    const authData = this.authDataHead(tweak, 0, counter);
    const clientDataJSON = this.clientData(tweak, 'webauthn.get', options.challenge);
    const signed = signatureBase(authData, clientDataJSON, tweak);
    const userHandle = tweak.userHandle === undefined ? credential.userHandle : tweak.userHandle;
    return {
      id: credential.id,
      rawId: credential.id,
      type: 'public-key',
      response: {
        clientDataJSON,
        authenticatorData: authData.toString('base64url'),
        signature: sign(credential, signed).toString('base64url'),
        ...(userHandle === null ? {} : { userHandle }),
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    };
  }

  /** A held credential by id (throws when it holds none of that id). */
  credential(id: string): StoredCredential {
    const c = this.credentials.find((x) => x.id === id);
    if (!c) throw new Error(`no credential ${id}`);
    return c;
  }

  /** rpIdHash, flags and signCount: the first 37 bytes of authenticator data. */
  private authDataHead(tweak: Tweak, extraFlags: number, counter: number): Buffer {
    const rpIdHash = crypto.createHash('sha256').update(tweak.rpId ?? this.rpId).digest();
    let flags = extraFlags;
    if (tweak.up ?? true) flags |= FLAG_UP;
    if (tweak.uv ?? true) flags |= FLAG_UV;
    if (tweak.be ?? false) flags |= FLAG_BE;
    if (tweak.bs ?? false) flags |= FLAG_BS;
    const signCount = Buffer.alloc(4);
    signCount.writeUInt32BE(counter);
    return Buffer.concat([rpIdHash, Buffer.from([flags]), signCount]);
  }

  /** clientDataJSON, base64url, as a browser writes it. */
  private clientData(tweak: Tweak, type: string, challenge: string): string {
    const data = {
      type: tweak.type ?? type,
      challenge: tweak.challenge ?? challenge,
      origin: tweak.origin ?? this.origin,
      crossOrigin: false,
    };
    return Buffer.from(JSON.stringify(data)).toString('base64url');
  }
}

/** What an authenticator signs: authData and the SHA-256 of the clientDataJSON; one byte more with `corruptSignature` (a well-formed signature over other bytes). */
function signatureBase(authData: Buffer, clientDataJSON: string, tweak: Tweak): Buffer {
  const clientDataHash = crypto.createHash('sha256').update(Buffer.from(clientDataJSON, 'base64url')).digest();
  return Buffer.concat([authData, clientDataHash, tweak.corruptSignature ? Buffer.from([0]) : Buffer.alloc(0)]);
}

function generateKeys(alg: SoftAlg): { privateKey: crypto.KeyObject; publicKey: crypto.KeyObject } {
  switch (alg) {
    case -7:
      return crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case -35:
      return crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case -8:
      return crypto.generateKeyPairSync('ed25519');
    case -257:
      return crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  }
}

/** The credential public key as a COSE_Key map (RFC 9053): EC2, OKP or RSA. */
function coseKey(publicKey: crypto.KeyObject, alg: SoftAlg): Map<number, number | Uint8Array> {
  const jwk = publicKey.export({ format: 'jwk' });
  const bytes = (b64url: string | undefined) => new Uint8Array(Buffer.from(b64url ?? '', 'base64url'));
  switch (alg) {
    case -7:
    case -35:
      // kty EC2 (2), crv P-256 (1) or P-384 (2), x, y
      return new Map<number, number | Uint8Array>([
        [1, 2],
        [3, alg],
        [-1, alg === -7 ? 1 : 2],
        [-2, bytes(jwk.x)],
        [-3, bytes(jwk.y)],
      ]);
    case -8:
      // kty OKP (1), crv Ed25519 (6), x
      return new Map<number, number | Uint8Array>([
        [1, 1],
        [3, alg],
        [-1, 6],
        [-2, bytes(jwk.x)],
      ]);
    case -257:
      // kty RSA (3), n, e
      return new Map<number, number | Uint8Array>([
        [1, 3],
        [3, alg],
        [-1, bytes(jwk.n)],
        [-2, bytes(jwk.e)],
      ]);
  }
}

/** A WebAuthn signature: ECDSA as DER, Ed25519 raw, RSA PKCS#1 v1.5. */
function sign(credential: StoredCredential, data: Buffer): Buffer {
  switch (credential.alg) {
    case -7:
      return crypto.sign('sha256', data, { key: credential.privateKey, dsaEncoding: 'der' });
    case -35:
      return crypto.sign('sha384', data, { key: credential.privateKey, dsaEncoding: 'der' });
    case -8:
      return crypto.sign(null, data, credential.privateKey);
    case -257:
      return crypto.sign('sha256', data, credential.privateKey);
  }
}

function uuidBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new Error(`not a UUID: ${uuid}`);
  return Buffer.from(hex, 'hex');
}
