import { ValidationError } from './errors';
import { EMAIL, UUID } from './rules';
import type { UserRef } from './types';

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** `:user` in a path: a UUID (any case), a bare email, or `email=<address>` (Conch v2). */
export function parseUserRef(raw: string): UserRef {
  if (UUID.test(raw)) return { id: raw.toLowerCase() };
  const email = raw.startsWith('email=') ? raw.slice('email='.length) : raw;
  if (EMAIL.test(email)) return { email };
  throw new ValidationError(`invalid identifier format for ${raw}`);
}

/** Login's v2 `user` field: a UUID or an email; undefined when it is neither (no such user). */
export function parseLoginUser(raw: string): UserRef | undefined {
  if (UUID.test(raw)) return { id: raw.toLowerCase() };
  if (EMAIL.test(raw)) return { email: raw };
  return undefined;
}

/**
 * Whether `raw` names this user (a UUID, an email or Conch's `email=`, or, with `byName`, the
 * user's name): no lookup, so it tells nothing about anyone else.
 */
export function namesUser(user: { id: string; email: string; name: string }, raw: string, byName = false): boolean {
  if (UUID.test(raw)) return raw.toLowerCase() === user.id;
  const email = raw.startsWith('email=') ? raw.slice('email='.length) : raw;
  return email.toLowerCase() === user.email.toLowerCase() || (byName && raw === user.name);
}
