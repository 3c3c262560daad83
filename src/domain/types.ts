export interface User {
  id: string;
  name: string;
  email: string;
  firstName: string | null;
  lastName: string | null;
  isAdmin: boolean;
  forcePasswordChange: boolean;
  created: Date;
  lastLogin: Date | null;
  lastSeen: Date | null;
  deactivated: Date | null;
  /** false only for a self-registered account whose address is not yet proven. */
  emailVerified: boolean;
  /**
   * Whether mails may greet the user by `name`: set by an admin or operator, or by the user on a
   * verified account; false for a name given at self-registration (anyone may register with any
   * address), until one of them sets it.
   */
  nameTrusted: boolean;
  /**
   * The address awaiting confirmation by its link (API.md §2.2), null when none; undefined when
   * not read (list pages, which do not show it).
   */
  pendingEmail?: string | null;
  /** The user has a verified factor: a login asks for the second step (API.md §2.8). */
  mfaEnabled: boolean;
}

/** A user with the secret part, for the few services that check passwords. */
export interface UserWithPassword extends User {
  passwordHash: string | null;
}

export type TokenKind = 'login' | 'api';
/** A login token's assurance level: `aal2` after a second factor; API tokens stay `aal1`. */
export type Aal = 'aal1' | 'aal2';
export type Scope = 'api' | 'api:read' | 'api:write';
export const SCOPES: readonly Scope[] = ['api', 'api:read', 'api:write'];

export interface Token {
  id: string;
  userId: string;
  kind: TokenKind;
  name: string;
  scopes: Scope[];
  created: Date;
  expires: Date;
  lastUsed: Date | null;
  lastIpaddr: string | null;
  userAgent: string | null;
  aal: Aal;
}

/** Who is calling: the token presented and its (active) user, as read on this request. */
/** What a request needs of the token it presents (the rest is not read on the hot path). */
export type CallerToken = Pick<Token, 'id' | 'kind' | 'scopes' | 'lastUsed' | 'aal'>;

export interface Caller {
  user: User;
  token: CallerToken;
  /** Where the credential came from; refresh and logout renew or clear the cookie. */
  via: 'bearer' | 'cookie';
  /** Whether the user was a member of any user group when the token was checked. */
  inGroups: boolean;
}

/** The target of an admin route: a UUID or an email (bare, or Conch v2's `email=`). */
export type UserRef = { id: string } | { email: string };

/** Fields a user update may change. */
export interface UserChanges {
  name?: string;
  email?: string;
  firstName?: string | null;
  lastName?: string | null;
  isAdmin?: boolean;
}

export interface NewUserInput {
  name: string;
  email: string;
  password?: string;
  isAdmin?: boolean;
  /** Set by default (admins and operators create users); RhodeCode's create_user says. */
  forcePasswordChange?: boolean;
  firstName?: string | null;
  lastName?: string | null;
}

/** A user's settings: any JSON values but null, by key. */
export type Settings = Record<string, unknown>;

export interface Page<T> {
  items: T[];
  /** Opaque cursor for the next page, when more remain. */
  next: string | null;
}

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
