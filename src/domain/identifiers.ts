import { ValidationError } from './errors';
import type { UserRef } from './types';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMAIL = /^[^\s@]+@[^\s@]+$/;

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
